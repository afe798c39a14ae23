"""Benchmark: search_pubsub_items over 50,000 cached items in 10 nodes.

Caches N Atom-like items (default 50,000) spread over 10 nodes of a new profile;
each item's summary carries one topic word out of 20 (5 % of the items per word)
and its parsed data a ``score`` (0-999) and a ``published`` time stamp. Then times,
median of several interleaved runs, through the public API (thread hop, SQL, XML
parsing of the results):

- ``fts+filter+order``: ``fts`` one topic word, ``score >= 500``, ordered by
  ``published`` desc, limit 20;
- ``fts+overlap+order``: the same word, tags overlapping 4 of the 50 tags, ordered by
  ``published`` desc, limit 20 (the figure of issue #14);
- ``fts only``: the same word, by rank, limit 20;
- ``filter+order, no fts``: the same filter and order without ``fts``, which must
  read every item of the profile (shows what the full-text index saves);
- ``order by published only``: no filter, ordered by ``published`` desc, limit 20
  (a scan, unless an analyser declared ``published`` a sort key).

Each figure's baseline is its own statement (captured from the storage) replayed
with the driver alone in the calling thread (``..., raw SQL``): the ratio and the
overhead show what the storage adds (thread hop, checks, ORM rows, XML parsing).

The database is analysed after the fill (as autovacuum or ``PRAGMA optimize`` would).
The query plans are printed (``EXPLAIN QUERY PLAN`` on SQLite, ``EXPLAIN`` on
PostgreSQL): the full-text index is read first, items are fetched by primary key.

    /work/venv/bin/python bench/search.py [--json] [--db-url URL] [--items N] [--runs N]
"""

from __future__ import annotations

import time
from typing import Any

from _common import (
    SERVICE,
    RawDriver,
    atom_item,
    capture_statements,
    engine_name,
    main,
    median,
    open_storage,
    parser,
    time_call,
)
from sqlalchemy import text
from sqlalchemy.orm import Session

NODES = 10
BATCH = 5_000
TOPICS = (
    "astronomy", "baking", "chess", "cycling", "databases", "economics", "football",
    "gardening", "history", "jazz", "knitting", "linguistics", "mountains", "networking",
    "origami", "photography", "quantum", "robotics", "sailing", "typography",
)  # fmt: skip
WORD = "gardening"


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
    statements, stop = capture_statements(storage.db.engine)
    try:
        await storage.search_pubsub_items(query)
    finally:
        stop()
    return [s for s in statements if s[0].lstrip().upper().startswith("SELECT")][-1]


async def explain(storage: Any, statement: tuple[str, Any]) -> list[str]:
    """The query plan of a search's statement."""
    prefix = "EXPLAIN QUERY PLAN " if storage.dialect == "sqlite" else "EXPLAIN "

    def txn(session: Session) -> list[str]:
        sql, params = statement
        rows = session.connection().exec_driver_sql(prefix + sql, params)
        return [str(row[-1]) for row in rows]

    return await storage.db.run(txn)


async def run(args: Any, workdir: str) -> dict[str, Any]:
    storage = await open_storage(args.db_url, workdir)
    raw = RawDriver(storage)
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
        times: dict[str, list[float]] = {name: [] for name in queries}
        raw_times: dict[str, list[float]] = {name: [] for name in queries}
        for _ in range(args.runs):  # interleaved: background load hits every query alike
            for name, query in queries.items():
                begin = time.perf_counter()
                found = await storage.search_pubsub_items(query)
                times[name].append(time.perf_counter() - begin)
                assert len(found) == 20, (name, len(found))
                raw_times[name].append(time_call(lambda n=name: raw.run([statements[n]]), 1))
        first = (await storage.search_pubsub_items(queries["fts+filter+order"]))[0]
        assert WORD in first.data.toXml() and first.parsed["score"] >= 500
        figures = {name: round(median(values) * 1000, 2) for name, values in times.items()}
        raw_figures = {name: round(median(v) * 1000, 3) for name, v in raw_times.items()}
        plans = {name: await explain(storage, statements[name]) for name in queries}
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
        "published_declared": args.declare,
        "fill_s": round(fill_s, 1),
        "median_ms": figures,
        "raw_sql_ms": raw_figures,
        "overhead_over_raw_ms": {n: round(figures[n] - raw_figures[n], 2) for n in figures},
        "plans": plans,
        "results": [
            {"name": name, "value": ms, "unit": "ms", "baseline": f"{name}, raw SQL"}
            for name, ms in figures.items()
        ] + [
            {"name": f"{name}, raw SQL", "value": ms, "unit": "ms"}
            for name, ms in raw_figures.items()
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
    p.set_defaults(runs=15)
    main(run, p.parse_args())
