"""The XEP-0060 plugin on real servers: round trips and events on Prosody, RSM on ejabberd.

Each test runs a real host loading only the XEP-0059 and XEP-0060 plugins (a fake
distribution re-exporting them, so no other plugin's trigger gets in the way) and
profiles connected to the test servers of :mod:`twisted_tests.xmpp_servers`.
"""

from __future__ import annotations

import sat_storage.wokkel_compat  # noqa: F401  (must run before any wokkel import)

# isort: split
from pathlib import Path
from typing import Any

from sat_storage.plugins import plugin_xep_0060
from sat_storage.plugins.plugin_xep_0059 import RSMRequest, RSMResponse, next_request
from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase
from twisted.words.protocols.jabber.error import StanzaError
from twisted.words.xish import domish
from wokkel import pubsub

from sat_storage.exceptions import NotFound
from sat_storage.host import Host
from twisted_tests.db import database_url
from twisted_tests.fake_plugins import fake_distribution
from twisted_tests.pubsub_cache.harness import connected_profile
from twisted_tests.xmpp_servers import XMPPServer, ejabberd, prosody, unique_name

NS_ATOM = "http://www.w3.org/2005/Atom"
EVENT_TIMEOUT = 10.0  # seconds to wait for a notification from a loopback server
#: Only the two plugins under test, re-exported from their modules.
PLUGINS = {
    "XEP-0059": "from sat_storage.plugins.plugin_xep_0059 import PLUGIN_INFO, XEP_0059  # noqa\n",
    "XEP-0060": "from sat_storage.plugins.plugin_xep_0060 import PLUGIN_INFO, XEP_0060  # noqa\n",
}


def entry(n: int) -> domish.Element:
    """An Atom entry payload."""
    element = domish.Element((NS_ATOM, "entry"))
    element.addElement("title", content=f"post {n}")
    return element


def make_items(count: int, prefix: str = "item") -> list[pubsub.Item]:
    """``count`` items ``prefix-000``… with Atom payloads."""
    return [pubsub.Item(id=f"{prefix}-{i:03d}", payload=entry(i)) for i in range(count)]


def ids(items: list[domish.Element]) -> list[str]:
    """The ids of ``<item/>`` (or ``<retract/>``) elements."""
    return [item.getAttribute("id") for item in items]


class PubsubTestCase(TestCase):
    """A host with the pubsub plugins, the owner (server admin) connected, a node name."""

    #: Node creation options: enough room, every notification (ejabberd's defaults omit some).
    NODE_OPTIONS = {
        "pubsub#max_items": "1000",
        "pubsub#access_model": "open",
        "pubsub#notify_retract": True,
        "pubsub#notify_delete": True,
    }

    def start_server(self) -> XMPPServer:
        """The server these tests run against."""
        return prosody()

    async def setUp(self) -> None:
        self.server = self.start_server()
        plugin_path = fake_distribution(self, PLUGINS)
        config = Path(self.mktemp())
        config.write_text("[xmpp]\ntls = plaintext\n")
        self.host = Host(config, database_url(self), plugin_path=[plugin_path])
        await self.host.start()
        self.addCleanup(self.host.stop)
        self.plugin = self.host.plugins["XEP-0060"]
        self.owner = await self.connect(await self.server.admin_account())
        self.service = self.server.pubsub_service
        self.node = unique_name("node")

    async def connect(self, account: Any) -> Any:
        """A connected client (profile) of ``account``; stopped with the host."""
        return await connected_profile(self.host, self.server, account)

    async def create_node(self, **options: Any) -> None:
        """Create the test's node with NODE_OPTIONS (updated with ``options``)."""
        await self.plugin.create_node(
            self.owner, self.service, self.node, {**self.NODE_OPTIONS, **options}
        )

    async def get_ids(self, **kwargs: Any) -> list[str]:
        """Ids of the node's items, as the owner gets them."""
        items, _ = await self.plugin.get_items(self.owner, self.service, self.node, **kwargs)
        return ids(items)

    def next_event(self, kind: str, node: str | None = None) -> defer.Deferred[Any]:
        """Fires with ``(client, event)`` of the next ``kind`` event of ``node``."""
        received: defer.Deferred[Any] = defer.Deferred()

        def callback(client: Any, event: Any) -> None:
            if not received.called:
                received.callback((client, event))

        prefix = self.node if node is None else node
        self.plugin.add_managed_node(prefix, **{f"{kind}_cb": callback})
        self.addCleanup(self.plugin.remove_managed_node, prefix, callback)
        return received.addTimeout(EVENT_TIMEOUT, reactor)


class ItemsTests(PubsubTestCase):
    """Publishing and getting items on Prosody."""

    async def test_publish_then_get(self) -> None:
        """Published items come back in order with their payload."""
        await self.create_node()
        await self.plugin.publish(self.owner, self.service, self.node, make_items(3))
        items, _ = await self.plugin.get_items(self.owner, self.service, self.node)
        self.assertEqual(ids(items), ["item-000", "item-001", "item-002"])
        payload = items[2].firstChildElement()
        self.assertEqual((payload.uri, payload.name), (NS_ATOM, "entry"))
        self.assertEqual(str(payload.title), "post 2")

    async def test_metadata_without_rsm(self) -> None:
        """Metadata names service, node and URI; no "rsm" when the server sent no <set/>."""
        await self.create_node()
        await self.plugin.publish(self.owner, self.service, self.node, make_items(2))
        _, metadata = await self.plugin.get_items(
            self.owner, self.service, self.node, rsm_request=RSMRequest(max_=1)
        )
        self.assertEqual(
            metadata,
            {
                "service": self.service,
                "node": self.node,
                "uri": plugin_xep_0060.get_node_uri(self.service, self.node),
            },
        )

    async def test_max_items_gives_newest(self) -> None:
        """max_items gives the newest items, oldest first."""
        await self.create_node()
        await self.plugin.publish(self.owner, self.service, self.node, make_items(5))
        self.assertEqual(await self.get_ids(max_items=2), ["item-003", "item-004"])

    async def test_item_ids(self) -> None:
        """item_ids gets exactly those items."""
        await self.create_node()
        await self.plugin.publish(self.owner, self.service, self.node, make_items(5))
        got = await self.get_ids(item_ids=["item-001", "item-003"])
        self.assertEqual(sorted(got), ["item-001", "item-003"])

    async def test_unknown_node(self) -> None:
        """Items of a node that does not exist: NotFound naming the node."""
        with self.assertRaises(NotFound) as caught:
            await self.get_ids()
        self.assertIn(self.node, str(caught.exception))

    async def test_send_item_returns_service_id(self) -> None:
        """An item published without id gets the id the service chose."""
        await self.create_node()
        item_id = await self.plugin.send_item(self.owner, self.service, self.node, entry(1))
        self.assertTrue(item_id)
        self.assertEqual(await self.get_ids(), [item_id])

    async def test_publish_options_precondition(self) -> None:
        """publish-options that do not match the node configuration are refused."""
        await self.create_node()
        with self.assertRaises(StanzaError) as caught:
            await self.plugin.send_items(
                self.owner,
                self.service,
                self.node,
                make_items(1),
                extra={"publish_options": {"pubsub#access_model": "whitelist"}},
            )
        self.assertEqual(caught.exception.condition, "conflict")

    async def test_retract_items(self) -> None:
        """Retracted items are gone."""
        await self.create_node()
        await self.plugin.publish(self.owner, self.service, self.node, make_items(3))
        await self.plugin.retract_items(self.owner, self.service, self.node, ["item-001"])
        self.assertEqual(await self.get_ids(), ["item-000", "item-002"])

    async def test_pep_own_service(self) -> None:
        """service None is the client's own PEP; metadata names its bare JID."""
        node = unique_name("urn:test:pep")
        await self.plugin.publish(self.owner, None, node, make_items(1))
        items, metadata = await self.plugin.get_items(self.owner, None, node)
        self.assertEqual(ids(items), ["item-000"])
        self.assertEqual(metadata["service"], self.owner.jid.userhostJID())

    async def test_timeout(self) -> None:
        """A request unanswered after the client's timeout fails with TimeoutError, forgotten."""
        clock = self.plugin.clock = task.Clock()
        pending = defer.ensureDeferred(self.plugin.get_items(self.owner, self.service, self.node))
        clock.advance(self.owner.timeout)  # before the reactor could read any answer
        with self.assertRaises(defer.TimeoutError):
            await pending
        self.assertEqual(self.owner.xmlstream.iqDeferreds, {})

    async def test_not_connected(self) -> None:
        """A request on a disconnected profile fails with a clear error."""
        await self.host.disconnect(self.owner.profile)
        with self.assertRaises(RuntimeError) as caught:
            await self.get_ids()
        self.assertIn("not connected", str(caught.exception))


class NodeTests(PubsubTestCase):
    """Node life cycle and configuration on Prosody."""

    async def test_create_with_options(self) -> None:
        """Options given at creation are in the node configuration."""
        await self.create_node(**{"pubsub#max_items": "123"})
        form = await self.plugin.get_configuration(self.owner, self.service, self.node)
        self.assertEqual(form["pubsub#max_items"], "123")

    async def test_set_configuration(self) -> None:
        """set_configuration changes the fields it names."""
        await self.create_node()
        options = {"pubsub#title": "A title", "pubsub#notify_retract": False}
        await self.plugin.set_configuration(self.owner, self.service, self.node, options)
        form = await self.plugin.get_configuration(self.owner, self.service, self.node)
        self.assertEqual((form["pubsub#title"], form["pubsub#notify_retract"]), ("A title", False))

    async def test_purge_node(self) -> None:
        """A purged node has no items."""
        await self.create_node()
        await self.plugin.publish(self.owner, self.service, self.node, make_items(3))
        await self.plugin.purge_node(self.owner, self.service, self.node)
        self.assertEqual(await self.get_ids(), [])

    async def test_delete_node(self) -> None:
        """A deleted node is not found any more."""
        await self.create_node()
        await self.plugin.delete_node(self.owner, self.service, self.node)
        with self.assertRaises(NotFound):
            await self.get_ids()

    async def test_subscribe(self) -> None:
        """A subscription shows in the node's subscriptions (owner's view)."""
        await self.create_node()
        reader = await self.connect(await self.server.create_account("reader"))
        subscription = await self.plugin.subscribe(reader, self.service, self.node)
        self.assertEqual(subscription.state, "subscribed")
        subscriptions = await self.plugin.get_node_subscriptions(
            self.owner, self.service, self.node
        )
        self.assertEqual(subscriptions, {reader.jid.userhostJID(): "subscribed"})

    async def test_unsubscribe(self) -> None:
        """After unsubscribe the subscriber is no longer listed."""
        await self.create_node()
        reader = await self.connect(await self.server.create_account("reader"))
        await self.plugin.subscribe(reader, self.service, self.node)
        await self.plugin.unsubscribe(reader, self.service, self.node)
        subscriptions = await self.plugin.get_node_subscriptions(
            self.owner, self.service, self.node
        )
        self.assertEqual(subscriptions, {})


class EventTests(PubsubTestCase):
    """Notifications from Prosody reach the managed-node callbacks of a subscriber."""

    async def setUp(self) -> None:
        await super().setUp()
        await self.create_node()
        # The host sends available presence on connect: a bare-JID subscription is notified.
        self.reader = await self.connect(await self.server.create_account("reader"))
        await self.plugin.subscribe(self.reader, self.service, self.node)

    async def test_items_event(self) -> None:
        """A publication reaches items_cb with the reader's client and the <item/>."""
        received = self.next_event("items")
        await self.plugin.publish(self.owner, self.service, self.node, make_items(1))
        client, event = await received
        self.assertIs(client, self.reader)
        self.assertEqual((event.sender, event.nodeIdentifier), (self.service, self.node))
        self.assertEqual([(e.name, e["id"]) for e in event.items], [("item", "item-000")])
        self.assertEqual(event.items[0].firstChildElement().name, "entry")

    async def test_retract_event(self) -> None:
        """A retraction with notify reaches items_cb as a <retract/>."""
        published = self.next_event("items")
        await self.plugin.publish(self.owner, self.service, self.node, make_items(1))
        await published
        received = self.next_event("items")
        await self.plugin.retract_items(self.owner, self.service, self.node, ["item-000"])
        _, event = await received
        self.assertEqual([(e.name, e["id"]) for e in event.items], [("retract", "item-000")])

    async def test_purge_event(self) -> None:
        """A purge reaches purge_cb."""
        received = self.next_event("purge")
        await self.plugin.purge_node(self.owner, self.service, self.node)
        client, event = await received
        self.assertEqual((client, event.nodeIdentifier), (self.reader, self.node))

    async def test_delete_event(self) -> None:
        """A node deletion reaches delete_cb."""
        received = self.next_event("delete")
        await self.plugin.delete_node(self.owner, self.service, self.node)
        client, event = await received
        self.assertEqual((client, event.nodeIdentifier), (self.reader, self.node))

    async def test_empty_prefix_and_other_prefix(self) -> None:
        """"" receives the event; a prefix the node does not start with does not."""
        other: list[Any] = []
        self.plugin.add_managed_node("no-such-prefix", items_cb=lambda c, e: other.append(e))
        received = self.next_event("items", node="")
        await self.plugin.publish(self.owner, self.service, self.node, make_items(1))
        _, event = await received
        self.assertEqual(event.nodeIdentifier, self.node)
        self.assertEqual(other, [])  # same dispatch: it would have run already


class InjectedEventTests(PubsubTestCase):
    """Raw notifications fed to the client's stream parser: malformed ones are logged, ignored."""

    async def setUp(self) -> None:
        await super().setUp()
        self.calls: list[tuple[str, str]] = []
        for kind in plugin_xep_0060.EVENT_KINDS:
            self.plugin.add_managed_node(
                "", **{f"{kind}_cb": lambda c, e, k=kind: self.calls.append((k, e.nodeIdentifier))}
            )
        # setUp resumed inside the stream parser's callback (the last IQ answer), where
        # expat ignores more data: let that callback return before injecting.
        await task.deferLater(reactor, 0, lambda: None)

    def inject(self, event_body: str, sender: str = "from='pubsub.localhost'") -> None:
        """Feed a notification message holding ``event_body`` to the client's stream."""
        xml = (
            f"<message {sender} to='{self.owner.jid.full()}' id='{unique_name('m')}'>"
            f"<event xmlns='{plugin_xep_0060.NS_PUBSUB_EVENT}'>{event_body}</event></message>"
        )
        self.owner.xmlstream.dataReceived(xml.encode())

    def assert_ignored(self, event_body: str, reason: str, **kwargs: str) -> None:
        """The notification is logged as malformed (with ``reason``) and not dispatched."""
        with self.assertLogs(plugin_xep_0060.log, "WARNING") as logs:
            self.inject(event_body, **kwargs)
        self.assertIn("malformed pubsub event", logs.output[0])
        self.assertIn(reason, logs.output[0])
        self.assertEqual(self.calls, [])

    def test_valid_event_dispatched(self) -> None:
        """Control: a well-formed injected notification is dispatched."""
        self.inject("<items node='n'><item id='1'/><retract id='2'/></items>")
        self.assertEqual(self.calls, [("items", "n")])

    def test_events_dispatched_one_at_a_time(self) -> None:
        """The next event waits until the callbacks of the previous one are done."""
        gate: defer.Deferred[None] = defer.Deferred()
        self.plugin.add_managed_node("slow", items_cb=lambda c, e: gate, priority=1)
        self.inject("<items node='slow'><item id='1'/></items>")
        self.inject("<purge node='next'/>")
        self.assertEqual(self.calls, [])  # the slow callback holds both events
        gate.callback(None)
        self.assertEqual(self.calls, [("items", "slow"), ("purge", "next")])

    def test_no_node(self) -> None:
        """<items/> without node is ignored."""
        self.assert_ignored("<items><item id='1'/></items>", "without node")

    def test_item_without_id(self) -> None:
        """An <item/> without id makes the whole notification ignored."""
        self.assert_ignored("<items node='n'><item id='1'/><item/></items>", "without id")

    def test_unknown_child_of_items(self) -> None:
        """An unknown child in <items/> makes the notification ignored."""
        self.assert_ignored("<items node='n'><item id='1'/><foo/></items>", "<foo/>")

    def test_unknown_event_child(self) -> None:
        """An unknown action in <event/> is ignored."""
        self.assert_ignored("<explode node='n'/>", "<explode/>")

    def test_empty_event(self) -> None:
        """An <event/> with no action is ignored."""
        self.assert_ignored("", "exactly one action")

    def test_no_sender(self) -> None:
        """A notification without 'from' is ignored."""
        self.assert_ignored("<purge node='n'/>", "no 'from'", sender="")

    def test_configuration_not_dispatched(self) -> None:
        """A (valid) configuration notification is not dispatched, and not a warning."""
        with self.assertNoLogs(plugin_xep_0060.log, "WARNING"):
            self.inject("<configuration node='n'/>")
        self.assertEqual(self.calls, [])


class TriggerTests(PubsubTestCase):
    """The XEP-0060_getItems async return point, seen on the wire."""

    def record_iqs(self) -> list[bytes]:
        """Outgoing IQs on the owner's stream, from now on."""
        sent: list[bytes] = []
        xs = self.owner.xmlstream
        xs.rawDataOutFn = lambda data: sent.append(data) if data.startswith(b"<iq") else None
        self.addCleanup(setattr, xs, "rawDataOutFn", None)
        return sent

    async def test_short_circuit_sends_no_iq(self) -> None:
        """A trigger answering (False, result) is the answer, and no IQ is sent."""
        answer = ([domish.Element((None, "item"))], {"from": "trigger"})
        self.host.trigger.add("XEP-0060_getItems", lambda *args: (False, answer))
        sent = self.record_iqs()
        result = await self.plugin.get_items(self.owner, self.service, self.node)
        self.assertIs(result, answer)
        self.assertEqual(sent, [])

    async def test_trigger_sees_request_then_network(self) -> None:
        """A trigger that lets the request go sees its arguments; one IQ is then sent."""
        seen: list[tuple[Any, ...]] = []

        def look(*args: Any) -> tuple[bool, None]:
            seen.append(args)
            return True, None

        self.host.trigger.add("XEP-0060_getItems", look)
        await self.create_node()
        sent = self.record_iqs()
        request = RSMRequest(max_=5)
        await self.plugin.get_items(
            self.owner, self.service, self.node, rsm_request=request, extra={"k": 1}
        )
        self.assertEqual(
            seen, [(self.owner, self.service, self.node, None, None, None, request, {"k": 1})]
        )
        self.assertEqual(len(sent), 1)
        self.assertIn(self.node.encode(), sent[0])


class RSMTests(PubsubTestCase):
    """RSM paging on ejabberd (real <set/> answers, timestamp cursors)."""

    ITEMS = 250

    def start_server(self) -> XMPPServer:
        return ejabberd()

    async def setUp(self) -> None:
        await super().setUp()
        await self.create_node()
        self.published = await self.plugin.publish(
            self.owner, self.service, self.node, make_items(self.ITEMS)
        )

    async def test_paging_reaches_every_item_once(self) -> None:
        """Pages of 20 following the cursors give every item exactly once, in order."""
        request: RSMRequest | None = RSMRequest(max_=20)
        seen: list[str] = []
        pages: list[dict[str, Any]] = []
        while request is not None:
            items, metadata = await self.plugin.get_items(
                self.owner, self.service, self.node, rsm_request=request
            )
            seen.extend(ids(items))
            pages.append(metadata["rsm"])
            request = next_request(request, RSMResponse(**metadata["rsm"]), len(items))
        self.assertEqual(seen, self.published)
        self.assertEqual(len(pages), 13)
        self.assertEqual([page["index"] for page in pages], list(range(0, 250, 20)))
        self.assertEqual({page["count"] for page in pages}, {250})

    async def test_cursors_are_opaque(self) -> None:
        """ejabberd's cursors are not item ids: they must only be copied into requests."""
        items, metadata = await self.plugin.get_items(
            self.owner, self.service, self.node, rsm_request=RSMRequest(max_=20)
        )
        self.assertNotIn(metadata["rsm"]["first"], ids(items))
        self.assertNotIn(metadata["rsm"]["last"], ids(items))

    async def test_last_page(self) -> None:
        """before='' gives the last page, with its index and complete=True."""
        items, metadata = await self.plugin.get_items(
            self.owner, self.service, self.node, rsm_request=RSMRequest(max_=20, before="")
        )
        self.assertEqual(ids(items), self.published[-20:])
        self.assertEqual((metadata["rsm"]["index"], metadata["complete"]), (230, True))

    async def test_index(self) -> None:
        """index jumps to an absolute position."""
        items, metadata = await self.plugin.get_items(
            self.owner, self.service, self.node, rsm_request=RSMRequest(max_=5, index=100)
        )
        self.assertEqual(ids(items), self.published[100:105])
        self.assertEqual((metadata["rsm"]["index"], metadata["complete"]), (100, False))

    async def test_count_only(self) -> None:
        """max=0 gives no item and the count."""
        items, metadata = await self.plugin.get_items(
            self.owner, self.service, self.node, rsm_request=RSMRequest(max_=0)
        )
        self.assertEqual((items, metadata["rsm"]["count"]), ([], 250))
