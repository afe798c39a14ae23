"""XEP-0060 ``get_items`` answered from the pubsub cache vs the same request to Prosody.

A throwaway Prosody is started on loopback (the test suite's fixture), a host with the
project's plugins connects a profile, a node gets ``--node-items`` Atom items and is
synchronised in the cache. Then the same ``get_items`` requests (the newest
``--max-items``, and every item) are timed ``--requests`` times in a row, once with
``extra={"use_cache": False}`` (network) and once from the cache; the median of
``--runs`` runs of the mean latency is reported, with the ratio cache / network.
The answers are checked to be the same, and the cache to send no IQ.

    python bench/cache_vs_network.py [--node-items 250] [--max-items 20] [--json]
                                     [--read-cache-items 0]   # without the read cache
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twisted.words.xish import domish  # noqa: E402

from bench._common import count_iqs, main, median, parser  # noqa: E402
from sat_storage.host import Host  # noqa: E402
from sat_storage.models import SyncState  # noqa: E402
from twisted_tests.pubsub_cache.harness import BASE_CONFIG, connected_profile  # noqa: E402
from twisted_tests.pubsub_cache.helpers import atom_item  # noqa: E402
from twisted_tests.xmpp_servers import prosody, unique_name  # noqa: E402

NODE_OPTIONS = {"pubsub#max_items": "1000", "pubsub#access_model": "open"}


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def timed(get: Any, requests: int) -> tuple[float, list[domish.Element]]:
    """Mean latency (ms) of ``requests`` sequential calls of ``get``, and its last answer."""
    start = time.perf_counter()
    for _ in range(requests):
        items, _metadata = await get()
    return (time.perf_counter() - start) * 1000 / requests, items


async def run(args: Any, workdir: str) -> dict[str, Any]:
    server = prosody()
    config = Path(workdir, "sat.conf")
    storage_section = ""
    if args.read_cache_items is not None:
        storage_section = f"[storage]\nread_cache_items = {args.read_cache_items}\n"
    config.write_text(BASE_CONFIG + storage_section)
    db_url = args.db_url or f"sqlite:///{os.path.join(workdir, 'bench.sqlite')}"
    host = Host(config, db_url)
    await host.start()
    try:
        return await measure(args, host, server)
    finally:
        await host.stop()


async def measure(args: Any, host: Host, server: Any) -> dict[str, Any]:
    xep_0060 = host.plugins["XEP-0060"]
    cache = host.plugins["PUBSUB_CACHE"]
    client = await connected_profile(host, server, await server.admin_account())
    service = server.pubsub_service
    node = unique_name("urn:xmpp:microblog:0")
    progress(f"publishing {args.items} items on {server} ...")
    await xep_0060.create_node(client, service, node, NODE_OPTIONS)
    items = [atom_item(f"item-{i:05d}", f"title {i}") for i in range(args.items)]
    await xep_0060.publish(client, service, node, items)
    state = await cache.synchronise(client, service, node)
    if state is not SyncState.COMPLETED:
        raise RuntimeError(f"the node could not be synchronised: {state}")

    sent, stop_counting = count_iqs(client)
    results = []
    for label, kwargs in (
        (f"newest {args.max_items}", {"max_items": args.max_items}),
        (f"all {args.items}", {}),
    ):

        def network(kwargs: dict[str, Any] = kwargs) -> Any:
            return xep_0060.get_items(client, service, node, extra={"use_cache": False}, **kwargs)

        def cached(kwargs: dict[str, Any] = kwargs) -> Any:
            return xep_0060.get_items(client, service, node, **kwargs)

        network_ms, cache_ms = [], []
        for run_index in range(args.runs):
            ms, from_network = await timed(network, args.requests)
            network_ms.append(ms)
            del sent[:]
            ms, from_cache = await timed(cached, args.requests)
            cache_ms.append(ms)
            if sent:
                raise RuntimeError(f"the cache sent {len(sent)} IQs")
            if [i.toXml() for i in from_cache] != [i.toXml() for i in from_network]:
                raise RuntimeError("the cache and the network gave different items")
            progress(
                f"{label}, run {run_index + 1}: network {network_ms[-1]:.3f} ms, "
                f"cache {cache_ms[-1]:.3f} ms"
            )
        network_name = f"get_items {label}, Prosody on loopback"
        results.append({"name": network_name, "value": median(network_ms), "unit": "ms"})
        results.append(
            {
                "name": f"get_items {label}, from the cache",
                "value": median(cache_ms),
                "unit": "ms",
                "baseline": network_name,
                "speedup": median(network_ms) / median(cache_ms),
            }
        )
    stop_counting()
    if not args.json:
        for result in results:
            ratio = f"  ({result['speedup']:.1f}x faster)" if "speedup" in result else ""
            print(f"{result['name']}: {result['value']:.3f} ms{ratio}")
    return {
        "benchmark": "cache_vs_network",
        "items": args.items,
        "requests": args.requests,
        "runs": args.runs,
        "db": host.memory.storage.dialect,
        "read_cache_items": host.memory.storage.read_cache.max_items,
        "results": results,
    }


if __name__ == "__main__":
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--node-items", dest="items", type=int, default=250, help="items in the node")
    p.add_argument("--max-items", type=int, default=20, help="size of the 'newest' request")
    p.add_argument("--requests", type=int, default=100, help="requests per run")
    p.add_argument(
        "--read-cache-items",
        type=int,
        help="[storage] read_cache_items of the host (0: no read cache; default: the default)",
    )
    main(run, p.parse_args())
