"""A real host (real plugins from the entry points, real database) for the cache tests."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.trial.unittest import TestCase
from twisted.words.protocols.jabber.jid import JID

from sat_storage.host import Host
from sat_storage.models import PubsubNode, SyncState
from twisted_tests.db import database_url
from twisted_tests.xmpp_servers import Account, XMPPServer, unique_name

BASE_CONFIG = "[xmpp]\ntls = plaintext\n"


async def make_host(
    testcase: TestCase,
    config: str = "",
    db_url: str | None = None,
    stop: bool = True,
    clock: IReactorTime | None = None,
) -> Host:
    """A started host on the suite's database engine, stopped at cleanup.

    ``config`` is appended to a config allowing plaintext XMPP on loopback;
    ``clock``: the host's (its clients' reconnection delays).
    """
    path = Path(testcase.mktemp())
    path.write_text(BASE_CONFIG + config)
    host = Host(path, db_url or database_url(testcase), clock=clock)
    await host.start()
    if stop:
        testcase.addCleanup(host.stop)
    cache = host.plugins.get("PUBSUB_CACHE")
    if cache is not None:
        await cache.initialised
    return host


async def offline_client(host: Host, name: str = "alice") -> SimpleNamespace:
    """A profile with no connection: what the cache needs of a client (profile, jid)."""
    await host.memory.storage.create_profile(name)
    return SimpleNamespace(profile=name, jid=JID(f"{name}@example.org/test"))


async def completed_node(
    host: Host, client: Any, service: JID, name: str, items: list[Any], analyser: str | None
) -> PubsubNode:
    """A cached node holding ``items`` (parsed by ``analyser``), synchronised (and
    known in step now, as after a synchronisation)."""
    storage = host.memory.storage
    node = await storage.set_pubsub_node(client, service, name, analyser=analyser, type_="blog")
    await host.plugins["PUBSUB_CACHE"].cache_items(client, node, items)
    await storage.update_pubsub_node_sync_state(node, SyncState.COMPLETED)
    # in step now, as at the end of a synchronisation
    await host.plugins["PUBSUB_CACHE"].freshness.mark_live(
        (client.profile, service.full(), name), node
    )
    return node


async def connected_profile(host: Host, server: XMPPServer, account: Account) -> Any:
    """A new profile of ``account`` on ``server``, connected; its client."""
    storage = host.memory.storage
    profile = unique_name("profile")
    await storage.create_profile(profile)
    params = {
        "JabberID": account.jid.full(),
        "Password": account.password,
        "Force server": server.host,
        "Force port": str(server.port),
    }
    for param, value in params.items():
        await storage.set_ind_param("Connection", param, value, profile)
    return await host.connect(profile)
