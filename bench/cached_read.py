"""Benchmark: a cached read in one transaction (get_synced_items) vs two.

A node gets ``--items`` Atom-like items and is marked COMPLETED. Then the read of a
cached ``get_items`` (the newest ``--max-items``) is timed ``--requests`` times in a
row, in three ways, interleaved over ``--runs`` runs (median of the mean latency):

- ``two_transactions``: ``get_pubsub_node`` then ``get_items`` (the baseline: the
  cache's read path before ``get_synced_items``);
- ``one_transaction``: ``get_synced_items`` with an ``ItemsQuery`` built per request,
  asked again with no write between: a hit of the read cache (SQLite: told current
  by the wal-index header, answered in the calling thread with no query; PostgreSQL:
  one read of the node's row, its page from memory);
- ``hit_after_commit``: the same, after a commit of another connection to another
  node before each read (not timed): the hit is checked by one read of the node's
  row (SQLite: the header changed);
- ``miss``: the same, the read cache emptied before each read (the node's row and
  page read in one hop, then kept);
- ``one_transaction_no_read_cache``: the same on a storage without read cache
  (``read_cache_items=0``, same database): node and page read in one transaction;
- ``page_only``: ``get_items`` with the node already in hand (one transaction, no
  look-up), for reference.

Ratios are to ``two_transactions`` in the same process.

    python bench/cached_read.py [--json] [--db-url URL] [--items 1000] [--max-items 20]
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from _common import SERVICE, Client, atom_items, engine_name, main, median, open_storage, parser
from reads import OtherWriter, time_after

from sat_storage import ItemsQuery, Storage
from sat_storage.models import SyncState


async def run(args: Any, workdir: str) -> dict[str, Any]:
    filler = await open_storage(args.db_url, workdir)
    name = f"cached-read-{time.time_ns()}"
    node = await filler.set_pubsub_node(Client, SERVICE, name)
    items, parsed = atom_items(args.items)
    await filler.cache_pubsub_items(Client, node, items, parsed)
    await filler.update_pubsub_node_sync_state(node, SyncState.COMPLETED)
    await filler.close()
    # the readers' connections are opened after the node was filled (the filling
    # connection reads slower)
    storage = Storage(filler.db_url)
    uncached = Storage(filler.db_url, read_cache_items=0)
    await storage.initialise()
    await uncached.initialise()
    writer: OtherWriter | None = None
    try:

        async def two_transactions() -> list[Any]:
            found = await storage.get_pubsub_node(Client, SERVICE, name)
            assert found is not None and found.sync_state is SyncState.COMPLETED
            page, _ = await storage.get_items(found, max_items=args.max_items)
            return page

        async def one_transaction() -> list[Any]:
            query = ItemsQuery(max_items=args.max_items)
            found, (page, _) = await storage.get_synced_items(Client, SERVICE, name, query)
            assert found is not None
            return page

        async def miss() -> list[Any]:
            storage.read_cache.clear()
            return await one_transaction()

        async def one_transaction_no_read_cache() -> list[Any]:
            query = ItemsQuery(max_items=args.max_items)
            found, (page, _) = await uncached.get_synced_items(Client, SERVICE, name, query)
            assert found is not None
            return page

        async def page_only() -> list[Any]:
            page, _ = await storage.get_items(node, max_items=args.max_items)
            return page

        other = await storage.set_pubsub_node(Client, SERVICE, f"{name}-other")
        writer = OtherWriter(storage, node.id, other.id)
        nothing: Callable[[], None] = lambda: None  # noqa: E731
        cases = {  # (before each read, not timed; the read)
            "two_transactions": (nothing, two_transactions),
            "one_transaction": (nothing, one_transaction),
            "hit_after_commit": (writer.other_node, one_transaction),
            "miss": (nothing, miss),
            "one_transaction_no_read_cache": (nothing, one_transaction_no_read_cache),
            "page_only": (nothing, page_only),
        }
        expected = [item.name for item in await two_transactions()]
        times: dict[str, list[float]] = {case: [] for case in cases}
        for _ in range(args.runs):  # interleaved: background load hits every case alike
            for case, (before, read) in cases.items():
                times[case].append(await time_after(before, read, args.requests))
                page = await read()
                assert [item.name for item in page] == expected, case
    finally:
        if writer is not None:
            writer.close()
        await uncached.close()
        await storage.close()
    figures = {case: round(median(values) * 1000, 3) for case, values in times.items()}
    baseline = figures["two_transactions"]
    ratios = {case: round(ms / baseline, 2) for case, ms in figures.items()}
    result = {
        "benchmark": "cached_read",
        "engine": engine_name(args.db_url),
        "items": args.items,
        "max_items": args.max_items,
        "requests": args.requests,
        "runs": args.runs,
        "median_ms": figures,
        "ratio_to_two_transactions": ratios,
    }
    result["results"] = [  # for bench/run
        {"name": case.replace("_", " "), "value": ms, "unit": "ms"}
        | ({} if case == "two_transactions" else {"baseline": "two transactions"})
        for case, ms in figures.items()
    ]
    if not args.json:
        print(f"{args.items} items, newest {args.max_items}: {args.requests} x {args.runs} reads")
        for case, ms in figures.items():
            print(f"  {case:29} {ms:8.3f} ms  ({ratios[case]:.2f} x two transactions)")
    return result


if __name__ == "__main__":
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--items", type=int, default=1000, help="items in the node")
    p.add_argument("--max-items", type=int, default=20, help="items per request")
    p.add_argument("--requests", type=int, default=50, help="requests per run and case")
    p.set_defaults(runs=7)
    main(run, p.parse_args())
