"""Pubsub nodes and subscriptions of the storage."""

from __future__ import annotations

import time

from sqlalchemy.exc import InvalidRequestError
from twisted.internet import defer
from twisted.trial.unittest import TestCase
from twisted.words.protocols.jabber import jid

from sat_storage.exceptions import NotFound, ProfileUnknownError
from sat_storage.models import PubsubNode, SubscriptionState, SyncState
from twisted_tests.db import storage_with_profiles
from twisted_tests.storage.pubsub_helpers import (
    OTHER_SERVICE,
    SERVICE,
    Client,
    make_items,
    snapshot,
)


class GetSetNodeTests(TestCase):
    async def setUp(self) -> None:
        self.storage = await storage_with_profiles(self, "alice", "bob")
        self.alice = Client("alice")

    async def test_missing_node(self) -> None:
        """An unknown node is None, and asking does not create it."""
        node = await self.storage.get_pubsub_node(self.alice, SERVICE, "blog")
        self.assertIsNone(node)
        self.assertEqual((await snapshot(self.storage))["pubsub_nodes"], [])

    async def test_create(self) -> None:
        """create=True stores the node with create_kwargs and returns it."""
        before = time.time()
        node = await self.storage.get_pubsub_node(
            self.alice,
            jid.JID("pubsub.example.org/res"),
            "blog",
            create=True,
            create_kwargs={"analyser": "atom", "type_": "blog", "subtype": "x"},
        )
        self.assertIsInstance(node, PubsubNode)
        self.assertEqual(node.service, "pubsub.example.org/res")
        self.assertEqual(
            (node.name, node.analyser, node.type_, node.subtype), ("blog", "atom", "blog", "x")
        )
        self.assertFalse(node.subscribed)
        self.assertIsNone(node.sync_state)
        self.assertGreaterEqual(node.sync_state_updated, before)
        self.assertEqual(node.profile_id, self.storage.profiles["alice"])

    async def test_create_existing(self) -> None:
        """create=True on an existing node returns it unchanged (create_kwargs unused)."""
        first = await self.storage.set_pubsub_node(self.alice, SERVICE, "blog", type_="blog")
        node = await self.storage.get_pubsub_node(
            self.alice, SERVICE, "blog", create=True, create_kwargs={"type_": "other"}
        )
        self.assertEqual((node.id, node.type_), (first.id, "blog"))
        self.assertEqual(len((await snapshot(self.storage))["pubsub_nodes"]), 1)

    async def test_set_updates(self) -> None:
        """set_pubsub_node on an existing node replaces its settings, keeps id and state."""
        node = await self.storage.set_pubsub_node(self.alice, SERVICE, "blog", analyser="a")
        await self.storage.update_pubsub_node_sync_state(node, SyncState.COMPLETED)
        again = await self.storage.set_pubsub_node(
            self.alice, SERVICE, "blog", type_="blog", subscribed=True
        )
        self.assertEqual(again.id, node.id)
        self.assertEqual((again.analyser, again.type_, again.subscribed), (None, "blog", True))
        self.assertEqual(again.sync_state, SyncState.COMPLETED)

    async def test_per_profile(self) -> None:
        """The same service and name are distinct nodes for two profiles."""
        a = await self.storage.set_pubsub_node(self.alice, SERVICE, "blog")
        b = await self.storage.set_pubsub_node(Client("bob"), SERVICE, "blog")
        self.assertNotEqual(a.id, b.id)
        got = await self.storage.get_pubsub_node(Client("bob"), SERVICE, "blog")
        self.assertEqual(got.id, b.id)

    async def test_with_items_and_subscriptions(self) -> None:
        """with_items/with_subscriptions load them; otherwise they are not loaded."""
        node = await self.storage.set_pubsub_node(self.alice, SERVICE, "blog")
        await self.storage.cache_pubsub_items(self.alice, node, make_items(["a", "b"]))
        await self.storage.set_pubsub_subscription(
            node, jid.JID("alice@example.org"), SubscriptionState.SUBSCRIBED
        )
        full = await self.storage.get_pubsub_node(
            self.alice, SERVICE, "blog", with_items=True, with_subscriptions=True
        )
        self.assertEqual([i.name for i in full.items], ["a", "b"])
        self.assertEqual(full.items[0].data["id"], "a")
        self.assertEqual([s.subscriber for s in full.subscriptions], ["alice@example.org"])
        bare = await self.storage.get_pubsub_node(self.alice, SERVICE, "blog")
        with self.assertRaises(InvalidRequestError):
            bare.items  # noqa: B018

    async def test_unknown_profile(self) -> None:
        """A client of an unknown profile raises ProfileUnknownError."""
        with self.assertRaises(ProfileUnknownError):
            await self.storage.get_pubsub_node(Client("nobody"), SERVICE, "blog", create=True)
        self.assertEqual((await snapshot(self.storage))["pubsub_nodes"], [])

    async def test_bad_service(self) -> None:
        """A service that is not a JID raises TypeError naming it."""
        with self.assertRaisesRegex(TypeError, "service"):
            await self.storage.set_pubsub_node(self.alice, "pubsub.example.org", "blog")
        self.assertEqual((await snapshot(self.storage))["pubsub_nodes"], [])

    async def test_bad_create_kwargs(self) -> None:
        """Unknown or mistyped create_kwargs raise before anything is stored."""
        with self.assertRaisesRegex(ValueError, "colour"):
            await self.storage.get_pubsub_node(
                self.alice, SERVICE, "blog", create=True, create_kwargs={"colour": "red"}
            )
        with self.assertRaisesRegex(TypeError, "subscribed"):
            await self.storage.get_pubsub_node(
                self.alice, SERVICE, "blog", create=True, create_kwargs={"subscribed": "yes"}
            )
        self.assertEqual((await snapshot(self.storage))["pubsub_nodes"], [])

    async def test_concurrent_create(self) -> None:
        """50 concurrent get_pubsub_node(create=True) give one node, the same to all."""
        calls = [
            self.storage.get_pubsub_node(self.alice, SERVICE, "blog", create=True)
            for _ in range(50)
        ]
        nodes = await defer.gatherResults(calls, consumeErrors=True)
        self.assertEqual({node.id for node in nodes}, {nodes[0].id})
        self.assertEqual(len((await snapshot(self.storage))["pubsub_nodes"]), 1)


class SyncStateTests(TestCase):
    async def setUp(self) -> None:
        self.storage = await storage_with_profiles(self, "alice")
        self.alice = Client("alice")
        self.node = await self.storage.set_pubsub_node(self.alice, SERVICE, "blog")

    async def test_update(self) -> None:
        """The state and its time are stored and set on the node object."""
        before = self.node.sync_state_updated
        await self.storage.update_pubsub_node_sync_state(self.node, SyncState.IN_PROGRESS)
        self.assertEqual(self.node.sync_state, SyncState.IN_PROGRESS)
        self.assertGreaterEqual(self.node.sync_state_updated, before)
        stored = await self.storage.get_pubsub_node(self.alice, SERVICE, "blog")
        self.assertEqual(stored.sync_state, SyncState.IN_PROGRESS)
        self.assertEqual(stored.sync_state_updated, self.node.sync_state_updated)

    async def test_deleted_node(self) -> None:
        """Updating a node deleted meanwhile raises NotFound."""
        await self.storage.delete_pubsub_node(None, None, ["blog"])
        with self.assertRaises(NotFound):
            await self.storage.update_pubsub_node_sync_state(self.node, SyncState.COMPLETED)

    async def test_bad_state(self) -> None:
        """A state that is not a SyncState raises TypeError, nothing changes."""
        with self.assertRaisesRegex(TypeError, "state"):
            await self.storage.update_pubsub_node_sync_state(self.node, "completed")
        stored = await self.storage.get_pubsub_node(self.alice, SERVICE, "blog")
        self.assertIsNone(stored.sync_state)


class NodeExtraTests(TestCase):
    async def setUp(self) -> None:
        self.storage = await storage_with_profiles(self, "alice")
        self.alice = Client("alice")
        self.node = await self.storage.set_pubsub_node(self.alice, SERVICE, "blog")

    async def test_merge(self) -> None:
        """Values are merged into extra (None removes a key), stored and set on the node."""
        await self.storage.update_pubsub_node_extra(self.node, {"a": 1, "b": [2]})
        extra = await self.storage.update_pubsub_node_extra(self.node, {"a": None, "c": "x"})
        self.assertEqual((extra, self.node.extra), ({"b": [2], "c": "x"}, extra))
        stored = await self.storage.get_pubsub_node(self.alice, SERVICE, "blog")
        self.assertEqual(stored.extra, {"b": [2], "c": "x"})

    async def test_not_json(self) -> None:
        """A value that JSON can't hold is refused before the database; nothing changes."""
        with self.assertRaises(TypeError):
            await self.storage.update_pubsub_node_extra(self.node, {"a": object()})
        stored = await self.storage.get_pubsub_node(self.alice, SERVICE, "blog")
        self.assertIsNone(stored.extra)

    async def test_deleted_node(self) -> None:
        """Updating a node deleted meanwhile raises NotFound."""
        await self.storage.delete_pubsub_node(None, None, ["blog"])
        with self.assertRaises(NotFound):
            await self.storage.update_pubsub_node_extra(self.node, {"a": 1})


class DeleteNodeTests(TestCase):
    async def setUp(self) -> None:
        self.storage = await storage_with_profiles(self, "alice", "bob")
        for profile in ("alice", "bob"):
            for service in (SERVICE, OTHER_SERVICE):
                for name in ("blog", "events"):
                    node = await self.storage.set_pubsub_node(Client(profile), service, name)
                    await self.storage.cache_pubsub_items(
                        Client(profile), node, make_items(["a", "b"])
                    )

    async def remaining(self) -> set[tuple[int, str, str]]:
        rows = (await snapshot(self.storage))["pubsub_nodes"]
        names = {v: k for k, v in self.storage.profiles.items()}
        return {(names[row[1]], row[2], row[3]) for row in rows}

    async def test_filters_combined(self) -> None:
        """Only the nodes matching every filter are deleted, with their items."""
        deleted = await self.storage.delete_pubsub_node(["alice"], [SERVICE], ["blog"])
        self.assertEqual(deleted, 1)
        remaining = await self.remaining()
        self.assertEqual(len(remaining), 7)
        self.assertNotIn(("alice", SERVICE.full(), "blog"), remaining)
        self.assertEqual(len((await snapshot(self.storage))["pubsub_items"]), 14)

    async def test_none_is_no_filter(self) -> None:
        """None filters match everything: (None, None, names) deletes by name only."""
        self.assertEqual(await self.storage.delete_pubsub_node(None, None, ["events"]), 4)
        self.assertEqual({r[2] for r in await self.remaining()}, {"blog"})
        self.assertEqual(await self.storage.delete_pubsub_node(None, None, None), 4)
        self.assertEqual(await self.remaining(), set())

    async def test_empty_list_matches_nothing(self) -> None:
        """An empty filter list deletes nothing."""
        self.assertEqual(await self.storage.delete_pubsub_node([], None, None), 0)
        self.assertEqual(len(await self.remaining()), 8)

    async def test_long_filter_lists(self) -> None:
        """Filter lists longer than one IN chunk still select exactly the named nodes."""
        names = [f"unused-{i}" for i in range(1200)] + ["events"]
        services = [jid.JID(f"s{i}.example.org") for i in range(700)] + [OTHER_SERVICE]
        self.assertEqual(await self.storage.delete_pubsub_node(None, services, names), 2)
        self.assertNotIn(("bob", OTHER_SERVICE.full(), "events"), await self.remaining())

    async def test_bad_filters(self) -> None:
        """Unknown profiles and non-JID services raise; nothing is deleted."""
        with self.assertRaises(ProfileUnknownError):
            await self.storage.delete_pubsub_node(["alice", "nobody"], None, None)
        with self.assertRaisesRegex(TypeError, r"services\[0\]"):
            await self.storage.delete_pubsub_node(None, ["pubsub.example.org"], None)
        with self.assertRaisesRegex(TypeError, "names"):
            await self.storage.delete_pubsub_node(None, None, "blog")
        self.assertEqual(len(await self.remaining()), 8)


class SubscriptionTests(TestCase):
    async def setUp(self) -> None:
        self.storage = await storage_with_profiles(self, "alice")
        self.alice = Client("alice")
        self.node = await self.storage.set_pubsub_node(self.alice, SERVICE, "blog")
        self.subscriber = jid.JID("alice@example.org/home")

    async def subscriptions(self) -> list[tuple[str, SubscriptionState | None]]:
        node = await self.storage.get_pubsub_node(
            self.alice, SERVICE, "blog", with_subscriptions=True
        )
        return [(s.subscriber, s.state) for s in node.subscriptions]

    async def test_set_and_change(self) -> None:
        """A subscription is recorded once; setting it again changes its state."""
        await self.storage.set_pubsub_subscription(
            self.node, self.subscriber, SubscriptionState.PENDING
        )
        await self.storage.set_pubsub_subscription(
            self.node, self.subscriber, SubscriptionState.SUBSCRIBED
        )
        self.assertEqual(
            await self.subscriptions(),
            [("alice@example.org/home", SubscriptionState.SUBSCRIBED)],
        )

    async def test_delete(self) -> None:
        """Deleting a subscription forgets it (1), deleting it again does nothing (0)."""
        await self.storage.set_pubsub_subscription(self.node, self.subscriber, None)
        self.assertEqual(
            await self.storage.delete_pubsub_subscription(self.node, self.subscriber), 1
        )
        self.assertEqual(
            await self.storage.delete_pubsub_subscription(self.node, self.subscriber), 0
        )
        self.assertEqual(await self.subscriptions(), [])

    async def test_bad_state(self) -> None:
        """A state that is not a SubscriptionState raises TypeError, nothing is stored."""
        with self.assertRaisesRegex(TypeError, "state"):
            await self.storage.set_pubsub_subscription(self.node, self.subscriber, "subscribed")
        self.assertEqual(await self.subscriptions(), [])
