"""Catch-up after a reconnection vs a full resynchronisation of the same nodes.

A throwaway server (ejabberd by default: RSM; ``--server prosody``: no RSM) is
started on loopback; a second host (no cache) publishes ``--nodes`` nodes of
``--items`` Atom items, which the reader's host synchronises. Then, for 0 %, 1 % and
100 % of the items changed (republished with new content) while the reader was
disconnected, the reader reconnects and the time until every node is caught up
(:mod:`sat_storage.plugins.pubsub_cache.catchup`), and the requests it sent, are
measured; the caught-up nodes are checked to equal the service's. The baseline is a
full resynchronisation of the same nodes (``synchronise(resync=True)``), measured in
the same run.

    python bench/catch_up.py [--server ejabberd|prosody] [--nodes 20] [--items 1000] [--json]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from bench._common import count_iqs, main, parser  # noqa: E402
from sat_storage.host import Host  # noqa: E402
from sat_storage.models import SyncState  # noqa: E402
from twisted_tests.pubsub_cache.harness import BASE_CONFIG, connected_profile  # noqa: E402
from twisted_tests.pubsub_cache.helpers import atom_item  # noqa: E402
from twisted_tests.xmpp_servers import ejabberd, prosody, unique_name  # noqa: E402

NODE_OPTIONS = {"pubsub#max_items": "1000", "pubsub#access_model": "open"}
SHARES = (0.0, 0.01, 1.0)
#: items published at once (Prosody's file storage answers 1,000 at once past the IQ timeout)
PUBLISH_BATCH = 100


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def start(workdir: str, name: str, config: str, db_url: str | None = None) -> Host:
    path = Path(workdir, f"{name}.conf")
    path.write_text(BASE_CONFIG + config)
    host = Host(path, db_url or f"sqlite:///{os.path.join(workdir, name + '.sqlite')}")
    await host.start()
    return host


async def run(args: Any, workdir: str) -> dict[str, Any]:
    server = ejabberd() if args.server == "ejabberd" else prosody()
    writer_host = await start(workdir, "writer", "[pubsub_cache]\nstrategy = no_cache\n")
    reader_host = await start(workdir, "reader", "", args.db_url)
    try:
        return await measure(args, server, writer_host, reader_host)
    finally:
        await reader_host.stop()
        await writer_host.stop()


async def publish_all(publish: Any, client: Any, service: Any, node: str, items: list[Any]) -> None:
    """Publish ``items`` in batches of :data:`PUBLISH_BATCH`."""
    for start in range(0, len(items), PUBLISH_BATCH):
        await publish.publish(client, service, node, items[start : start + PUBLISH_BATCH])


async def measure(args: Any, server: Any, writer_host: Host, reader_host: Host) -> dict[str, Any]:
    service = server.pubsub_service
    writer = await connected_profile(writer_host, server, await server.admin_account())
    reader = await connected_profile(reader_host, server, await server.create_account("bench"))
    publish = writer_host.plugins["XEP-0060"]
    cache = reader_host.plugins["PUBSUB_CACHE"]
    nodes = [unique_name("urn:xmpp:microblog:0") for _ in range(args.nodes)]
    progress(f"publishing {args.nodes} x {args.items} items on {server} ...")
    for node in nodes:
        await publish.create_node(writer, service, node, NODE_OPTIONS)
        items = [atom_item(f"item-{i:05d}", f"v0 {i}") for i in range(args.items)]
        await publish_all(publish, writer, service, node, items)
        if await cache.synchronise(reader, service, node) is not SyncState.COMPLETED:
            raise RuntimeError(f"node {node} could not be synchronised")
    results: list[dict[str, Any]] = []

    sent, _ = count_iqs(reader)
    start_time = time.perf_counter()
    for node in nodes:
        await cache.synchronise(reader, service, node, resync=True)
    resync_s = time.perf_counter() - start_time
    resync_name = f"full resync of {args.nodes} nodes x {args.items} items"
    results += [
        {"name": resync_name, "value": resync_s, "unit": "s"},
        {"name": f"{resync_name}: requests", "value": len(sent), "unit": "IQs"},
    ]
    progress(f"full resync: {resync_s:.2f} s, {len(sent)} IQs")

    for version, share in enumerate(SHARES, start=1):
        await reader_host.disconnect(reader.profile)
        changed = round(args.items * share)
        for node in nodes:
            items = [atom_item(f"item-{i:05d}", f"v{version} {i}") for i in range(changed)]
            await publish_all(publish, writer, service, node, items)
        start_time = time.perf_counter()
        reader = await reader_host.connect(reader.profile)
        outcomes = await cache.revalidating[reader.profile]
        catch_up_s = time.perf_counter() - start_time
        requests = sum(cache.freshness.requests.get(key, 0) for key in outcomes)
        if sorted(set(outcomes.values())) not in (["in_step"], ["changed"]):
            raise RuntimeError(f"catch-up outcomes: {outcomes}")
        await check_equal(reader_host, reader, service, nodes)
        label = f"catch-up, {share:.0%} of the items changed"
        results += [
            {
                "name": label,
                "value": catch_up_s,
                "unit": "s",
                "baseline": resync_name,
                "speedup": resync_s / catch_up_s,
            },
            {
                "name": f"{label}: requests",
                "value": requests,
                "unit": "IQs",
                "baseline": f"{resync_name}: requests",
            },
        ]
        progress(
            f"{label}: {catch_up_s:.2f} s, {requests} IQs ({outcomes and set(outcomes.values())})"
        )
    if not args.json:
        for result in results:
            print(f"{result['name']}: {result['value']:.3f} {result['unit']}")
    return {
        "benchmark": "catch_up",
        "server": server.kind,
        "nodes": args.nodes,
        "items": args.items,
        "page_size": cache.settings.page_size,
        "db": reader_host.memory.storage.dialect,
        "results": results,
    }


async def check_equal(host: Host, client: Any, service: Any, nodes: list[str]) -> None:
    """Each caught-up node is answered from the cache as the service answers."""
    xep_0060 = host.plugins["XEP-0060"]
    for node in nodes:
        network, _ = await xep_0060.get_items(client, service, node, extra={"use_cache": False})
        cached, metadata = await xep_0060.get_items(client, service, node)
        if "cache" not in metadata:
            raise RuntimeError(f"node {node} was not answered from the cache")
        if [i.toXml() for i in cached] != [i.toXml() for i in network]:
            raise RuntimeError(f"node {node}: the cache differs from the service")


if __name__ == "__main__":
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--server", choices=("ejabberd", "prosody"), default="ejabberd")
    p.add_argument("--nodes", type=int, default=20, help="cached nodes")
    p.add_argument("--items", type=int, default=1000, help="items per node")
    main(run, p.parse_args())
