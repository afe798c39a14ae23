"""Benchmark: get_items RSM pages on a 100,000-item node (keyset paging).

Caches N Atom-like items (default 100,000) into one node, then times pages of 20
items, median of several runs, in creation and modification order:

- ``first``: the oldest page (``desc=False``);
- ``middle_after``: the page after the middle item (``after=ID``, keyset);
- ``last``: the last page (``before=""``);
- ``middle_index``: the page at the middle position (``from_index``: the position
  is found by an index-only scan, so it costs more; shown for reference).

Target: ``middle_after`` and ``last`` cost at most 2x ``first``. On PostgreSQL the
table is vacuumed after the fill, as autovacuum would do on a live server. The query plans
(``EXPLAIN QUERY PLAN`` on SQLite, ``EXPLAIN`` on PostgreSQL) are printed to show
that every query searches the node's entries in an index.

    /work/venv/bin/python bench/paging.py [--json] [--db-url URL] [--items N] [--runs N]
"""

from __future__ import annotations

import time
from typing import Any

from _common import (
    engine_name,
    explain,
    main,
    median,
    node_bench,
    parser,
    selects,
    time_call,
)
from twisted.internet import reactor, task

PAGE = 20


def vacuum(connection: Any) -> None:
    """What autovacuum does on a live server (the test servers run without it).

    Statistics for the planner, and the visibility map that lets counts read the
    index alone (index-only scans).
    """
    connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
        "VACUUM ANALYZE pubsub_items"
    )


def page_queries(statements: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """The statements that read the page (cursor and page look-ups), not the counts."""
    return [s for s in statements if "count(" not in s[0].lower()]


async def run(args: Any, workdir: str) -> dict[str, Any]:
    async with node_bench(args.db_url, workdir, "paging", args.items) as bench:
        storage, raw, node, fill_s = bench.storage, bench.raw, bench.node, bench.fill_s
        if storage.dialect == "postgresql":
            # later, as autovacuum would: the test servers commit asynchronously, and
            # VACUUM cannot mark pages all-visible before their commits are flushed
            await task.deferLater(reactor, 1.0, lambda: None)
            await storage.db.run_with_connection(vacuum)
        middle = f"item-{args.items // 2:06d}"
        requests = {
            "first": {"desc": False},
            "middle_after": {"after": middle},
            "last": {"before": ""},
            "middle_index": {"from_index": args.items // 2},
        }
        cases = [
            (order, name, {"max_items": PAGE, "order_by": [order], **extra})
            for order in ("creation", "modification")
            for name, extra in requests.items()
        ]
        statements = {
            (o, n): await selects(storage, lambda kw=kw: storage.get_items(node, **kw))
            for o, n, kw in cases
        }
        times: dict[tuple[str, str], list[float]] = {(o, n): [] for o, n, _ in cases}
        raw_times: dict[tuple[str, str], list[float]] = {(o, n): [] for o, n, _ in cases}
        for _ in range(args.runs):  # interleaved: background load hits every case alike
            for order, name, kwargs in cases:
                begin = time.perf_counter()
                items, _metadata = await storage.get_items(node, **kwargs)
                times[(order, name)].append(time.perf_counter() - begin)
                assert len(items) == PAGE, (name, len(items))
                page_sql = page_queries(statements[(order, name)])
                raw_times[(order, name)].append(time_call(lambda q=page_sql: raw.run(q), 1))
        figures: dict[str, dict[str, float]] = {}
        raw_figures: dict[str, dict[str, float]] = {}
        plans: dict[str, dict[str, list[str]]] = {}
        for order, name, _kwargs in cases:
            figures.setdefault(order, {})[name] = round(median(times[(order, name)]) * 1000, 2)
            raw_ms = round(median(raw_times[(order, name)]) * 1000, 3)
            raw_figures.setdefault(order, {})[name] = raw_ms
            plans.setdefault(order, {})[name] = await explain(storage, statements[(order, name)])
    ratios = {
        order: {
            name: round(values[name] / values["first"], 2)
            for name in ("middle_after", "last", "middle_index")
        }
        for order, values in figures.items()
    }
    met = all(r["middle_after"] <= 2 and r["last"] <= 2 for r in ratios.values())
    slowest = max(ms for values in figures.values() for ms in values.values())
    result = {
        "benchmark": "paging",
        "engine": engine_name(args.db_url),
        "items": args.items,
        "page": PAGE,
        "runs": args.runs,
        "fill_s": round(fill_s, 1),
        "median_ms": figures,
        "ratio_to_first": ratios,
        "raw_page_query_ms": raw_figures,
        "target": {"deep_page_ratio_max": 2, "met": met, "every_page_ms_max": 5,
                   "every_page_met": slowest <= 5},  # fmt: skip
        "plans": plans,
    }
    result["results"] = [  # for bench/run: deep pages against the first, raw queries
        {"name": f"{order}: {name} page", "value": ms, "unit": "ms"}
        | ({"baseline": f"{order}: {name}, page query alone (raw)"} if name == "first"
           else {"baseline": f"{order}: first page"})
        for order, values in figures.items()
        for name, ms in values.items()
    ] + [
        {"name": f"{order}: {name}, page query alone (raw)", "value": ms, "unit": "ms"}
        for order, values in raw_figures.items()
        for name, ms in values.items()
    ]  # fmt: skip
    if not args.json:
        print(f"{args.items} items cached in {fill_s:.1f} s; pages of {PAGE}, {args.runs} runs")
        for order, values in figures.items():
            print(f"  order by {order}:")
            for name, ms in values.items():
                ratio = ms / values["first"]
                raw_ms = raw_figures[order][name]
                print(f"    {name:14} {ms:8.2f} ms  ({ratio:.2f} x first; raw page {raw_ms} ms)")
        print(f"  target deep pages <= 2 x first: {'met' if met else 'NOT met'}")
        print("  query plans (creation order):")
        for name, lines in plans["creation"].items():
            print(f"    {name}:")
            for line in lines:
                print(f"      {line}")
    return result


if __name__ == "__main__":
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--items", type=int, default=100_000, help="items in the node")
    p.set_defaults(runs=15)
    main(run, p.parse_args())
