"""Storage additions used by the cache: listing nodes, clearing a sync state."""

from twisted.trial.unittest import TestCase
from twisted.words.protocols.jabber.jid import JID

from sat_storage.models import SyncState
from twisted_tests.db import make_storage


class Client:
    def __init__(self, profile: str) -> None:
        self.profile = profile


SERVICE = JID("pubsub.example.org")


class NodeListingTests(TestCase):
    async def setUp(self) -> None:
        self.storage = await make_storage(self)
        for profile in ("alice", "bob"):
            await self.storage.create_profile(profile)
        self.alice, self.bob = Client("alice"), Client("bob")

    async def test_filters(self) -> None:
        """Nodes are selected by profile, service, name, type and sync state."""
        blog = await self.storage.set_pubsub_node(self.alice, SERVICE, "blog", type_="blog")
        await self.storage.set_pubsub_node(self.alice, JID("other.example.org"), "blog")
        await self.storage.set_pubsub_node(self.bob, SERVICE, "blog", type_="blog")
        await self.storage.update_pubsub_node_sync_state(blog, SyncState.IN_PROGRESS)
        nodes = await self.storage.get_pubsub_nodes(
            profiles=["alice"], services=[SERVICE], names=["blog"], types=["blog"]
        )
        self.assertEqual([n.id for n in nodes], [blog.id])
        nodes = await self.storage.get_pubsub_nodes(sync_states=[SyncState.IN_PROGRESS])
        self.assertEqual([n.id for n in nodes], [blog.id])
        self.assertEqual(len(await self.storage.get_pubsub_nodes(sync_states=[None])), 2)
        self.assertEqual(len(await self.storage.get_pubsub_nodes()), 3)
        self.assertEqual(await self.storage.get_pubsub_nodes(names=[]), [])

    async def test_bad_state_filter(self) -> None:
        """A sync state filter that is not a SyncState is a TypeError naming it."""
        with self.assertRaisesRegex(TypeError, r"sync_states\[0\]"):
            await self.storage.get_pubsub_nodes(sync_states=["completed"])

    async def test_clear_sync_state(self) -> None:
        """A sync state can be set back to None (never synchronised)."""
        node = await self.storage.set_pubsub_node(self.alice, SERVICE, "blog")
        await self.storage.update_pubsub_node_sync_state(node, SyncState.COMPLETED)
        await self.storage.update_pubsub_node_sync_state(node, None)
        stored = await self.storage.get_pubsub_node(self.alice, SERVICE, "blog")
        self.assertIsNone(stored.sync_state)
        self.assertIsNone(node.sync_state)
