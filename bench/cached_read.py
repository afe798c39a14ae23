"""Benchmark: a cached read in one transaction (get_synced_items) vs two.

A node gets ``--items`` Atom-like items and is marked COMPLETED. Then the read of a
cached ``get_items`` (the newest ``--max-items``) is timed ``--requests`` times in a
row, in three ways, interleaved over ``--runs`` runs (median of the mean latency):

- ``two_transactions``: ``get_pubsub_node`` then ``get_items`` (the baseline: the
  cache's read path before ``get_synced_items``);
- ``one_transaction``: ``get_synced_items`` with an ``ItemsQuery`` built per request
  (a hit of the read cache: the node's row, its page from memory);
- ``one_transaction_no_read_cache``: the same on a storage without read cache
  (``read_cache_items=0``, same database): node and page read in one transaction;
- ``page_only``: ``get_items`` with the node already in hand (one transaction, no
  look-up), for reference.

Ratios are to ``two_transactions`` in the same process.

    python bench/cached_read.py [--json] [--db-url URL] [--items 1000] [--max-items 20]
"""

from __future__ import annotations

import time
from typing import Any

from _common import SERVICE, Client, atom_items, engine_name, main, median, open_storage, parser

from sat_storage import ItemsQuery, Storage
from sat_storage.models import SyncState


async def run(args: Any, workdir: str) -> dict[str, Any]:
    storage = await open_storage(args.db_url, workdir)
    uncached = Storage(storage.db_url, read_cache_items=0)
    await uncached.initialise()
    name = f"cached-read-{time.time_ns()}"
    try:
        node = await storage.set_pubsub_node(Client, SERVICE, name)
        items, parsed = atom_items(args.items)
        await storage.cache_pubsub_items(Client, node, items, parsed)
        await storage.update_pubsub_node_sync_state(node, SyncState.COMPLETED)

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

        async def one_transaction_no_read_cache() -> list[Any]:
            query = ItemsQuery(max_items=args.max_items)
            found, (page, _) = await uncached.get_synced_items(Client, SERVICE, name, query)
            assert found is not None
            return page

        async def page_only() -> list[Any]:
            page, _ = await storage.get_items(node, max_items=args.max_items)
            return page

        cases = {
            "two_transactions": two_transactions,
            "one_transaction": one_transaction,
            "one_transaction_no_read_cache": one_transaction_no_read_cache,
            "page_only": page_only,
        }
        expected = [item.name for item in await two_transactions()]
        times: dict[str, list[float]] = {case: [] for case in cases}
        for _ in range(args.runs):  # interleaved: background load hits every case alike
            for case, read in cases.items():
                begin = time.perf_counter()
                for _ in range(args.requests):
                    page = await read()
                times[case].append((time.perf_counter() - begin) / args.requests)
                assert [item.name for item in page] == expected, case
    finally:
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
