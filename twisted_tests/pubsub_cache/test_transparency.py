"""The four differences between the cache and the service found with an independent
client (issue #8), each on ejabberd and Prosody: order of republished items,
notifications without payload, a node requested before it exists, freshness after
the host was away. slixmpp publishes and reads the service directly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import reactor, task

from sat_storage.exceptions import NotFound
from twisted_tests.db import database_url
from twisted_tests.pubsub_cache.e2e import TIMEOUT
from twisted_tests.pubsub_cache.harness import make_host
from twisted_tests.pubsub_cache.helpers import next_call
from twisted_tests.pubsub_cache.transparency import TransparencyCase, atom
from twisted_tests.xmpp_servers import XMPPServer, ejabberd, prosody

IDS = [f"item-{i:03d}" for i in range(5)]
RECONNECTION_BOUND = 60.0  # seconds on the host's clock past the first delay (~3 s)


class OrderMixin:
    """Defect 1: the order of a plain request follows the service's."""

    #: whether the service sends its last published item to a new subscriber
    resends_last: bool

    async def setUp(self) -> None:
        await super().setUp()
        await self.create()
        await self.peer.publish_many(self.node, [atom(i, f"first {i}") for i in IDS])
        # an old entry edited: the service's "last published item"
        await self.peer.publish(self.node, *atom("item-001", "edited before the sync"))

    async def test_after_sync(self) -> None:
        """Right after the sync (ejabberd re-sends its last published item to the new
        subscriber), plain and max_items answers are the service's."""
        resent = self.next_event("items") if self.resends_last else None
        await self.synced()
        if resent is not None:
            await resent
        for request in ({}, {"max_items": 1}, {"max_items": 2}):
            await self.assert_same(**request)

    async def test_republished_live(self) -> None:
        """An item republished with new content while the cache follows the node takes
        the place the service gives it (ejabberd: kept; Prosody: at the end)."""
        await self.synced()
        event = self.item_event("item-002")
        await self.peer.publish(self.node, *atom("item-002", "edited live"))
        await event
        for request in ({}, {"max_items": 1}, {"max_items": 3}):
            await self.assert_same(**request)
        self.assertEqual((await self.from_cache())[0], (await self.service_answer())[0])

    async def test_explicit_order_kept(self) -> None:
        """An explicit ``order_by`` keeps Libervia's semantics: by modification, the
        item edited live is the newest, whatever the service's order."""
        await self.synced()
        event = self.item_event("item-002")
        await self.peer.publish(self.node, *atom("item-002", "edited live"))
        await event
        items, _ = await self.get(max_items=1, extra={"order_by": ["modification"]})
        self.assertEqual([item["id"] for item in items], ["item-002"])


class PayloadlessMixin:
    """Defect 2: notifications without payload (``deliver_payloads = 0``)."""

    async def setUp(self) -> None:
        await super().setUp()
        await self.create(**{"pubsub#deliver_payloads": False})
        await self.peer.publish_many(self.node, [atom(i, f"first {i}") for i in IDS])
        await self.synced()

    async def test_edit_and_new(self) -> None:
        """An edited item and a new one notified without payload: the cache answers
        their full payloads, as the service does."""
        last = self.item_event("item-new")
        await self.peer.publish(self.node, *atom("item-003", "edited, notified bare"))
        await self.peer.publish(self.node, *atom("item-new", "new, notified bare"))
        await last
        await self.assert_same()
        ids, payloads, _ = await self.from_cache(item_ids=["item-003", "item-new"])
        self.assertTrue(all("edited, notified bare" in p or "new, notified" in p for p in payloads))


class MissingNodeMixin:
    """Defect 3: a node requested before it exists."""

    config = "[pubsub_cache]\npage_size = 40\nmissing_node_delay = 0\n"

    async def test_cached_once_created(self) -> None:
        """item-not-found records nothing (not NO_SYNC); once created, the node is
        synchronised and answered from the cache."""
        with self.assertRaises(NotFound):
            await self.get()
        self.assertIsNone(await self.cached_node())
        await self.create()
        await self.peer.publish_many(self.node, [atom(i, i) for i in IDS])
        await self.synced()
        await self.from_cache()
        await self.assert_same()

    async def test_negative_entry(self) -> None:
        """Within ``missing_node_delay`` of item-not-found, a request goes straight to
        the network (one IQ: no analysis, no subscription); after it, the node is
        handled as new."""
        clock = task.Clock()
        self.patch(self.cache.missing, "clock", clock)
        self.patch(self.cache.missing, "delay", 30.0)
        with self.assertRaises(NotFound):
            await self.get()
        await self.create()
        sent = self.count_iqs(self.reader)
        await self.get()
        self.assertEqual(len(sent), 1)
        clock.advance(30)
        await self.synced()
        await self.from_cache()


class DowntimeMixin:
    """Defect 4: changes made while the host was stopped, or its connection cut."""

    async def setUp(self) -> None:
        self.db_url = database_url(self)
        await super().setUp()
        # only the reader's events may reach this host's cache
        await self.host.disconnect(self.writer.profile)
        self.main, self.purged, self.deleted = self.node, self.node + "-p", self.node + "-d"
        for node, count in ((self.main, 20), (self.purged, 8), (self.deleted, 6)):
            await self.create(node)
            await self.peer.publish_many(
                node, [atom(f"n-{i:02d}", f"v1 {i}") for i in range(count)]
            )
            await self.synced(node)

    async def start_host(self, db_url: str | None = None) -> Any:
        self.clock = task.Clock()  # the clients' reconnection delays
        return await make_host(self, self.config, db_url or self.db_url, clock=self.clock)

    async def change_everything(self) -> None:
        """Another client: publish 5, retract 3, republish 1 with new content, purge a
        second node, delete a third."""
        await self.peer.publish_many(self.main, [atom(f"new-{i}", f"new {i}") for i in range(5)])
        for item_id in ("n-03", "n-10", "new-1"):
            await self.peer.retract(self.main, item_id)
        await self.peer.publish(self.main, *atom("n-05", "v2 republished"))
        await self.peer.purge(self.purged)
        await self.peer.delete(self.deleted)

    async def check_after(self) -> None:
        """First answers equal the service's; once revalidated, from the cache (no IQ);
        the purged node is empty, the deleted one gone."""
        for request in ({}, {"max_items": 3}):
            await self.assert_same(self.main, **request)
        outcomes = await self.revalidated()
        self.assertEqual(sorted(outcomes.values()), ["changed", "changed", "deleted"], outcomes)
        service = await self.service_answer(self.main)
        self.assertEqual((await self.from_cache(self.main))[:2], service[:2])
        self.assertEqual(len(service[0]), 22)
        self.assertEqual((await self.from_cache(self.purged))[0], [])
        self.assertIsNone(await self.cached_node(self.deleted))
        metadata = (await self.get(node=self.main))[1]["cache"]
        self.assertEqual(metadata["live"], True)

    async def test_host_stopped(self) -> None:
        """Host stopped, changes, host started on the same database."""
        profile = self.reader.profile
        await self.host.stop()
        await self.change_everything()
        self.host = await self.start_host(self.db_url)
        self.cache = self.host.plugins["PUBSUB_CACHE"]
        self.xep_0060 = self.host.plugins["XEP-0060"]
        self.reader = await self.host.connect(profile)
        await self.check_after()

    async def test_connection_cut(self) -> None:
        """The reader's TCP connection cut while the host runs, changes, the client
        reconnects by itself (task.Clock times its delay)."""
        _, disconnected = next_call(self, self.cache, "profile_disconnected")
        _, connected = next_call(self, self.cache, "profile_connected")
        with self.assertLogs("sat_storage.xmpp", "WARNING"):
            self.reader.xmlstream.transport.abortConnection()
            await disconnected.addTimeout(TIMEOUT, reactor)
        await self.change_everything()
        self.clock.advance(RECONNECTION_BOUND)
        await connected.addTimeout(TIMEOUT, reactor)
        await self.check_after()


class ProsodyOrderTests(OrderMixin, TransparencyCase):
    server_factory: Callable[[], XMPPServer] = staticmethod(prosody)
    resends_last = False


class EjabberdOrderTests(OrderMixin, TransparencyCase):
    server_factory = staticmethod(ejabberd)
    resends_last = True


class ProsodyPayloadlessTests(PayloadlessMixin, TransparencyCase):
    server_factory = staticmethod(prosody)


class EjabberdPayloadlessTests(PayloadlessMixin, TransparencyCase):
    server_factory = staticmethod(ejabberd)


class ProsodyMissingNodeTests(MissingNodeMixin, TransparencyCase):
    server_factory = staticmethod(prosody)


class EjabberdMissingNodeTests(MissingNodeMixin, TransparencyCase):
    server_factory = staticmethod(ejabberd)


class ProsodyDowntimeTests(DowntimeMixin, TransparencyCase):
    server_factory = staticmethod(prosody)


class EjabberdDowntimeTests(DowntimeMixin, TransparencyCase):
    server_factory = staticmethod(ejabberd)
