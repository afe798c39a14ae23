"""OwnWrites: a node this host writes to is answered by the network until the
notifications of the change have been handled, or for ``wait`` seconds at most."""

from __future__ import annotations

from types import SimpleNamespace

from sat_storage.plugins.pubsub_cache.own_writes import PURGED, OwnWrites
from sat_storage.plugins.pubsub_writes import PubsubWrite
from twisted.internet import task
from twisted.trial.unittest import TestCase
from twisted.words.protocols.jabber.jid import JID

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
