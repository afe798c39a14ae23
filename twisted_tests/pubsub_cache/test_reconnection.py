"""A synchronisation cut by the loss of the client's connection is resumed once the
client has reconnected by itself (real Prosody).

The reader's TCP connection is dropped at a chosen point of the synchronisation;
the host's clock (task.Clock) times the reconnection delay.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, reactor, task
from twisted.words.xish import domish

from sat_storage.host import Host
from sat_storage.models import SyncState
from twisted_tests.pubsub_cache.e2e import TIMEOUT, ServerTestCase, ids
from twisted_tests.pubsub_cache.harness import make_host
from twisted_tests.pubsub_cache.helpers import NS_PUBSUB, next_call
from twisted_tests.xmpp_servers import prosody

COUNT = 40
ALL_IDS = [f"item-{i:03d}" for i in range(COUNT)]
RETRY_BOUND = 60.0  # seconds on the host's clock past the first reconnection delay (~3 s)


def wait(d: defer.Deferred[Any]) -> defer.Deferred[Any]:
    return d.addTimeout(TIMEOUT, reactor)


class ReconnectionTests(ServerTestCase):
    """The reader's sync of a 40-item node (pages of 10) is cut by a lost connection."""

    server_factory = staticmethod(prosody)
    config = "[pubsub_cache]\npage_size = 10\n"

    async def start_host(self, db_url: str | None = None) -> Host:
        self.clock = task.Clock()  # the clients' reconnection delays
        return await make_host(self, self.config, db_url, clock=self.clock)

    async def setUp(self) -> None:
        await super().setUp()
        await self.create_node(count=COUNT)
        self.lost, self.stopped = next_call(self, self.cache, "profile_disconnected")
        _, self.resumed = next_call(self, self.cache, "profile_connected")

    def drop(self) -> None:
        """Drop the reader's TCP connection (nothing more is read or written)."""
        self.reader.xmlstream.transport.abortConnection()

    def drop_on_items_request(self) -> None:
        """Drop the reader's connection as it sends an items request of the node."""
        xs = self.reader.xmlstream
        send = xs.send

        def sending(obj: Any) -> None:
            send(obj)
            if isinstance(obj, domish.Element) and obj.name == "iq":
                pubsub = next(obj.elements(NS_PUBSUB, "pubsub"), None)
                items = None if pubsub is None else next(pubsub.elements(NS_PUBSUB, "items"), None)
                if items is not None and items.getAttribute("node") == self.node:
                    self.drop()

        self.patch(xs, "send", sending)

    async def state(self) -> tuple[SyncState | None, str | None, list[str]]:
        """(sync state, owner, item names) of the reader's node, as stored."""
        node = await self.cached_node()
        return node.sync_state, node.sync_owner, [item.name for item in node.items]

    async def reconnect(self) -> None:
        """Let the reader reconnect; returns once the cache's profile_connected ran."""
        self.clock.advance(RETRY_BOUND)
        await wait(self.resumed)

    async def check_resumed(self) -> None:
        """The node ends COMPLETED with every item once; then read from the cache."""
        self.assertEqual(await self.synchronised(), SyncState.COMPLETED)
        self.assertEqual(await self.state(), (SyncState.COMPLETED, None, ALL_IDS))
        sent = self.count_iqs(self.reader)  # the new session's stream
        items, _ = await self.get(max_items=5)
        self.assertEqual((ids(items), sent), (ALL_IDS[-5:], []))

    async def test_request_in_flight(self) -> None:
        """The connection drops while the sync's items request is unanswered: the sync
        stops (node unsynchronised) and is resumed after the reconnection."""
        waiting, go_on = self.hold_first_page(self.cache)
        await self.get(max_items=1)
        await wait(waiting)
        self.drop_on_items_request()
        with self.assertLogs("sat_storage.xmpp", "WARNING") as logs:
            go_on.callback(None)  # the request is sent, the connection drops with it
            await wait(self.stopped)
        self.assertIn("connection lost", "\n".join(logs.output))
        self.assertEqual(await self.state(), (None, None, []))
        self.assertEqual(self.cache.syncs.keys(), [])
        await self.reconnect()
        await self.check_resumed()

    async def test_pages_written(self) -> None:
        """The connection drops once a first page is written: the partial items are
        removed, and the resumed sync caches every item once."""
        write_page = self.cache.runner.write_page
        pages: list[int] = []

        async def writing(client: Any, node: Any, sync_task: Any, items: Any) -> None:
            await write_page(client, node, sync_task, items)
            pages.append(len(items))
            if len(pages) == 1:
                self.drop()
                await wait(self.lost)  # the sync is being stopped

        self.patch(self.cache.runner, "write_page", writing)
        with self.assertLogs("sat_storage.xmpp", "WARNING"):
            await self.get(max_items=1)
            await wait(self.stopped)
        self.assertEqual(pages, [10])
        self.assertEqual(await self.state(), (None, None, []))
        await self.reconnect()
        await self.check_resumed()
        self.assertEqual(sum(pages), 10 + COUNT)
