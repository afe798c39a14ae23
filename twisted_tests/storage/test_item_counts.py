"""The per-node item count and items version, kept in the transaction of every item write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from twisted.internet import defer
from twisted.trial.unittest import TestCase

from sat_storage import Storage
from sat_storage.models import PubsubItem, PubsubNode
from twisted_tests.db import make_storage, storage_with_profiles
from twisted_tests.storage.pubsub_helpers import (
    OTHER_SERVICE,
    SERVICE,
    Client,
    make_item,
    make_items,
)


async def counters(storage: Storage, node: PubsubNode) -> tuple[int, int, int]:
    """``(item_count, items_version, COUNT of its rows)`` of ``node``, in one transaction."""

    def txn(session: Session) -> tuple[int, int, int]:
        stored = session.execute(
            select(PubsubNode.item_count, PubsubNode.items_version).where(
                PubsubNode.id == node.id
            )
        ).one()
        rows = session.execute(
            select(func.count()).where(PubsubItem.node_id == node.id)
        ).scalar_one()
        return stored[0], stored[1], rows

    return await storage.db.run(txn)


class ItemCountTests(TestCase):
    """Every kind of item write keeps ``item_count`` equal to the node's rows."""

    async def setUp(self) -> None:
        self.storage = await storage_with_profiles(self, "alice")
        self.alice = Client("alice")
        self.node = await self.storage.set_pubsub_node(self.alice, SERVICE, "blog")
        self.other = await self.storage.set_pubsub_node(self.alice, OTHER_SERVICE, "blog")

    async def cache(self, names: str, node: PubsubNode | None = None) -> None:
        items = make_items(list(names))
        await self.storage.cache_pubsub_items(self.alice, node or self.node, items)

    async def assert_count(self, expected: int, node: PubsubNode | None = None) -> int:
        """The stored count is ``expected`` and equals the rows; the version."""
        count, version, rows = await counters(self.storage, node or self.node)
        self.assertEqual((count, rows), (expected, expected))
        return version

    async def test_new_node(self) -> None:
        """A new node counts no item; the model exposes both columns."""
        await self.assert_count(0)
        self.assertEqual(self.node.item_count, 0)
        self.assertIsInstance(self.node.items_version, int)

    async def test_insert(self) -> None:
        """New items are counted, and bump the version."""
        before = await self.assert_count(0)
        await self.cache("abc")
        self.assertGreater(await self.assert_count(3), before)

    async def test_unchanged_item(self) -> None:
        """Re-caching identical items changes neither the count nor the version."""
        await self.cache("abc")
        before = await self.assert_count(3)
        await self.cache("ab")
        self.assertEqual(await self.assert_count(3), before)

    async def test_edit(self) -> None:
        """An edited item (new XML, or only new parsed data) bumps the version, not the count."""
        await self.cache("abc")
        before = await self.assert_count(3)
        await self.storage.cache_pubsub_items(self.alice, self.node, [make_item("a", "edited")])
        edited = await self.assert_count(3)
        self.assertGreater(edited, before)
        await self.storage.cache_pubsub_items(
            self.alice, self.node, [make_item("a", "edited")], [{"n": 1}]
        )
        self.assertGreater(await self.assert_count(3), edited)

    async def test_mixed_call(self) -> None:
        """One call with new, edited, unchanged and payload-less items counts the new ones."""
        await self.cache("ab")
        empty_known, empty_new = make_item("a"), make_item("z")
        for item in (empty_known, empty_new):
            item.children = []
        items = [empty_known, make_item("b", "edited"), make_item("c"), empty_new, make_item("c")]
        await self.storage.cache_pubsub_items(self.alice, self.node, items)
        await self.assert_count(4)

    async def test_delete(self) -> None:
        """Deleted items are uncounted (unknown names ignored); the other node is untouched."""
        await self.cache("abcd")
        await self.cache("xy", self.other)
        before = await self.assert_count(2, self.other)
        await self.storage.delete_pubsub_items(self.node, ["a", "c", "unknown"])
        await self.assert_count(2)
        self.assertEqual(await self.assert_count(2, self.other), before)
        await self.storage.delete_pubsub_items(self.node)
        await self.assert_count(0)

    async def test_delete_nothing(self) -> None:
        """Deleting unknown items changes neither the count nor the version."""
        await self.cache("ab")
        before = await self.assert_count(2)
        await self.storage.delete_pubsub_items(self.node, ["unknown"])
        self.assertEqual(await self.assert_count(2), before)

    async def test_purge_filters(self) -> None:
        """A purge with filters uncounts what it deletes, node by node."""
        await self.cache("abc")
        await self.cache("xyz", self.other)
        await self.storage.purge_pubsub_items(services=[OTHER_SERVICE])
        await self.assert_count(3)
        await self.assert_count(0, self.other)
        await self.cache("uv", self.other)
        await self.storage.purge_pubsub_items(
            updated_before=datetime.now(UTC) + timedelta(hours=1)
        )
        await self.assert_count(0)
        await self.assert_count(0, self.other)

    async def test_purge_by_date(self) -> None:
        """A purge of old items only uncounts those."""
        await self.cache("ab")

        def age(session: Session) -> None:
            old = datetime(2020, 1, 1, tzinfo=UTC)
            session.execute(update(PubsubItem).where(PubsubItem.name == "a").values(updated=old))

        await self.storage.db.run(age)
        await self.cache("c")
        await self.storage.purge_pubsub_items(updated_before=datetime(2021, 1, 1, tzinfo=UTC))
        await self.assert_count(2)

    async def test_catch_up(self) -> None:
        """catch_up_pubsub_items: edited, removed and appended (one re-appended) items."""
        await self.cache("abcd")
        await self.storage.catch_up_pubsub_items(
            self.alice, self.node, [make_item("b", "edited")], None, ["c", "d", "unknown"],
            [make_item("new"), make_item("c")], None,
        )  # fmt: skip
        await self.assert_count(4)

    async def test_catch_up_written_then_removed(self) -> None:
        """A catch-up writing an item new to the node and removing it in the same call
        leaves the items as they were, but counts both changes in the version (a
        reader may read again; it never misses a change)."""
        await self.cache("ab")
        before = await self.assert_count(2)
        await self.storage.catch_up_pubsub_items(
            self.alice, self.node, [make_item("x")], None, ["x"], [], None
        )
        self.assertEqual(await self.assert_count(2), before + 2)

    async def test_sync_claim_resets(self) -> None:
        """A sync claim that empties the node uncounts its items."""
        await self.cache("abc")
        self.assertTrue(
            await self.storage.claim_pubsub_node_sync(self.node, "me", 60.0, delete_items=True)
        )
        await self.assert_count(0)

    async def test_sync_release_resets(self) -> None:
        """A failed sync released with its items deleted uncounts them."""
        self.assertTrue(await self.storage.claim_pubsub_node_sync(self.node, "me", 60.0))
        await self.storage.cache_pubsub_sync_page(
            self.alice, self.node, make_items(list("ab")), None, "me", 60.0
        )
        await self.assert_count(2)
        await self.storage.release_pubsub_node_sync(self.node, "me", None, delete_items=True)
        await self.assert_count(0)

    async def test_node_deletion(self) -> None:
        """Deleting a node (items cascade) leaves the other node's count as it was."""
        await self.cache("abc")
        await self.cache("xy", self.other)
        before = await self.assert_count(2, self.other)
        await self.storage.delete_pubsub_node(None, [SERVICE], None)
        self.assertEqual(await self.assert_count(2, self.other), before)

    async def test_version_not_repeated_after_recreation(self) -> None:
        """A node deleted and created again (an id may be reused) starts a newer version."""
        await self.storage.delete_pubsub_node(None, [OTHER_SERVICE], None)
        await self.cache("abc")
        old = await self.assert_count(3)
        await self.storage.delete_pubsub_node(None, [SERVICE], None)
        self.node = await self.storage.set_pubsub_node(self.alice, SERVICE, "blog")
        await self.cache("abc")
        self.assertGreater(await self.assert_count(3), old)


class SecondStorageTests(TestCase):
    """Two storages (two processes) writing the same nodes of one database."""

    async def setUp(self) -> None:
        self.first = await storage_with_profiles(self, "alice")
        self.second = await make_storage(self, self.first.db_url)
        self.alice = Client("alice")
        self.node = await self.first.set_pubsub_node(self.alice, SERVICE, "blog")

    async def test_writes_of_the_other_counted(self) -> None:
        """What the second storage caches and deletes shows in the count the first reads."""
        await self.first.cache_pubsub_items(self.alice, self.node, make_items(list("abc")))
        before = await counters(self.first, self.node)
        node = await self.second.get_pubsub_node(self.alice, SERVICE, "blog")
        await self.second.cache_pubsub_items(self.alice, node, make_items(list("cde")))
        await self.second.delete_pubsub_items(node, ["a"])
        after = await counters(self.first, self.node)
        self.assertEqual((after[0], after[2]), (4, 4))
        self.assertGreater(after[1], before[1])

    async def test_concurrent_writers(self) -> None:
        """Writes of both storages at once (overlapping items) lose no update of the count."""
        node = await self.second.get_pubsub_node(self.alice, SERVICE, "blog")
        pairs = ((self.first, self.node), (self.second, node))
        shared = [f"shared-{i}" for i in range(3)]
        writes = [
            storage.cache_pubsub_items(
                self.alice, target, make_items([f"{n}{r}-{i}" for i in range(5)] + shared)
            )
            for r in range(10)
            for n, (storage, target) in enumerate(pairs)
        ]
        await defer.gatherResults(writes, consumeErrors=True)
        await self.assert_exact(103)
        removed = [f"{n}{r}-0" for r in range(10) for n in range(2)] + shared[:1]
        deletes = [
            storage.delete_pubsub_items(target, removed[k::3])
            for k in range(3)
            for storage, target in pairs
        ]
        await defer.gatherResults(deletes, consumeErrors=True)
        await self.assert_exact(82)

    async def assert_exact(self, expected: int) -> None:
        count, _version, rows = await counters(self.first, self.node)
        self.assertEqual((count, rows), (expected, expected))
