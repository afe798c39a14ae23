"""Differential edge cases found by an independent review of the transparent cache
(issue #8): requests and changes the first differential tests did not try, each on
ejabberd and Prosody, the service read by slixmpp, the cache through the host.

Where a difference is the service's own (ejabberd's negative ``first@index``, its
error for an RSM index past the end, an event still in flight), it is documented in
doc/pubsub_cache.rst ("Transparency and freshness") rather than tested here.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

from sat_storage.plugins.plugin_xep_0059 import RSMRequest
from twisted.internet import task

from twisted_tests.db import database_url
from twisted_tests.pubsub_cache.harness import make_host
from twisted_tests.pubsub_cache.helpers import atom_item
from twisted_tests.pubsub_cache.transparency import TransparencyCase, atom
from twisted_tests.xmpp_servers import XMPPServer, ejabberd, prosody

IDS = [f"e-{i:02d}" for i in range(12)]


def first_version(item_id: str) -> tuple[str, str]:
    return atom(item_id, f"v1 {item_id}")


class LiveMixin:
    """A node of 12 items, synchronised; the host follows it."""

    server_factory: Callable[[], XMPPServer]

    async def setUp(self) -> None:
        await super().setUp()
        await self.create()
        await self.peer.publish_many(self.node, [first_version(i) for i in IDS])
        await self.synced()

    async def test_republished_unchanged(self) -> None:
        """An old item published again with the same content, while the cache follows
        the node, takes the place the service gives it (Prosody moves it to the end,
        ejabberd keeps it); the next answers come from the cache."""
        event = self.item_event("e-03")
        await self.peer.publish(self.node, *first_version("e-03"))
        await event
        for request in ({}, {"max_items": 1}, {"max_items": 3}):
            await self.assert_same(**request)
        self.assertEqual((await self.from_cache())[0], (await self.service_answer())[0])

    async def test_item_ids_repeated(self) -> None:
        """Once the service's order of item_ids answers is known, a request naming an
        id twice (and an unknown one) still gets the service's answer (Prosody gives
        the item twice, ejabberd once: the cache can't tell, it asks the network)."""
        await self.assert_same(item_ids=["e-05", "e-01"])  # learns the order
        sent = self.count_iqs(self.reader)
        await self.assert_same(item_ids=["e-03", "e-03", "unknown", "e-01"])
        self.assertEqual(len(sent), 1)

    async def test_max_items_zero(self) -> None:
        """``max_items=0`` without RSM gets what the service gives (Prosody: its newest
        item, ejabberd: none), not the cache's count-only page."""
        await self.assert_same(max_items=0)

    async def test_rsm_count_only(self) -> None:
        """RSM ``max=0`` (count only) and a page larger than the node are answered
        from the cache as by the service (items, count)."""
        for rsm in ({"max": 0}, {"max": 100}, {"max": 3, "index": 12}):
            await self.assert_same(rsm=rsm)
            await self.from_cache(rsm=rsm)

    async def test_rsm_before_id(self) -> None:
        """RSM ``before=ID``: the page before an item, each side with its own cursor
        (the service's for its items, the cache's item id)."""
        listing = await self.peer.items(self.node, rsm={"max": 20})
        sixth = ET.fromstring(listing["items"][6]).get("id")
        cursor = sixth
        if listing["rsm"] is not None:  # the service's cursor of that item
            cursor = (await self.peer.items(self.node, rsm={"max": 1, "index": 6}))["rsm"]["first"]
        service = await self.peer.items(self.node, rsm={"max": 3, "before": cursor})
        cached, metadata = await self.get(rsm_request=RSMRequest(3, None, sixth))
        self.assert_same_page(service, cached, metadata)

    async def test_purged_then_published(self) -> None:
        """After a live purge and a new publication, plain and RSM answers equal the
        service's, from the cache."""
        purged = self.next_event("purge")
        await self.peer.purge(self.node)
        await purged
        event = self.item_event("after-purge")
        await self.peer.publish(self.node, *atom("after-purge", "new"))
        await event
        for request in ({}, {"rsm": {"max": 5}}):
            await self.assert_same(**request)
            await self.from_cache(**request)

    async def test_own_publication_read_back(self) -> None:
        """An item this host publishes is in the next answer, before its notification
        has reached the cache (the network answers until then); once it has, the
        answers come from the cache again."""
        event = self.item_event("own-1")
        item = atom_item("own-1", "published by this host")
        await self.xep_0060.publish(self.writer, self.service, self.node, [item])
        await self.assert_same()
        await self.assert_same(max_items=1)
        await event
        await self.assert_same()
        await self.from_cache()

    async def test_own_retraction_unnotified(self) -> None:
        """An item this host retracts without notification (Prosody then sends none)
        is gone from the next answers, from the cache."""
        await self.xep_0060.retract_items(self.writer, self.service, self.node, ["e-04"], False)
        await self.assert_same()
        await self.from_cache()

    async def test_own_purge_read_back(self) -> None:
        """A node this host purges answers empty right away, and from the cache once
        the purge notification has been handled."""
        purged = self.next_event("purge")
        await self.xep_0060.purge_node(self.writer, self.service, self.node)
        await self.assert_same()
        await purged
        await self.assert_same()
        await self.from_cache()


class EmptyNodeMixin:
    server_factory: Callable[[], XMPPServer]

    async def test_empty_node(self) -> None:
        """An empty node, synchronised: plain, max_items, item_ids and RSM answers are
        the service's, from the cache."""
        await self.create()
        await self.synced()
        requests: list[dict[str, Any]] = [
            {},
            {"max_items": 3},
            {"item_ids": ["x"]},
            {"rsm": {"max": 3}},
            {"rsm": {"max": 3, "before": ""}},
            {"rsm": {"max": 0}},
        ]
        for request in requests:
            await self.assert_same(**request)
            await self.from_cache(**request)


class AwayMixin:
    """The host stopped while the node changes."""

    async def setUp(self) -> None:
        self.db_url = database_url(self)
        await super().setUp()
        await self.host.disconnect(self.writer.profile)  # only the reader's events
        await self.create()
        await self.peer.publish_many(self.node, [first_version(i) for i in IDS])
        await self.synced()

    async def start_host(self, db_url: str | None = None) -> Any:
        self.clock = task.Clock()  # the clients' reconnection delays
        return await make_host(self, self.config, db_url or self.db_url, clock=self.clock)

    async def test_recreated_node_followed(self) -> None:
        """A node deleted and created again while the host was stopped: after the
        catch-up the cache is subscribed again, so a publication made next is seen
        and answered as the service does."""
        profile = self.reader.profile
        await self.host.stop()
        await self.peer.delete(self.node)
        await self.create()
        await self.peer.publish_many(self.node, [atom(i, f"v2 {i}") for i in IDS[:5]])
        self.host = await self.start_host(self.db_url)
        self.cache = self.host.plugins["PUBSUB_CACHE"]
        self.xep_0060 = self.host.plugins["XEP-0060"]
        self.reader = await self.host.connect(profile)
        await self.revalidated()
        await self.assert_same()
        event = self.item_event("later")
        await self.peer.publish(self.node, *atom("later", "published after the catch-up"))
        await event  # times out when the cache is no longer subscribed
        await self.assert_same()
        await self.from_cache()


class ProsodyLiveTests(LiveMixin, TransparencyCase):
    server_factory = staticmethod(prosody)


class EjabberdLiveTests(LiveMixin, TransparencyCase):
    server_factory = staticmethod(ejabberd)


class ProsodyEmptyNodeTests(EmptyNodeMixin, TransparencyCase):
    server_factory = staticmethod(prosody)


class EjabberdEmptyNodeTests(EmptyNodeMixin, TransparencyCase):
    server_factory = staticmethod(ejabberd)


class ProsodyAwayTests(AwayMixin, TransparencyCase):
    server_factory = staticmethod(prosody)


class EjabberdAwayTests(AwayMixin, TransparencyCase):
    server_factory = staticmethod(ejabberd)
