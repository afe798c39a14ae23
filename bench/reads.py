"""Benchmark: ``Storage.get_items`` newest 20 of a 5,000-item node, beside raw SQL.

Caches ``--items`` Atom-like items into one node, then times, median of ``--runs``
runs of ``--requests`` sequential reads each:

- ``Storage.get_items``: the public read (checks, thread hop, SQL, rows into items,
  RSM metadata; the items' XML is parsed when a caller reads ``.data``, not here);
- ``raw SQL + fetch``: the very statements that read runs (captured once), replayed
  with the driver alone (``sqlite3``/psycopg) in the calling thread, rows fetched as
  tuples: the baseline (target: the storage read within 1.5x of it). On PostgreSQL
  in autocommit, as the storage's read runs them (each statement sees its own
  snapshot either way, under READ COMMITTED): with BEGIN/ROLLBACK the baseline paid
  two round trips the storage does not;
- ``raw SQL + fetch, in a database thread``: the same, run in the storage's database
  thread pool and awaited (one thread hop): the least that a read keeping the
  storage's contract (never block the reactor) can cost;
- the storage read and the baseline again in CPU time of the process (all threads:
  the database thread's work counts, the waits for a core on a loaded machine do not);
- ``raw SQL + fetch + parse``: the same, plus the items' XML parsed into domish and
  their JSON decoded (what any reader must pay at least).

    python bench/reads.py [--json] [--db-url URL] [--items 5000] [--max-items 20]
"""

from __future__ import annotations

import json
from typing import Any

from _common import (
    RawDriver,
    cpu_time,
    engine_name,
    main,
    median,
    node_bench,
    parser,
    selects,
    time_async,
    time_call,
)
from twisted.internet import reactor, threads

from sat_storage.xml_tools import parse_xml


def parse_rows(results: list[list[tuple[Any, ...]]]) -> int:
    """Parse every XML text and JSON text of the rows; how many items."""
    parsed = 0
    for rows in results:
        for row in rows:
            for value in row:
                if isinstance(value, str) and value.startswith("<"):
                    parse_xml(value)
                    parsed += 1
                elif isinstance(value, str) and value.startswith("{"):
                    json.loads(value)
    return parsed


def names_of(label: str) -> dict[str, str]:
    """The figures' names (wall-clock, and process CPU time: see ``cpu_time``)."""
    return {
        "storage": f"Storage.get_items {label}",
        "raw": f"raw SQL + fetch, {label}",
        "raw_thread": f"raw SQL + fetch, {label}, in a database thread",
        "raw_parse": f"raw SQL + fetch + parse, {label}",
        "storage_cpu": f"Storage.get_items {label}, CPU time",
        "raw_cpu": f"raw SQL + fetch, {label}, CPU time",
        "raw_thread_cpu": f"raw SQL + fetch, {label}, in a database thread, CPU time",
    }


def in_thread(storage: Any, raw: RawDriver, statements: list[tuple[str, Any]]) -> Any:
    """``raw.run(statements)`` in the storage's database thread pool (a Deferred)."""
    return threads.deferToThreadPool(reactor, storage.db.pool, raw.run, statements)


async def run(args: Any, workdir: str) -> dict[str, Any]:
    async with node_bench(args.db_url, workdir, "reads", args.items, autocommit=True) as bench:
        storage, raw, node = bench.storage, bench.raw, bench.node

        def read() -> Any:
            return storage.get_items(node, max_items=args.max_items)

        statements = await selects(storage, read)
        items, _metadata = await read()
        assert len(items) == args.max_items, len(items)
        assert parse_rows(raw.run(statements)) == args.max_items
        times: dict[str, list[float]] = {k: [] for k in names_of("")}
        for _ in range(args.runs):  # interleaved: background load hits every figure alike
            times["storage"].append(await time_async(read, args.requests))
            times["raw"].append(time_call(lambda: raw.run(statements), args.requests))
            times["raw_thread"].append(
                await time_async(lambda: in_thread(storage, raw, statements), args.requests)
            )
            times["raw_parse"].append(
                time_call(lambda: parse_rows(raw.run(statements)), args.requests)
            )
            times["storage_cpu"].append(await time_async(read, args.requests, cpu_time))
            times["raw_cpu"].append(time_call(lambda: raw.run(statements), args.requests, cpu_time))
            times["raw_thread_cpu"].append(
                await time_async(
                    lambda: in_thread(storage, raw, statements), args.requests, cpu_time
                )
            )
    ms = {name: round(median(values) * 1000, 3) for name, values in times.items()}
    names = names_of(f"newest {args.max_items} of {args.items}")
    result = {
        "benchmark": "reads",
        "engine": engine_name(args.db_url),
        "items": args.items,
        "runs": args.runs,
        "requests": args.requests,
        "statements": [sql for sql, _ in statements],
        "median_ms": ms,
        "target": {
            "storage_to_raw_max": 1.5,
            "met": ms["storage"] <= 1.5 * ms["raw"],
            "met_cpu": ms["storage_cpu"] <= 1.5 * ms["raw_cpu"],
            "met_against_raw_in_thread": ms["storage"] <= 1.5 * ms["raw_thread"],
            "met_against_raw_in_thread_cpu": ms["storage_cpu"] <= 1.5 * ms["raw_thread_cpu"],
        },
        "results": [
            {"name": names["raw"], "value": ms["raw"], "unit": "ms"},
            {
                "name": names["raw_parse"],
                "value": ms["raw_parse"],
                "unit": "ms",
                "baseline": names["raw"],
            },
            {
                "name": names["storage"],
                "value": ms["storage"],
                "unit": "ms",
                "baseline": names["raw"],
            },
            {"name": names["raw_cpu"], "value": ms["raw_cpu"], "unit": "ms"},
            {
                "name": names["storage_cpu"],
                "value": ms["storage_cpu"],
                "unit": "ms",
                "baseline": names["raw_cpu"],
            },
            {"name": names["raw_thread"], "value": ms["raw_thread"], "unit": "ms"},
            {
                "name": names["storage"] + ", against the raw read in a database thread",
                "value": ms["storage"],
                "unit": "ms",
                "baseline": names["raw_thread"],
            },
            {"name": names["raw_thread_cpu"], "value": ms["raw_thread_cpu"], "unit": "ms"},
            {
                "name": names["storage_cpu"] + ", against the raw read in a database thread",
                "value": ms["storage_cpu"],
                "unit": "ms",
                "baseline": names["raw_thread_cpu"],
            },
        ],  # fmt: skip
    }
    if not args.json:
        for name, value in ms.items():
            base = ms["raw_cpu" if name.endswith("_cpu") else "raw"]
            print(f"  {names[name]:70} {value:8.3f} ms  ({value / base:.2f} x raw)")
    return result


if __name__ == "__main__":
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--items", type=int, default=5000, help="items in the node")
    p.add_argument("--max-items", type=int, default=20, help="size of the page")
    p.add_argument("--requests", type=int, default=50, help="reads per run")
    p.set_defaults(runs=7)
    main(run, p.parse_args())
