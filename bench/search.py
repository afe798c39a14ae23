"""Benchmark: search_pubsub_items over 100,000 cached items in 10 nodes.

Caches N Atom-like items (default 100,000) spread over 10 nodes of a new profile;
each item's summary carries one topic word out of 20 (5 % of the items per word)
and its parsed data a ``score`` (0-999) and a ``published`` time stamp. Then times,
median of several interleaved runs, through the public API (thread hop, SQL, XML
parsing of the results):

- ``fts+filter+order``: ``fts`` one topic word, ``score >= 500``, ordered by
  ``published`` desc, limit 20 (the figure asked for);
- ``fts only``: the same word, by rank, limit 20 (the baseline of the ratio);
- ``filter+order, no fts``: the same filter and order without ``fts``, which must
  read every item of the profile (shows what the full-text index saves).

The database is analysed after the fill (as autovacuum or ``PRAGMA optimize`` would).
The query plans are printed (``EXPLAIN QUERY PLAN`` on SQLite, ``EXPLAIN`` on
PostgreSQL): the full-text index is read first, items are fetched by primary key.

    /work/venv/bin/python bench/search.py [--json] [--db-url URL] [--items N] [--runs N]
"""

from __future__ import annotations

import time
from typing import Any

from _common import SERVICE, atom_item, engine_name, main, median, open_storage, parser
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from sat_storage.storage.search import build_search

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


async def explain(storage: Any, query: dict[str, Any]) -> list[str]:
    """The query plan of a search."""
    profile_ids = [storage.get_profile_id(p) for p in query["profiles"]]
    stmt = build_search(query, profile_ids, storage.dialect)
    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *args: Any) -> None:
        captured.append((statement, params))

    def txn(session: Session) -> list[str]:
        connection = session.connection()
        event.listen(connection, "before_cursor_execute", capture)
        try:
            connection.execute(stmt).all()
        finally:
            event.remove(connection, "before_cursor_execute", capture)
        prefix = "EXPLAIN QUERY PLAN " if storage.dialect == "sqlite" else "EXPLAIN "
        sql, params = captured[-1]
        return [str(row[-1]) for row in connection.exec_driver_sql(prefix + sql, params)]

    return await storage.db.run(txn)


async def run(args: Any, workdir: str) -> dict[str, Any]:
    storage = await open_storage(args.db_url, workdir)
    profile = f"bench-search-{time.time_ns()}"
    try:
        await storage.create_profile(profile)
        client = BenchClient(profile)
        start = time.perf_counter()
        await fill(storage, client, args.items)
        fill_s = time.perf_counter() - start
        # statistics, as a live database has them (autovacuum, PRAGMA optimize)
        await storage.db.run(lambda session: session.execute(text("ANALYZE")))
        scope = {"profiles": [profile], "limit": 20}
        score = {"path": ["score"], "op": ">=", "value": 500}
        published = {"path": ["published"], "direction": "desc"}
        queries = {
            "fts+filter+order": {**scope, "fts": WORD, "parsed": [score], "order-by": [published]},
            "fts only": {**scope, "fts": WORD, "order-by": [{"order": "rank"}]},
            "filter+order, no fts": {**scope, "parsed": [score], "order-by": [published]},
        }
        times: dict[str, list[float]] = {name: [] for name in queries}
        for _ in range(args.runs):  # interleaved: background load hits every query alike
            for name, query in queries.items():
                begin = time.perf_counter()
                found = await storage.search_pubsub_items(query)
                times[name].append(time.perf_counter() - begin)
                assert len(found) == 20, (name, len(found))
        first = (await storage.search_pubsub_items(queries["fts+filter+order"]))[0]
        assert WORD in first.data.toXml() and first.parsed["score"] >= 500
        figures = {name: round(median(values) * 1000, 2) for name, values in times.items()}
        plans = {name: await explain(storage, query) for name, query in queries.items()}
        await storage.delete_profile(profile)
    finally:
        await storage.close()
    baseline = "fts only"
    result = {
        "benchmark": "search",
        "engine": engine_name(args.db_url),
        "items": args.items,
        "nodes": NODES,
        "matching_fts": args.items // len(TOPICS),
        "runs": args.runs,
        "fill_s": round(fill_s, 1),
        "median_ms": figures,
        "plans": plans,
        "results": [
            {"name": name, "value": ms, "unit": "ms"}
            | ({} if name == baseline else {"baseline": baseline})
            for name, ms in figures.items()
        ],
    }
    if not args.json:
        print(
            f"{args.items} items in {NODES} nodes cached in {fill_s:.1f} s "
            f"({result['engine']}); fts word in {result['matching_fts']} items; "
            f"limit 20, median of {args.runs} runs"
        )
        for name, ms in figures.items():
            print(f"  {name:22} {ms:8.2f} ms  ({ms / figures[baseline]:.2f} x {baseline})")
        for name, lines in plans.items():
            print(f"  plan of {name}:")
            for line in lines:
                print(f"    {line}")
    return result


if __name__ == "__main__":
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--items", type=int, default=100_000, help="items in all")
    p.set_defaults(runs=15)
    main(run, p.parse_args())
