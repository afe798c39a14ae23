"""The independent client of the differential tests (slixmpp in a subprocess) against
both test servers: it publishes, reads back and sees each server's paging."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable

from twisted.trial.unittest import TestCase

from twisted_tests.slix import SlixError, canonical, slix_client
from twisted_tests.xmpp_servers import XMPPServer, ejabberd, prosody, unique_name

ATOM = "<entry xmlns='http://www.w3.org/2005/Atom'><title>{}</title></entry>"
OPTIONS = {"pubsub#max_items": "1000", "pubsub#access_model": "open"}


class SlixMixin:
    server_factory: Callable[[], XMPPServer]
    #: whether the server answers RSM requests with a <set/>
    pages: bool

    async def setUp(self) -> None:
        self.server = type(self).server_factory()
        self.peer = await slix_client(self, self.server, await self.server.admin_account())
        self.node = unique_name("slix")
        await self.peer.create(self.node, OPTIONS)

    async def test_publish_and_read(self) -> None:
        """Items published by slixmpp come back to it, in publication order, intact."""
        items = [(f"i{n}", ATOM.format(f"title {n} é")) for n in range(3)]
        await self.peer.publish_many(self.node, items)
        answer = await self.peer.items(self.node)
        got = [ET.fromstring(item) for item in answer["items"]]
        self.assertEqual([item.get("id") for item in got], [item_id for item_id, _ in items])
        self.assertEqual(
            [canonical(ET.tostring(item[0], encoding="unicode")) for item in got],
            [canonical(payload) for _, payload in items],
        )

    async def test_rsm(self) -> None:
        """A first RSM page of 2: a <set/> with count 3 on a paging server; all items and
        no <set/> on the other."""
        await self.peer.publish_many(self.node, [(f"i{n}", ATOM.format(n)) for n in range(3)])
        answer = await self.peer.items(self.node, rsm={"max": 2})
        if self.pages:
            self.assertEqual((len(answer["items"]), answer["rsm"]["count"]), (2, 3))
            self.assertEqual(answer["rsm"]["index"], 0)
        else:
            self.assertEqual((len(answer["items"]), answer["rsm"]), (3, None))

    async def test_error(self) -> None:
        """A refused request fails with the service's condition."""
        with self.assertRaises(SlixError) as caught:
            await self.peer.items(unique_name("missing"))
        self.assertEqual(caught.exception.condition, "item-not-found")


class ProsodySlixTests(SlixMixin, TestCase):
    server_factory = staticmethod(prosody)
    pages = False


class EjabberdSlixTests(SlixMixin, TestCase):
    server_factory = staticmethod(ejabberd)
    pages = True
