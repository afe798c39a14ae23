"""Misbehaving pubsub services, and a synchronisation stuck past its deadline.

The "service" is a second account connected to the test Prosody: the cache sends its
requests to that account's full JID through the real server, and the test answers
them as scripted (repeating pages, items without id, malformed payloads, silence).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sat_storage.plugins.plugin_xep_0059 import NS_RSM
from sat_storage.plugins.plugin_xep_0277 import NS_MICROBLOG
from twisted.internet import defer, reactor, task
from twisted.words.protocols.jabber import xmlstream
from twisted.words.xish import domish

from sat_storage.models import SyncState
from twisted_tests.pubsub_cache.e2e import TIMEOUT, ServerTestCase, ids
from twisted_tests.pubsub_cache.harness import connected_profile
from twisted_tests.pubsub_cache.helpers import NS_PUBSUB, atom_item, parse
from twisted_tests.xmpp_servers import prosody

NS_OWNER = NS_PUBSUB + "#owner"
#: answer(number of the synchronisation request, <set/>) -> (items, rsm dict or None),
#: or None to leave the request unanswered. Synchronisation requests are those with
#: RSM; the others (look-up of the last item, the test's own requests) get ``OTHER``.
Answer = Callable[[int, Any], Any]


class ScriptedService:
    """Answers the pubsub requests sent to ``client``'s full JID, as a script says."""

    def __init__(self, client: Any, answer: Answer) -> None:
        self.client = client
        self.jid = client.jid
        self.answer = answer
        self.sync_requests: list[domish.Element] = []
        self.waiting: list[tuple[int, defer.Deferred[None]]] = []
        client.xmlstream.addObserver("/iq/pubsub", self.on_iq, priority=100)
        # disco requests (the node's metadata) get an error, as from a real entity
        client.xmlstream.addObserver("/iq[@type='get']/query", self.on_disco, priority=100)

    def request_number(self, number: int) -> defer.Deferred[None]:
        """Fires once ``number`` synchronisation requests arrived."""
        d: defer.Deferred[None] = defer.Deferred()
        if len(self.sync_requests) >= number:
            d.callback(None)
        else:
            self.waiting.append((number, d))
        return d.addTimeout(TIMEOUT, reactor)

    def on_iq(self, iq: domish.Element) -> None:
        iq.handled = True
        pubsub = iq.firstChildElement()
        action = pubsub.firstChildElement()
        if pubsub.uri == NS_OWNER:
            self.send(xmlstream.toResponse(iq, "error"), "forbidden")
        elif action.name == "subscribe":
            response = xmlstream.toResponse(iq, "result")
            sub = response.addElement((NS_PUBSUB, "pubsub")).addElement("subscription")
            sub["node"], sub["jid"], sub["subscription"] = (
                action["node"],
                action["jid"],
                "subscribed",
            )
            self.client.xmlstream.send(response)
        elif action.name == "items":
            set_elt = next(pubsub.elements(NS_RSM, "set"), None)
            if set_elt is None:
                answer = ([atom_item("other")], None)
            else:
                self.sync_requests.append(action)
                number = len(self.sync_requests)
                for wanted, d in list(self.waiting):
                    if number >= wanted:
                        self.waiting.remove((wanted, d))
                        d.callback(None)
                answer = self.answer(number, set_elt)
            if answer is not None:
                self.items_answer(iq, action["node"], *answer)
        else:
            self.send(xmlstream.toResponse(iq, "error"), "feature-not-implemented")

    def on_disco(self, iq: domish.Element) -> None:
        iq.handled = True
        self.send(xmlstream.toResponse(iq, "error"), "service-unavailable")

    def send(self, response: domish.Element, condition: str) -> None:
        error = response.addElement("error")
        error["type"] = "cancel"
        error.addElement(("urn:ietf:params:xml:ns:xmpp-stanzas", condition))
        self.client.xmlstream.send(response)

    def items_answer(
        self, iq: domish.Element, node: str, items: list[domish.Element], rsm: Any
    ) -> None:
        response = xmlstream.toResponse(iq, "result")
        pubsub = response.addElement((NS_PUBSUB, "pubsub"))
        items_elt = pubsub.addElement("items")
        items_elt["node"] = node
        for item in items:
            items_elt.addChild(item)
        if rsm is not None:
            set_elt = pubsub.addElement((NS_RSM, "set"))
            first = set_elt.addElement("first", content=rsm["first"])
            first["index"] = str(rsm["index"])
            set_elt.addElement("last", content=rsm["last"])
            set_elt.addElement("count", content=str(rsm["count"]))
        self.client.xmlstream.send(response)


class BadServiceTests(ServerTestCase):
    server_factory = staticmethod(prosody)

    async def setUp(self) -> None:
        await super().setUp()
        self.node = NS_MICROBLOG

    async def scripted(self, answer: Answer) -> ScriptedService:
        client = await connected_profile(
            self.host, self.server, await self.server.create_account("service")
        )
        service = ScriptedService(client, answer)
        self.service = service.jid
        return service

    async def test_repeating_service(self) -> None:
        """A service giving the same page again is detected: NO_SYNC, nothing cached."""
        page = [atom_item(f"item-{i}") for i in range(10)]
        rsm = {"first": "c0", "last": "c9", "index": 0, "count": 30}
        await self.scripted(lambda number, set_elt: (page, rsm))
        with self.assertLogs("sat_storage.plugins.plugin_pubsub_cache", "WARNING") as logs:
            await self.get(max_items=1)
            self.assertEqual(await self.synchronised(), SyncState.NO_SYNC)
        self.assertIn("twice", "".join(logs.output))
        self.assertEqual((await self.cached_node()).items, [])
        sent = self.count_iqs(self.reader)
        await self.get(max_items=1)
        self.assertEqual(len(sent), 1)  # still read from the network

    async def test_bad_items(self) -> None:
        """Items without id are skipped, malformed payloads cached raw: nothing lost."""
        answer = [
            atom_item("good", "fine"),
            atom_item(None),
            parse(
                f"<item xmlns='{NS_PUBSUB}' id='odd'><entry xmlns='http://www.w3.org/2005/Atom'>"
                "<published>not a date</published><title/><link/></entry></item>"
            ),
            parse(f"<item xmlns='{NS_PUBSUB}' id='empty'/>"),
        ]
        await self.scripted(lambda number, set_elt: (answer, None))
        with self.assertLogs("sat_storage.plugins.pubsub_cache.sync", "WARNING") as logs:
            await self.get(max_items=1)
            self.assertEqual(await self.synchronised(), SyncState.COMPLETED)
        self.assertIn("without id", logs.output[0])
        node = await self.cached_node()
        self.assertEqual(
            [(i.name, i.parsed) for i in node.items],
            [
                (
                    "good",
                    {
                        "id": "good",
                        "title": "fine",
                        "content": "body",
                        "published": 1704164645.0,
                        "tags": [],
                        "links": [],
                    },
                ),
                ("odd", {"id": "odd", "tags": [], "links": []}),
                ("empty", {"id": "empty", "tags": [], "links": []}),
            ],
        )
        items, _ = await self.get()
        self.assertEqual(ids(items), ["good", "odd", "empty"])

    async def test_stuck_sync_retried(self) -> None:
        """A sync stuck past its deadline is cancelled and retried (task.Clock)."""
        clock = task.Clock()
        self.cache.clock = self.cache.syncs.clock = clock
        deadline = self.cache.syncs.deadline

        def answer(number: int, set_elt: Any) -> Any:
            if number == 1:
                return None  # the first attempt's request never gets an answer
            return [atom_item("only")], None

        service = await self.scripted(answer)
        await self.get(max_items=1)
        await service.request_number(1)
        progress = self.cache.sync_progress(self.reader, self.service, self.node)
        self.assertEqual(progress["attempt"], 1)
        with self.assertLogs("sat_storage.plugins.pubsub_cache.sync", "WARNING"):
            clock.advance(deadline)
        self.assertEqual(await self.synchronised(), SyncState.COMPLETED)
        self.assertEqual(len(service.sync_requests), 2)
        self.assertEqual([i.name for i in (await self.cached_node()).items], ["only"])
        self.assertEqual(clock.getDelayedCalls(), [])

    async def test_stuck_sync_gives_up(self) -> None:
        """A sync stuck at every attempt ends in ERROR, with no item kept."""
        clock = task.Clock()
        self.cache.clock = self.cache.syncs.clock = clock
        service = await self.scripted(lambda number, set_elt: None)
        await self.get(max_items=1)
        attempts = self.cache.syncs.max_attempts
        for attempt in range(1, attempts + 1):
            await service.request_number(attempt)
            self.assertEqual(
                self.cache.sync_progress(self.reader, self.service, self.node)["attempt"], attempt
            )
            with self.assertLogs("sat_storage.plugins.pubsub_cache.sync", "WARNING"):
                clock.advance(self.cache.syncs.deadline)
        self.assertEqual(await self.synchronised(), SyncState.ERROR)
        node = await self.cached_node()
        self.assertEqual((node.sync_state, node.items), (SyncState.ERROR, []))

    async def test_disconnection_stops_sync(self) -> None:
        """A profile disconnecting stops its sync: no items, state cleared (not ERROR)."""
        service = await self.scripted(lambda number, set_elt: None)
        await self.get(max_items=1)
        await service.request_number(1)
        await self.host.disconnect(self.reader.profile)
        node = await self.cached_node()
        self.assertEqual((node.sync_state, node.items), (None, []))
        self.assertFalse(self.cache.syncs.keys())
