"""Differential end-to-end tests: every answer of the cache equals the service's, as
slixmpp (an independent client) reads it, on ejabberd and Prosody.

The corpus: unicode, XHTML, a ~200 KB entry, odd ids (spaces, quotes, ``<>&``,
unicode, 150 characters), payloads of other namespaces, ids published again with
new content, retracted items; some changes before the synchronisation, some while
the cache follows the node (events). Requests: plain, ``max_items``, ``item_ids``
and RSM (first page, ``after``, ``before=""``, ``index``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

from sat_storage.plugins.plugin_xep_0059 import RSMRequest

from twisted_tests.pubsub_cache.transparency import NS_ATOM, TransparencyCase, atom
from twisted_tests.xmpp_servers import XMPPServer, ejabberd, prosody

NS_XHTML = "http://www.w3.org/1999/xhtml"
ODD_IDS = ["id with spaces", "quo\"te's", "<>&", "ünï-ćødé-ид-🎉", "x" * 150]
BIG = "z" * 200_000  # ~200 KB entry


def corpus() -> list[tuple[str, str]]:
    """(id, payload XML) pairs, in publication order."""
    items = [
        atom("unicode", "Ünïcødé — 日本語 — emoji 🎉"),
        (
            "xhtml",
            f"<html xmlns='{NS_XHTML}'><body><p>Hi <b>bold</b> &amp; <i>it</i></p></body></html>",
        ),
        (
            "atom-xhtml",
            f"<entry xmlns='{NS_ATOM}'><title type='xhtml'><div xmlns='{NS_XHTML}'>"
            "<p>rich <em>title</em></p></div></title></entry>",
        ),
        ("big", f"<entry xmlns='{NS_ATOM}'><title>big</title><content>{BIG}</content></entry>"),
        ("geo", "<geoloc xmlns='http://jabber.org/protocol/geoloc'><lat>45.44</lat></geoloc>"),
        ("other", "<data xmlns='urn:example:other'><a b='c'>text</a><empty/></data>"),
    ]
    items += [atom(item_id, f"odd id {n}") for n, item_id in enumerate(ODD_IDS)]
    items += [atom(f"plain-{n:02d}", f"plain {n}") for n in range(6)]
    return items


class DifferentialMixin:
    server_factory: Callable[[], XMPPServer]

    async def setUp(self) -> None:
        await super().setUp()
        await self.create()
        await self.peer.publish_many(self.node, corpus())
        # before the synchronisation: an id published again, an item retracted
        await self.peer.publish(self.node, *atom("plain-01", "republished before the sync"))
        await self.peer.retract(self.node, "plain-02")
        await self.synced()
        # while the cache follows the node: new, republished, retracted
        events = self.item_event("plain-04")  # the last change
        await self.peer.publish(self.node, *atom("live-new", "published live"))
        await self.peer.publish(self.node, *atom("geo", "republished live, other payload"))
        await self.peer.publish(self.node, *atom(ODD_IDS[1], "odd id republished live"))
        await self.peer.retract(self.node, "plain-04")
        await events

    async def test_plain(self) -> None:
        """Every item: same ids, order and payloads (and the 200 KB entry intact)."""
        await self.assert_same()
        ids, payloads, _ = await self.from_cache()
        self.assertIn(BIG, payloads[ids.index("big")])

    async def test_max_items(self) -> None:
        """The newest 1, 3 and 8 items."""
        for count in (1, 3, 8):
            await self.assert_same(max_items=count)

    async def test_item_ids(self) -> None:
        """Items asked by id (odd ids included, one the service no longer has), in the
        service's order of such answers (the first request may go to the network to
        learn it; the next one is answered from the cache)."""
        request = {"item_ids": [*ODD_IDS, "xhtml", "plain-02"]}
        await self.assert_same(**request)
        service = await self.service_answer(**request)
        self.assertEqual((await self.from_cache(**request))[:2], service[:2])

    async def test_rsm_pages(self) -> None:
        """RSM first page, before="" (last page) and index: items, count and index."""
        for rsm in ({"max": 4}, {"max": 4, "before": ""}, {"max": 5, "index": 6}):
            await self.assert_same(rsm=rsm)

    async def test_rsm_after(self) -> None:
        """The page after the first one, each side with its own cursor (opaque: the
        service's may be time stamps, the cache's are item ids)."""
        service_first = await self.peer.items(self.node, rsm={"max": 4})
        _, cache_meta = await self.get(rsm_request=self.rsm(4))
        cursor_service = (service_first["rsm"] or {}).get("last") or _id(service_first, 3)
        cursor_cache = cache_meta["rsm"]["last"]
        service = await self.peer.items(self.node, rsm={"max": 4, "after": cursor_service})
        cached, metadata = await self.get(rsm_request=self.rsm(4, after=cursor_cache))
        self.assert_same_page(service, cached, metadata)

    def rsm(self, max_: int, after: str | None = None) -> RSMRequest:
        return RSMRequest(max_, after)


def _id(answer: dict[str, Any], index: int) -> str:
    return ET.fromstring(answer["items"][index]).get("id")


class ProsodyDifferentialTests(DifferentialMixin, TransparencyCase):
    server_factory = staticmethod(prosody)


class EjabberdDifferentialTests(DifferentialMixin, TransparencyCase):
    server_factory = staticmethod(ejabberd)
