"""Pure-logic tests of the XEP-0060 plugin: managed nodes, URIs, argument checks (no server)."""

from __future__ import annotations

import sat_storage.wokkel_compat  # noqa: F401  (must run before any wokkel import)

# isort: split
from typing import Any

from sat_storage.plugins import plugin_xep_0060
from sat_storage.plugins.plugin_xep_0059 import RSMRequest
from sat_storage.plugins.plugin_xep_0060 import XEP_0060
from twisted.internet import defer
from twisted.trial.unittest import TestCase
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish
from wokkel import pubsub


def items_event(node: str) -> pubsub.ItemsEvent:
    """An items event of ``node`` from pubsub.localhost."""
    return pubsub.ItemsEvent(JID("pubsub.localhost"), JID("a@localhost"), node, [], {})


class ManagedNodeTests(TestCase):
    """Prefix matching, ordering, removal and error isolation of managed-node callbacks."""

    def setUp(self) -> None:
        self.plugin = XEP_0060(host=None)
        self.calls: list[tuple[str, Any]] = []

    def recorder(self, name: str) -> Any:
        """A callback that records its name and arguments."""
        return lambda client, event: self.calls.append((name, client, event.nodeIdentifier))

    def test_prefix_matches(self) -> None:
        """A prefix matches the nodes whose name starts with it, and only those."""
        cb = self.recorder("mb")
        self.plugin.add_managed_node("urn:xmpp:microblog:0", items_cb=cb)
        self.assertEqual(self.plugin.get_node_callbacks("urn:xmpp:microblog:0:comments/x", "items"),
                         [cb])
        self.assertEqual(self.plugin.get_node_callbacks("urn:xmpp:other", "items"), [])

    def test_empty_prefix_matches_all(self) -> None:
        """The prefix "" matches every node."""
        cb = self.recorder("all")
        self.plugin.add_managed_node("", items_cb=cb)
        self.assertEqual(self.plugin.get_node_callbacks("anything", "items"), [cb])

    def test_kinds_are_separate(self) -> None:
        """A callback registered for delete is not called for items or purge."""
        cb = self.recorder("delete")
        self.plugin.add_managed_node("", delete_cb=cb)
        self.assertEqual(self.plugin.get_node_callbacks("n", "delete"), [cb])
        self.assertEqual(self.plugin.get_node_callbacks("n", "items"), [])
        self.assertEqual(self.plugin.get_node_callbacks("n", "purge"), [])

    def test_several_callbacks_priority_then_registration(self) -> None:
        """Several callbacks per prefix run by priority (highest first), then in order."""
        first, second, urgent = (self.recorder(n) for n in ("first", "second", "urgent"))
        self.plugin.add_managed_node("", items_cb=first)
        self.plugin.add_managed_node("n", items_cb=second)
        self.plugin.add_managed_node("", items_cb=urgent, priority=10)
        self.assertEqual(self.plugin.get_node_callbacks("node", "items"), [urgent, first, second])

    def test_remove_one_callback(self) -> None:
        """remove_managed_node with a callback removes only that one."""
        keep, drop = self.recorder("keep"), self.recorder("drop")
        self.plugin.add_managed_node("", items_cb=keep, purge_cb=drop)
        self.plugin.add_managed_node("", items_cb=drop)
        self.plugin.remove_managed_node("", drop)
        self.assertEqual(self.plugin.get_node_callbacks("n", "items"), [keep])
        self.assertEqual(self.plugin.get_node_callbacks("n", "purge"), [])

    def test_remove_prefix(self) -> None:
        """remove_managed_node without callbacks forgets the prefix."""
        self.plugin.add_managed_node("", items_cb=self.recorder("x"))
        self.plugin.remove_managed_node("")
        self.assertEqual(self.plugin.get_node_callbacks("n", "items"), [])

    def test_needs_a_callback(self) -> None:
        """add_managed_node without any callback is refused."""
        self.assertRaises(ValueError, self.plugin.add_managed_node, "")

    def test_callback_must_be_callable(self) -> None:
        """A non-callable callback is refused, naming the keyword."""
        error = self.assertRaises(TypeError, self.plugin.add_managed_node, "", purge_cb="x")
        self.assertIn("purge_cb", str(error))

    async def test_dispatch_awaits_in_order(self) -> None:
        """Coroutine and Deferred callbacks are awaited one after the other."""
        gate: defer.Deferred[None] = defer.Deferred()
        calls: list[str] = []

        async def slow(client: Any, event: Any) -> None:
            calls.append("slow start")
            await gate
            calls.append("slow end")

        self.plugin.add_managed_node("", items_cb=slow, priority=1)
        self.plugin.add_managed_node("", items_cb=lambda c, e: calls.append("plain"))
        done = defer.ensureDeferred(self.plugin.dispatch_event("client", "items", items_event("n")))
        self.assertEqual(calls, ["slow start"])
        gate.callback(None)
        await done
        self.assertEqual(calls, ["slow start", "slow end", "plain"])

    async def test_failing_callback_logged_others_run(self) -> None:
        """A callback that raises is logged; the next callbacks still run."""

        def broken(client: Any, event: Any) -> None:
            raise RuntimeError("boom")

        self.plugin.add_managed_node("", items_cb=broken, priority=1)
        self.plugin.add_managed_node("", items_cb=self.recorder("after"))
        with self.assertLogs(plugin_xep_0060.log, "ERROR") as logs:
            await self.plugin.dispatch_event("client", "items", items_event("n"))
        self.assertIn("boom", "\n".join(logs.output))
        self.assertEqual(self.calls, [("after", "client", "n")])


class NodeUriTests(TestCase):
    """get_node_uri(): RFC 5122 URIs of nodes and items."""

    def test_node_uri_is_escaped(self) -> None:
        """Node names are percent-encoded in the query."""
        uri = plugin_xep_0060.get_node_uri(JID("pubsub.example.org"), "urn:xmpp:microblog:0")
        self.assertEqual(uri, "xmpp:pubsub.example.org?;node=urn%3Axmpp%3Amicroblog%3A0")

    def test_item_uri(self) -> None:
        """An item id is appended as ;item=."""
        uri = plugin_xep_0060.get_node_uri(JID("a@example.org"), "n", "i d")
        self.assertEqual(uri, "xmpp:a@example.org?;node=n;item=i%20d")


class ArgumentTests(TestCase):
    """Bad arguments are refused before any trigger or network request, naming the culprit."""

    def setUp(self) -> None:
        self.plugin = XEP_0060(host=None)  # no host: nothing past the checks may run

    async def test_service_not_a_jid(self) -> None:
        """A service given as a string is refused."""
        with self.assertRaises(TypeError) as caught:
            await self.plugin.get_items("client", "pubsub.localhost", "node")
        self.assertIn("service", str(caught.exception))

    async def test_empty_node(self) -> None:
        """An empty node name is refused."""
        with self.assertRaises(ValueError) as caught:
            await self.plugin.get_items("client", None, "")
        self.assertIn("node", str(caught.exception))

    async def test_negative_max_items(self) -> None:
        """A negative max_items is refused."""
        with self.assertRaises(ValueError) as caught:
            await self.plugin.get_items("client", None, "node", max_items=-1)
        self.assertIn("max_items", str(caught.exception))

    async def test_item_ids_with_rsm(self) -> None:
        """item_ids and rsm_request together are refused."""
        with self.assertRaises(ValueError):
            await self.plugin.get_items(
                "client", None, "node", item_ids=["a"], rsm_request=RSMRequest(max_=1)
            )

    async def test_publish_non_item(self) -> None:
        """publish() takes <item/> elements only."""
        with self.assertRaises(TypeError):
            await self.plugin.publish("client", None, "node", [domish.Element((None, "entry"))])

    async def test_retract_without_ids(self) -> None:
        """retract_items() needs at least one id."""
        with self.assertRaises(ValueError):
            await self.plugin.retract_items("client", None, "node", [])
