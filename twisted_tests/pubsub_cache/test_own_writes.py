"""OwnWrites: a node this host writes to is answered by the network until the
notifications of the change have been handled, or for ``wait`` seconds at most.

``OwnWritesTests``: the bookkeeping alone (task.Clock). ``HeldReadTests``: the read
path of a real host and database honouring it (an offline client: what goes to the
network fails with "not connected")."""

from __future__ import annotations

import sat_storage.wokkel_compat  # noqa: F401  (before wokkel)

# isort: split
from types import SimpleNamespace
from typing import Any

from sat_storage.plugins.plugin_xep_0277 import NS_MICROBLOG
from sat_storage.plugins.pubsub_cache.own_writes import PURGED, OwnWrites
from sat_storage.plugins.pubsub_writes import PubsubWrite
from twisted.internet import task
from twisted.trial.unittest import TestCase
from twisted.words.protocols.jabber.jid import JID
from wokkel.pubsub import ItemsEvent

from twisted_tests.pubsub_cache.test_cache_storage import (
    SERVICE,
    CacheTestCase,
    event_item,
    ids,
)

WHERE = ("pubsub.example.org", "node")


async def _no_retraction(*_: object) -> None:
    raise AssertionError("not expected")


async def _followed(*_: object) -> bool:
    return True


class OwnWritesTests(TestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.writes = OwnWrites(self.clock, _no_retraction, _followed, wait=30.0)

    def test_pending_until_answered_and_seen(self) -> None:
        """A write is pending from its sending until it is answered and all its ids
        were notified (in either order)."""
        token = self.writes.writing(WHERE, ["a", "b"])
        self.assertIn(WHERE, self.writes)
        self.writes.seen(WHERE, ["a"])
        self.writes.answered(WHERE, token, ["a", "b"])
        self.assertIn(WHERE, self.writes)
        self.writes.seen(WHERE, ["b"])
        self.assertNotIn(WHERE, self.writes)

    def test_notified_before_answer(self) -> None:
        """Notifications handled before the service's answer count (the publisher's
        own stream may carry them first)."""
        token = self.writes.writing(WHERE, ["a"])
        self.writes.seen(WHERE, ["a"])
        self.assertIn(WHERE, self.writes)  # not answered yet
        self.writes.answered(WHERE, token, ["a"])
        self.assertNotIn(WHERE, self.writes)

    def test_unnamed_item(self) -> None:
        """An item sent without id waits for the id the service gave it, unless that
        id was notified already."""
        token = self.writes.writing(WHERE, [None])
        self.writes.answered(WHERE, token, ["given"])
        self.assertIn(WHERE, self.writes)
        self.writes.seen(WHERE, ["given"])
        self.assertNotIn(WHERE, self.writes)
        token = self.writes.writing(WHERE, [None])
        self.writes.seen(WHERE, ["given-2"])
        self.writes.answered(WHERE, token, ["given-2"])
        self.assertNotIn(WHERE, self.writes)

    def test_purge_marker(self) -> None:
        """A purge waits for the purge notification."""
        token = self.writes.writing(WHERE, [PURGED])
        self.writes.answered(WHERE, token)
        self.assertIn(WHERE, self.writes)
        self.writes.seen(WHERE, [PURGED])
        self.assertNotIn(WHERE, self.writes)

    def test_expires(self) -> None:
        """A write whose notification never comes stops holding the node after
        ``wait`` seconds; other nodes are not held."""
        token = self.writes.writing(WHERE, ["a"])
        self.writes.answered(WHERE, token, ["a"])
        self.assertNotIn(("pubsub.example.org", "other"), self.writes)
        self.clock.advance(29.9)
        self.assertIn(WHERE, self.writes)
        self.clock.advance(0.1)
        self.assertNotIn(WHERE, self.writes)

    async def test_unfollowed_node_not_held(self) -> None:
        """A write to a node no profile's cache follows holds it only until the
        service answered (no notification will come)."""

        async def not_followed(*_: object) -> bool:
            return False

        writes = OwnWrites(self.clock, _no_retraction, not_followed)
        client = SimpleNamespace(jid=JID("alice@example.org/r"))
        write = PubsubWrite("publish", ["a"])
        writes.on_writing(client, JID(WHERE[0]), WHERE[1], write)
        self.assertIn(WHERE, writes)
        write.result = ["a"]
        await writes.on_written(client, JID(WHERE[0]), WHERE[1], write)
        self.assertNotIn(WHERE, writes)


class HeldReadTests(CacheTestCase):
    """The read path of a host whose profile published ``new`` to a cached node."""

    async def setUp(self) -> None:
        await super().setUp()
        await self.blog(3)
        self.where = (SERVICE.full(), NS_MICROBLOG)
        own_writes = self.cache.own_writes
        token = own_writes.writing(self.where, ["new"])
        own_writes.answered(self.where, token, ["new"])  # its notification still to come

    def get(self) -> Any:
        return self.xep_0060.get_items(self.alice, SERVICE, NS_MICROBLOG, 2)

    def notification(self) -> Any:
        """The cache handles the notification of ``new`` (its write, then the hold
        released)."""
        event = ItemsEvent(SERVICE, self.alice.jid, NS_MICROBLOG, [event_item("new", "N")], {})
        return self.cache.on_items_event(self.alice, event)

    async def test_held_until_notified(self) -> None:
        """The node goes to the network while the notification is awaited, and is
        answered from the cache, with the item, once it was handled."""
        await self.assert_network(self.get())
        await self.notification()
        items, _ = await self.get()
        self.assertEqual(ids(items), ["item-02", "new"])

    async def test_released_during_read(self) -> None:
        """A read that begins while the node is held goes to the network, even when
        the notification is handled (the hold released) while its database read is
        under way: that read may have seen the node before the event's write (on
        PostgreSQL the read and the write run in two database threads at once)."""
        storage = self.storage
        read = storage.get_synced_items

        async def notified_meanwhile(*args: Any) -> Any:
            page = await read(*args)  # the node as it was
            await self.notification()  # handled before the read's answer is used
            return page

        storage.get_synced_items = notified_meanwhile
        self.addCleanup(delattr, storage, "get_synced_items")
        await self.assert_network(self.get())
