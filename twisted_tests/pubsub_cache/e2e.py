"""What the end-to-end cache tests share: a host, a writer and a reader on a real server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sat_storage.plugins.plugin_xep_0277 import NS_MICROBLOG
from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from sat_storage.host import Host
from sat_storage.models import SyncState
from twisted_tests.pubsub_cache.harness import connected_profile, make_host
from twisted_tests.pubsub_cache.helpers import atom_item
from twisted_tests.xmpp_servers import XMPPServer, unique_name

TIMEOUT = 20.0  # seconds to wait for a server event
NODE_OPTIONS = {
    "pubsub#max_items": "1000",  # Prosody keeps 20 by default
    "pubsub#access_model": "open",
    "pubsub#notify_retract": True,  # ejabberd: also purge notifications
    "pubsub#notify_delete": True,
}


def ids(items: list[domish.Element]) -> list[str]:
    return [item["id"] for item in items]


def xml(items: list[domish.Element]) -> list[str]:
    return [item.toXml() for item in items]


class ServerTestCase(TestCase):
    """A host with two connected profiles: ``writer`` (publishes) and ``reader`` (caches)."""

    server_factory: Callable[[], XMPPServer]
    config = "[pubsub_cache]\npage_size = 40\n"

    async def setUp(self) -> None:
        self.server = type(self).server_factory()
        self.host = await self.start_host()
        self.cache = self.host.plugins["PUBSUB_CACHE"]
        self.xep_0060 = self.host.plugins["XEP-0060"]
        self.service = self.server.pubsub_service
        self.writer = await connected_profile(
            self.host, self.server, await self.server.admin_account()
        )
        self.reader = await connected_profile(
            self.host, self.server, await self.server.create_account("reader")
        )
        self.node = unique_name(NS_MICROBLOG)

    async def start_host(self, db_url: str | None = None) -> Host:
        return await make_host(self, self.config, db_url)

    async def create_node(self, node: str | None = None, count: int = 0) -> list[str]:
        """Create the node (or ``node``) and publish ``count`` Atom items in it."""
        node = node or self.node
        await self.xep_0060.create_node(self.writer, self.service, node, NODE_OPTIONS)
        return await self.publish(node, [f"item-{i:03d}" for i in range(count)])

    async def publish(self, node: str, item_ids: list[str], title: str = "title") -> list[str]:
        items = [atom_item(item_id, f"{title} {item_id}") for item_id in item_ids]
        return await self.xep_0060.publish(self.writer, self.service, node, items)

    def hold_first_page(self, cache: Any) -> tuple[defer.Deferred[None], defer.Deferred[None]]:
        """Make ``cache``'s next synchronisation wait before its first page request.

        Returns (fires when it waits, fire to let it go on).
        """
        waiting: defer.Deferred[None] = defer.Deferred()
        go_on: defer.Deferred[None] = defer.Deferred()
        original = cache.runner.fetch

        async def fetch(*args: Any) -> Any:
            if not waiting.called:
                waiting.callback(None)
                await go_on
            return await original(*args)

        self.patch(cache.runner, "fetch", fetch)
        return waiting, go_on

    def count_iqs(self, client: Any) -> list[domish.Element]:
        """The IQs ``client`` sends from now on (a list filled as they go)."""
        sent: list[domish.Element] = []
        xs = client.xmlstream
        original = xs.send

        def send(obj: Any) -> None:
            if isinstance(obj, domish.Element) and obj.name == "iq":
                sent.append(obj)
            original(obj)

        self.patch(xs, "send", send)
        return sent

    def next_event(
        self, kind: str, node: str | None = None, client: Any = None, count: int = 1
    ) -> defer.Deferred[Any]:
        """Fires with the ``count``-th next ``kind`` event of ``node`` for ``client``.

        ``client`` defaults to the reader. The callback runs after the cache's own
        (lower priority, same sequential dispatch), so the cache is up to date when
        this fires.
        """
        node = node or self.node
        client = client or self.reader
        d: defer.Deferred[Any] = defer.Deferred()
        seen: list[Any] = []

        def callback(event_client: Any, event: Any) -> None:
            if event_client is client and event.nodeIdentifier == node and not d.called:
                seen.append(event)
                if len(seen) == count:
                    d.callback(event)

        self.xep_0060.add_managed_node(node, priority=-1000, **{f"{kind}_cb": callback})
        self.addCleanup(self.xep_0060.remove_managed_node, node, callback)
        return d.addTimeout(TIMEOUT, reactor)

    async def synchronised(self, node: str | None = None, client: Any = None) -> SyncState:
        """Wait for the running synchronisation of the node; its (final) state."""
        client = client or self.reader
        running = self.cache.syncs.join((client.profile, self.service.full(), node or self.node))
        if running is not None:
            return await running
        return (await self.cached_node(node, client)).sync_state

    async def cached_node(self, node: str | None = None, client: Any = None) -> Any:
        return await self.host.memory.storage.get_pubsub_node(
            client or self.reader, self.service, node or self.node, with_items=True
        )

    async def get(
        self, client: Any = None, node: str | None = None, service: JID | None = None, **kwargs: Any
    ) -> tuple[list[domish.Element], dict[str, Any]]:
        return await self.xep_0060.get_items(
            client or self.reader, service or self.service, node or self.node, **kwargs
        )
