"""Synchronisation leases of pubsub nodes: claim, renew, release, sync pages.

Two storages on one database stand for two processes sharing it.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from sat_storage import Storage
from sat_storage.exceptions import NotFound
from sat_storage.models import PubsubNode, SyncState
from twisted_tests.db import database_url, make_storage
from twisted_tests.storage.pubsub_helpers import (
    SERVICE,
    Client,
    item_names,
    make_items,
    snapshot,
)

A, B = "host-a:100:aaaa", "host-b:200:bbbb"
LEASE = 60.0
NOW = 1_000_000.0


class LeaseTestCase(TestCase):
    """Two storages (``self.storage``, ``self.other``) on one database; a node with items."""

    async def setUp(self) -> None:
        url = database_url(self)
        self.storage = await make_storage(self, url)
        await self.storage.create_profile("alice")
        self.other = await make_storage(self, url)
        self.alice = Client("alice")
        self.node = await self.storage.set_pubsub_node(self.alice, SERVICE, "blog")
        await self.storage.cache_pubsub_items(self.alice, self.node, make_items(["a", "b"]))

    async def stored(self) -> PubsubNode:
        """The node as the other storage reads it now."""
        node = await self.other.get_pubsub_node(self.alice, SERVICE, "blog")
        assert node is not None
        return node

    async def lease_of(self) -> tuple[SyncState | None, str | None, float | None]:
        node = await self.stored()
        return node.sync_state, node.sync_owner, node.sync_lease_expires

    async def claim(self, storage: Storage, owner: str, now: float = NOW, **kwargs: Any) -> bool:
        """``owner`` claims the node (as ``storage`` reads it now) at ``now``."""
        node = await storage.get_pubsub_node(self.alice, SERVICE, "blog")
        assert node is not None
        return await storage.claim_pubsub_node_sync(node, owner, LEASE, now=now, **kwargs)


class ClaimTests(LeaseTestCase):
    async def test_claim_free_node(self) -> None:
        """A node nobody synchronises is claimed: IN_PROGRESS, owner and expiry stored."""
        self.assertTrue(await self.storage.claim_pubsub_node_sync(self.node, A, LEASE, now=NOW))
        self.assertEqual(await self.lease_of(), (SyncState.IN_PROGRESS, A, NOW + LEASE))
        self.assertEqual(
            (self.node.sync_state, self.node.sync_owner, self.node.sync_lease_expires),
            (SyncState.IN_PROGRESS, A, NOW + LEASE),
        )

    async def test_live_lease_refused(self) -> None:
        """Another owner's live lease is not taken: False, nothing changed."""
        await self.claim(self.storage, A)
        before = await snapshot(self.storage)
        self.assertFalse(await self.claim(self.other, B, now=NOW + LEASE - 1))
        self.assertEqual(await snapshot(self.storage), before)

    async def test_expired_lease_taken_over(self) -> None:
        """Once the lease has expired, another owner takes the node over."""
        await self.claim(self.storage, A)
        self.assertTrue(await self.claim(self.other, B, now=NOW + LEASE))
        self.assertEqual(await self.lease_of(), (SyncState.IN_PROGRESS, B, NOW + 2 * LEASE))

    async def test_owner_claims_again(self) -> None:
        """The owner may claim again what it holds (a retry), extending its lease."""
        await self.claim(self.storage, A)
        self.assertTrue(await self.claim(self.storage, A, now=NOW + 10))
        self.assertEqual((await self.lease_of())[2], NOW + 10 + LEASE)

    async def test_take_from_dead_owner(self) -> None:
        """``take_from`` takes a live lease from that owner (known dead), not from another."""
        await self.claim(self.storage, A)
        self.assertFalse(await self.claim(self.other, B, take_from="host-a:100:other"))
        self.assertTrue(await self.claim(self.other, B, take_from=A))
        self.assertEqual((await self.lease_of())[1], B)

    async def test_ownerless_in_progress(self) -> None:
        """IN_PROGRESS with no owner (set by force, or before leases existed) is claimable."""
        await self.storage.update_pubsub_node_sync_state(self.node, SyncState.IN_PROGRESS)
        self.assertTrue(await self.claim(self.other, B))

    async def test_finished_node_claimable(self) -> None:
        """A node whose sync ended (COMPLETED) is claimed again, whatever its last owner."""
        await self.claim(self.storage, A)
        await self.storage.release_pubsub_node_sync(self.node, A, SyncState.COMPLETED)
        self.assertTrue(await self.claim(self.other, B))

    async def test_only_states(self) -> None:
        """``states``: a node in another state (COMPLETED meanwhile) is not claimed."""
        pending = [None, SyncState.ERROR, SyncState.IN_PROGRESS]
        await self.storage.update_pubsub_node_sync_state(self.node, SyncState.COMPLETED)
        self.assertFalse(await self.claim(self.other, B, states=pending))
        self.assertEqual(await self.lease_of(), (SyncState.COMPLETED, None, None))
        await self.storage.update_pubsub_node_sync_state(self.node, SyncState.ERROR)
        self.assertTrue(await self.claim(self.other, B, states=pending))

    async def test_never_synchronised_in_states(self) -> None:
        """None in ``states`` stands for a node never synchronised."""
        self.assertFalse(await self.claim(self.other, B, states=[SyncState.ERROR]))
        self.assertTrue(await self.claim(self.other, B, states=[None]))

    async def test_delete_items(self) -> None:
        """``delete_items`` empties the node with the claim; a refused claim deletes nothing."""
        await self.claim(self.storage, A)
        self.assertFalse(await self.claim(self.other, B, delete_items=True))
        self.assertEqual(await item_names(self.storage, self.node), ["a", "b"])
        self.assertTrue(await self.claim(self.storage, A, delete_items=True))
        self.assertEqual(await item_names(self.storage, self.node), [])

    async def test_deleted_node(self) -> None:
        """Claiming a node deleted meanwhile raises NotFound."""
        await self.other.delete_pubsub_node(None, None, None)
        with self.assertRaises(NotFound):
            await self.storage.claim_pubsub_node_sync(self.node, A, LEASE)

    async def test_concurrent_claims(self) -> None:
        """20 owners claiming at once, through two storages: exactly one wins."""
        owners = [(storage, f"host:{n}:{i}") for n in range(10)
                  for i, storage in enumerate((self.storage, self.other))]  # fmt: skip
        claims = [defer.ensureDeferred(self.claim(storage, owner)) for storage, owner in owners]
        results = await defer.gatherResults(claims)
        self.assertEqual(results.count(True), 1)
        self.assertEqual((await self.lease_of())[1], owners[results.index(True)][1])

    async def test_bad_arguments(self) -> None:
        """An empty owner or a lease that is not a positive number is refused, named."""
        with self.assertRaisesRegex(ValueError, "owner"):
            await self.storage.claim_pubsub_node_sync(self.node, "", LEASE)
        with self.assertRaisesRegex(ValueError, "lease_seconds"):
            await self.storage.claim_pubsub_node_sync(self.node, A, 0)
        with self.assertRaisesRegex(TypeError, "lease_seconds"):
            await self.storage.claim_pubsub_node_sync(self.node, A, "60")
        with self.assertRaisesRegex(ValueError, "now"):
            await self.storage.claim_pubsub_node_sync(self.node, A, LEASE, now=float("nan"))
        with self.assertRaisesRegex(TypeError, r"states\[0\]"):
            await self.storage.claim_pubsub_node_sync(self.node, A, LEASE, states=["error"])
        self.assertEqual(await self.lease_of(), (None, None, None))


class RenewReleaseTests(LeaseTestCase):
    async def setUp(self) -> None:
        await super().setUp()
        await self.storage.claim_pubsub_node_sync(self.node, A, LEASE, now=NOW)

    async def test_renew(self) -> None:
        """The owner's renewal moves the expiry to ``now + lease``."""
        self.assertTrue(await self.storage.renew_pubsub_node_sync(self.node, A, LEASE, NOW + 30))
        self.assertEqual((await self.lease_of())[2], NOW + 30 + LEASE)

    async def test_renew_by_other(self) -> None:
        """Another owner cannot renew: False, the lease unchanged."""
        self.assertFalse(await self.other.renew_pubsub_node_sync(self.node, B, LEASE, NOW + 30))
        self.assertEqual(await self.lease_of(), (SyncState.IN_PROGRESS, A, NOW + LEASE))

    async def test_renew_after_takeover(self) -> None:
        """An owner whose node was taken over learns it when renewing."""
        await self.claim(self.other, B, now=NOW + LEASE + 1)
        self.assertFalse(await self.storage.renew_pubsub_node_sync(self.node, A, LEASE))

    async def test_renew_after_forced_state(self) -> None:
        """A state set by force (an admin's purge) ends the lease: renewal fails."""
        await self.other.update_pubsub_node_sync_state(await self.stored(), None)
        self.assertEqual(await self.lease_of(), (None, None, None))
        self.assertFalse(await self.storage.renew_pubsub_node_sync(self.node, A, LEASE))

    async def test_release(self) -> None:
        """Release sets the final state and clears the lease, on the node object too."""
        self.assertTrue(
            await self.storage.release_pubsub_node_sync(self.node, A, SyncState.COMPLETED)
        )
        self.assertEqual(await self.lease_of(), (SyncState.COMPLETED, None, None))
        self.assertEqual((self.node.sync_state, self.node.sync_owner), (SyncState.COMPLETED, None))
        self.assertEqual(await item_names(self.storage, self.node), ["a", "b"])

    async def test_release_error_deletes_items(self) -> None:
        """A failed sync is released with its items deleted in the same transaction."""
        await self.storage.release_pubsub_node_sync(self.node, A, SyncState.ERROR, True)
        self.assertEqual(await self.lease_of(), (SyncState.ERROR, None, None))
        self.assertEqual(await item_names(self.storage, self.node), [])

    async def test_release_by_other(self) -> None:
        """Only the owner releases: another gets False and changes nothing."""
        before = await snapshot(self.storage)
        self.assertFalse(
            await self.other.release_pubsub_node_sync(self.node, B, SyncState.ERROR, True)
        )
        self.assertEqual(await snapshot(self.storage), before)

    async def test_release_deleted_node(self) -> None:
        """Releasing a node deleted meanwhile is False, nothing raised."""
        await self.other.delete_pubsub_node(None, None, None)
        self.assertFalse(await self.storage.release_pubsub_node_sync(self.node, A, None))


class SyncPageTests(LeaseTestCase):
    async def setUp(self) -> None:
        await super().setUp()
        await self.storage.claim_pubsub_node_sync(self.node, A, LEASE, now=NOW, delete_items=True)

    async def test_owner_writes(self) -> None:
        """The owner's page is stored and its lease renewed."""
        written = await self.storage.cache_pubsub_sync_page(
            self.alice, self.node, make_items(["c", "d"]), None, A, LEASE, NOW + 5
        )
        self.assertTrue(written)
        self.assertEqual(await item_names(self.storage, self.node), ["c", "d"])
        self.assertEqual((await self.lease_of())[2], NOW + 5 + LEASE)

    async def test_lost_lease_writes_nothing(self) -> None:
        """A page of an owner that lost the node is not written: False."""
        await self.claim(self.other, B, now=NOW + LEASE)
        written = await self.storage.cache_pubsub_sync_page(
            self.alice, self.node, make_items(["late"]), None, A, LEASE, NOW + LEASE
        )
        self.assertFalse(written)
        self.assertEqual(await item_names(self.storage, self.node), [])

    async def test_bad_items(self) -> None:
        """Items are checked as by cache_pubsub_items, before anything is written."""
        with self.assertRaisesRegex(ValueError, r"items\[0\] has no id"):
            await self.storage.cache_pubsub_sync_page(
                self.alice, self.node, make_items([""]), None, A, LEASE
            )
        self.assertEqual((await self.lease_of())[2], NOW + LEASE)
