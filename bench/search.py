"""Benchmark: search_pubsub_items over 50,000 cached items in 10 nodes.

Caches N Atom-like items (default 50,000) spread over 10 nodes of a new profile;
each item's summary carries one topic word out of 20 (5 % of the items per word)
and its parsed data a ``score`` (0-999) and a ``published`` time stamp. Then times,
median of ``--runs`` interleaved runs of the mean of ``--requests`` searches each
(one search per sample was too noisy for an overhead of about a millisecond),
through the public API (checks, thread hop, SQL, rows into items):

- ``fts+filter+order``: ``fts`` one topic word, ``score >= 500``, ordered by
  ``published`` desc, limit 20;
- ``fts+overlap+order``: the same word, tags overlapping 4 of the 50 tags, ordered by
  ``published`` desc, limit 20 (the figure of issue #14);
- ``fts+overlap+order, query not seen before``: the same, its tags in another order at
  each run, so that the storage builds its statement (the others are searches asked
  again, whose statements the storage keeps);
- ``fts only``: the same word, by rank, limit 20;
- ``filter+order, no fts``: the same filter and order without ``fts``, which must
  read every item of the profile (shows what the full-text index saves);
- ``order by published only``: no filter, ordered by ``published`` desc, limit 20
  (a scan, unless an analyser declared ``published`` a sort key).

Each figure's baseline is its own statement (captured from the storage) replayed
with the driver alone in the calling thread (``..., raw SQL``; PostgreSQL in
autocommit, as the storage replays a search asked again: one statement sees one
snapshot either way): the ratio and the overhead show what the storage adds
(thread hop, checks, rows into items).

The database is analysed after the fill (as autovacuum or ``PRAGMA optimize`` would).
The query plans are printed (``EXPLAIN QUERY PLAN`` on SQLite, ``EXPLAIN`` on
PostgreSQL): the full-text index is read first, items are fetched by primary key.

    /work/venv/bin/python bench/search.py [--json] [--db-url URL] [--items N] [--runs N]
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from _common import (
    SERVICE,
    RawDriver,
    atom_item,
    cpu_time,
    engine_name,
    explain,
    main,
    median,
    open_storage,
    parser,
    selects,
    time_async,
    time_call,
)
from sqlalchemy import text

NODES = 10
BATCH = 5_000
TOPICS = (
    "astronomy", "baking", "chess", "cycling", "databases", "economics", "football",
    "gardening", "history", "jazz", "knitting", "linguistics", "mountains", "networking",
    "origami", "photography", "quantum", "robotics", "sailing", "typography",
)  # fmt: skip
WORD = "gardening"
FIGURE = "fts+overlap+order"  # the figure of issue #14
NEW = f"{FIGURE}, query not seen before"


class BenchClient:
    """A client of the benchmark's own profile."""

    def __init__(self, profile: str) -> None:
        self.profile = profile


def item(index: int) -> tuple[Any, dict[str, Any]]:
    """An Atom-like item with a topic word, and its parsed data with score/published."""
    element, parsed = atom_item(index)
    topic = TOPICS[(index * 7) % len(TOPICS)]
    element.entry.addElement("summary", content=f"A note about {topic}.")
    parsed["score"] = (index * 7919) % 1000
    parsed["published"] = 1_700_000_000.0 + ((index * 104729) % 100_000) * 60
    return element, parsed


async def fill(storage: Any, client: Any, count: int) -> list[str]:
    """Cache ``count`` items spread over ``NODES`` nodes; the node names."""
    names = [f"urn:xmpp:microblog:0:bench-{n}" for n in range(NODES)]
    nodes = [await storage.set_pubsub_node(client, SERVICE, name, type_="blog") for name in names]
    per_node = -(-count // NODES)
    for n, node in enumerate(nodes):
        start, stop = n * per_node, min(count, (n + 1) * per_node)
        for first in range(start, stop, BATCH):
            pairs = [item(i) for i in range(first, min(stop, first + BATCH))]
            await storage.cache_pubsub_items(
                client, node, [p[0] for p in pairs], [p[1] for p in pairs]
            )
    return names


async def statement_of(storage: Any, query: dict[str, Any]) -> tuple[str, Any]:
    """The SQL text and parameters of a search, as the storage runs it."""
    return (await selects(storage, lambda: storage.search_pubsub_items(query)))[-1]


async def run(args: Any, workdir: str) -> dict[str, Any]:
    storage = await open_storage(args.db_url, workdir)
    raw = RawDriver(storage, autocommit=True)  # as the storage runs a search asked again
    profile = f"bench-search-{time.time_ns()}"
    try:
        await storage.create_profile(profile)
        if args.declare:  # as XEP-0277's analyser does
            await storage.declare_sort_key(["published"], "desc")
        client = BenchClient(profile)
        start = time.perf_counter()
        await fill(storage, client, args.items)
        fill_s = time.perf_counter() - start
        # statistics, as a live database has them (autovacuum, PRAGMA optimize)
        await storage.db.run(lambda session: session.execute(text("ANALYZE")))
        scope = {"profiles": [profile], "limit": 20}
        score = {"path": ["score"], "op": ">=", "value": 500}
        overlap = {"path": ["tags"], "op": "overlap", "value": ["tag1", "tag2", "tag3", "tag4"]}
        published = {"path": ["published"], "direction": "desc"}
        queries = {
            "fts+filter+order": {**scope, "fts": WORD, "parsed": [score], "order-by": [published]},
            "fts+overlap+order": {
                **scope, "fts": WORD, "parsed": [overlap], "order-by": [published]
            },
            "fts only": {**scope, "fts": WORD, "order-by": [{"order": "rank"}]},
            "filter+order, no fts": {**scope, "parsed": [score], "order-by": [published]},
            "order by published only": {**scope, "order-by": [published]},
        }  # fmt: skip
        statements = {name: await statement_of(storage, q) for name, q in queries.items()}
        times: dict[str, list[float]] = {name: [] for name in [*queries, NEW]}
        raw_times: dict[str, list[float]] = {name: [] for name in [*queries, NEW]}
        # the same search with its tags in another order (repeated) each time: a query
        # the storage has not seen (its statement is built), the same rows and SQL but
        # its values; its baseline is the statement of fts+overlap+order
        tag_orders = list(itertools.permutations(overlap["value"]))[1:]

        def unseen(i: int) -> list[str]:
            return [*tag_orders[i % len(tag_orders)], *["tag1"] * (i // len(tag_orders))]

        fresh = itertools.count()  # each call of the NEW figure: a query not seen before

        def search(name: str) -> Any:
            query = queries.get(name)
            if query is None:  # NEW
                parsed = [{**overlap, "value": unseen(next(fresh))}]
                query = {**queries[FIGURE], "parsed": parsed}
            return storage.search_pubsub_items(query)

        cpu: dict[str, list[float]] = {n: [] for f in (FIGURE, NEW) for n in (f, f"{f}, raw SQL")}
        for name in [*queries, NEW]:
            found = await search(name)
            assert len(found) == 20, (name, len(found))
        for _run in range(args.runs):  # interleaved: background load hits every query alike
            for name in [*queries, NEW]:
                times[name].append(await time_async(lambda n=name: search(n), args.requests))
                raw_sql = [statements[FIGURE if name == NEW else name]]
                raw_times[name].append(time_call(lambda q=raw_sql: raw.run(q), args.requests))
                if name in (FIGURE, NEW):  # again, in CPU time of the process
                    cpu[name].append(
                        await time_async(lambda n=name: search(n), args.requests, cpu_time)
                    )
                    again = time_call(lambda q=raw_sql: raw.run(q), args.requests, cpu_time)
                    cpu[f"{name}, raw SQL"].append(again)
        first = (await storage.search_pubsub_items(queries["fts+filter+order"]))[0]
        assert WORD in first.data.toXml() and first.parsed["score"] >= 500
        figures = {name: round(median(values) * 1000, 2) for name, values in times.items()}
        cpu_ms = {name: round(median(values) * 1000, 3) for name, values in cpu.items()}
        raw_figures = {name: round(median(v) * 1000, 3) for name, v in raw_times.items()}
        plans = {name: await explain(storage, [statements[name]]) for name in queries}
        await storage.delete_profile(profile)
    finally:
        raw.close()
        await storage.close()
    baseline = "fts only"
    result = {
        "benchmark": "search",
        "engine": engine_name(args.db_url),
        "items": args.items,
        "nodes": NODES,
        "matching_fts": args.items // len(TOPICS),
        "runs": args.runs,
        "requests": args.requests,
        "published_declared": args.declare,
        "fill_s": round(fill_s, 1),
        "median_ms": figures,
        "raw_sql_ms": raw_figures,
        "overhead_over_raw_ms": {n: round(figures[n] - raw_figures[n], 2) for n in figures},
        "cpu_time_ms": cpu_ms,
        "cpu_overhead_over_raw_ms": {
            f: round(cpu_ms[f] - cpu_ms[f"{f}, raw SQL"], 3) for f in (FIGURE, NEW)
        },
        "plans": plans,
        "results": [
            {"name": name, "value": ms, "unit": "ms", "baseline": f"{name}, raw SQL"}
            for name, ms in figures.items()
        ] + [
            {"name": f"{name}, raw SQL", "value": ms, "unit": "ms"}
            for name, ms in raw_figures.items()
        ] + [
            {"name": f"{name}, CPU time", "value": ms, "unit": "ms"}
            | ({} if name.endswith("raw SQL") else {"baseline": f"{name}, raw SQL, CPU time"})
            for name, ms in cpu_ms.items()
        ],
    }
    if not args.json:
        print(
            f"{args.items} items in {NODES} nodes cached in {fill_s:.1f} s "
            f"({result['engine']}); fts word in {result['matching_fts']} items; "
            f"limit 20, median of {args.runs} runs"
        )
        for name, ms in figures.items():
            raw_ms = raw_figures[name]
            print(f"  {name:24} {ms:8.2f} ms  ({ms / figures[baseline]:.2f} x {baseline}; "
                  f"raw SQL {raw_ms} ms, overhead {ms - raw_ms:.2f} ms)")
        for name, overhead in result["cpu_overhead_over_raw_ms"].items():
            print(f"  {name}: CPU time {cpu_ms[name]} ms, raw SQL {cpu_ms[name + ', raw SQL']}"
                  f" ms, overhead {overhead} ms")
        for name, lines in plans.items():
            print(f"  plan of {name}:")
            for line in lines:
                print(f"    {line}")
    return result


if __name__ == "__main__":
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--items", type=int, default=50_000, help="items in all")
    p.add_argument("--no-declare", dest="declare", action="store_false",
                   help="do not declare 'published' a sort key (as before issue #14)")
    p.add_argument("--requests", type=int, default=10,
                   help="searches per run and figure (their mean is one sample)")
    p.set_defaults(runs=15)
    main(run, p.parse_args())
