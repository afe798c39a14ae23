"""The read cache of get_synced_items: hits, never stale, own objects, bounded.

A hit is seen in the statements run: a page answered from memory reads nothing of
``pubsub_items``. Every write (this storage's, another storage's on the same
database, another process's raw SQL) is followed by a read that must equal the
database's (``get_items_txn``: the page read in a transaction, no cache).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from twisted.internet import utils
from twisted.trial.unittest import TestCase

from sat_storage import ItemsQuery, Storage
from sat_storage.config import Config
from sat_storage.exceptions import NotFound
from sat_storage.models import SyncState
from sat_storage.storage.page_cache import DEFAULT_READ_CACHE_ITEMS
from twisted_tests.db import only_on, storage_with_profiles
from twisted_tests.storage.cache_writes import CREATED, RAW_WRITER, ThisProcessWrites
from twisted_tests.storage.pubsub_helpers import (
    SERVICE,
    Client,
    gateway_calls,
    item_reads,
    make_item,
    make_items,
    refuse_transactions,
)

NAMES = [f"i{n}" for n in range(10)]
NEWEST = ItemsQuery(max_items=3)
QUERIES = [
    NEWEST,
    CREATED,
    ItemsQuery(),
    ItemsQuery(max_items=2, after="i3", order_by=("creation",)),
    ItemsQuery(max_items=2, before=""),
    ItemsQuery(item_ids=("i1", "i4", "i8")),
]
def page_of(result: tuple[Any, Any]) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """(names and XML of the items, metadata) of a get_synced_items answer."""
    _, (items, metadata) = result
    return [(item.name, item.data.toXml()) for item in items], metadata


class ReadCacheTestCase(TestCase):
    async def setUp(self) -> None:
        self.storage = await storage_with_profiles(self, "alice")
        self.alice = Client("alice")
        self.node = await self.completed_node(self.storage, "blog")

    async def completed_node(self, storage: Storage, name: str) -> Any:
        node = await storage.set_pubsub_node(self.alice, SERVICE, name)
        await storage.cache_pubsub_items(self.alice, node, make_items(NAMES))
        await storage.update_pubsub_node_sync_state(node, SyncState.COMPLETED)
        return node

    def item_reads(self, storage: Storage | None = None) -> Any:
        """The statements reading ``pubsub_items`` run meanwhile (a list filled later)."""
        return item_reads(storage or self.storage)

    async def read(self, query: ItemsQuery = NEWEST, storage: Storage | None = None) -> Any:
        storage = storage or self.storage
        return await storage.get_synced_items(self.alice, SERVICE, "blog", query)

    async def assert_cached(self, storage: Storage | None = None) -> None:
        """Every query of QUERIES is answered from memory now (read twice)."""
        for query in QUERIES:
            await self.read(query, storage)
        with self.item_reads(storage) as reads:
            for query in QUERIES:
                await self.read(query, storage)
        self.assertEqual(reads, [])

    async def assert_as_database(self, storage: Storage | None = None) -> None:
        """Every query of QUERIES answers what the database holds (the page read by
        get_items' transaction, no cache)."""
        storage = storage or self.storage
        node = await storage.get_pubsub_node(self.alice, SERVICE, "blog")
        for query in QUERIES:
            try:
                items, metadata = await storage.db.run(storage.get_items_txn, node.id, query)
            except NotFound:  # a cursor gone: the cache says so too
                with self.assertRaises(NotFound):
                    await self.read(query, storage)
                continue
            answer = await self.read(query, storage)
            self.assertIsNotNone(answer[1], query)
            expected = [(item.name, item.data.toXml()) for item in items], metadata
            self.assertEqual(page_of(answer), expected, query)


class MissTests(ReadCacheTestCase):
    async def test_every_miss_one_driver_read(self) -> None:
        """A miss of every kind of page (cursors, index and ids too) is one driver
        read (the node's row and its page), no Session transaction."""
        refuse_transactions(self, self.storage)
        calls = gateway_calls(self, self.storage)
        for query in QUERIES:
            self.storage.read_cache.clear()
            await self.read(query)
        self.assertEqual([fn.__name__ for fn in calls], ["read_synced_items"] * len(QUERIES))


class HitTests(ReadCacheTestCase):
    async def test_second_read_from_memory(self) -> None:
        """A page read again, unchanged, reads no item row: only the node's."""
        await self.read()
        with self.item_reads() as reads:
            _, (items, _) = await self.read()
        self.assertEqual(([i.name for i in items], reads), (NAMES[-3:], []))

    async def test_one_transaction(self) -> None:
        """A hit after a commit (another node's items written) is one gateway call
        (the node's row and its version), reading no item row."""
        await self.read()
        other = await self.storage.set_pubsub_node(self.alice, SERVICE, "other")
        await self.storage.cache_pubsub_items(self.alice, other, make_items(["o"]))
        calls = gateway_calls(self, self.storage)
        with self.item_reads() as reads:
            await self.read()
        self.assertEqual((len(calls), reads), (1, []))

    async def test_cursor_page_checked_by_driver(self) -> None:
        """After a commit not touching the node, a cursor page read again is checked
        by one driver read of the node's row: no transaction, no item row."""
        query = ItemsQuery(max_items=2, after="i3", order_by=("creation",))
        await self.read(query)
        await self.storage.set_pubsub_node(self.alice, SERVICE, "other")
        calls = gateway_calls(self, self.storage)
        with self.item_reads() as reads:
            await self.read(query)
        self.assertEqual(([fn.__name__ for fn in calls], reads), (["read_synced_items"], []))

    @only_on("sqlite")
    async def test_no_query_without_commit(self) -> None:
        """SQLite: a hit with no commit since the page was read runs no database work
        (the wal-index header is the same)."""
        await self.read()
        calls = gateway_calls(self, self.storage)
        await self.read()
        self.assertEqual(calls, [])

    async def test_same_as_uncached(self) -> None:
        """Hits answer what get_items answers, for every kind of query."""
        await self.assert_cached()
        await self.assert_as_database()

    async def test_node_fresh_on_hit(self) -> None:
        """The node of a hit is the database's (its extra changed meanwhile)."""
        await self.read()
        await self.storage.update_pubsub_node_extra(self.node, {"k": 1})
        node, (items, _) = await self.read()
        self.assertEqual(node.extra, {"k": 1})
        self.assertTrue(all(item.node is node for item in items))

    async def test_not_completed_any_more(self) -> None:
        """A node no longer COMPLETED gives no page, though its page is cached."""
        await self.read()
        await self.storage.update_pubsub_node_sync_state(self.node, SyncState.IN_PROGRESS)
        node, page = await self.read()
        self.assertEqual((node.sync_state, page), (SyncState.IN_PROGRESS, None))


class OwnObjectsTests(ReadCacheTestCase):
    async def test_elements_not_shared(self) -> None:
        """Elements handed out twice are distinct: changing one changes no later answer."""
        _, (first, _) = await self.read()
        before = [item.data.toXml() for item in first]
        first[0].data["id"] = "changed"
        first[0].data.addElement("extra", content="x")
        first[1].data.firstChildElement().children.clear()
        _, (second, _) = await self.read()
        self.assertEqual([item.data.toXml() for item in second], before)
        self.assertTrue(all(a.data is not b.data for a, b in zip(first, second, strict=True)))

    async def test_parsed_and_metadata_not_shared(self) -> None:
        """Parsed data and metadata handed out are the caller's own too."""
        node = await self.storage.set_pubsub_node(self.alice, SERVICE, "parsed")
        await self.storage.cache_pubsub_items(
            self.alice, node, [make_item("p")], [{"tags": ["a"], "n": {"x": 1}}]
        )
        await self.storage.update_pubsub_node_sync_state(node, SyncState.COMPLETED)
        query = ItemsQuery(max_items=1)
        _, (items, metadata) = await self.storage.get_synced_items(
            self.alice, SERVICE, "parsed", query
        )
        items[0].parsed["tags"].append("b")
        items[0].parsed["n"]["x"] = 2
        metadata["rsm"]["count"] = 99
        metadata["complete"] = None
        _, (again, metadata_again) = await self.storage.get_synced_items(
            self.alice, SERVICE, "parsed", query
        )
        self.assertEqual(again[0].parsed, {"tags": ["a"], "n": {"x": 1}})
        self.assertEqual((metadata_again["rsm"]["count"], metadata_again["complete"]), (1, True))


class ThisProcessWritesTests(ThisProcessWrites, ReadCacheTestCase):
    """After each write of this storage, the next read is the database's (the
    scenarios shared with get_items', and:)."""

    async def setUp(self) -> None:
        await super().setUp()
        self.client = self.alice
        await self.assert_cached()

    async def page(self, query: ItemsQuery) -> tuple[list[Any], dict[str, Any]]:
        _, page = await self.read(query)
        return page

    async def test_node_deleted_and_created_again(self) -> None:
        """A node deleted (reset) then created again with other items: the new ones."""
        await self.storage.delete_pubsub_node(None, None, None)
        self.assertEqual(await self.read(), (None, None))
        node = await self.storage.set_pubsub_node(self.alice, SERVICE, "blog")
        await self.storage.cache_pubsub_items(self.alice, node, make_items(["a", "b"]))
        await self.storage.update_pubsub_node_sync_state(node, SyncState.COMPLETED)
        _, (page, _) = await self.read()
        self.assertEqual([i.name for i in page], ["a", "b"])

    async def test_sync_page(self) -> None:
        """A resynchronisation's pages (lease claimed, items written) are seen."""
        owner = "owner-1"
        claimed = await self.storage.claim_pubsub_node_sync(
            self.node, owner, 60, delete_items=True
        )
        self.assertTrue(claimed)
        await self.storage.cache_pubsub_sync_page(
            self.alice, self.node, make_items(["s1", "s2"]), None, owner, 60
        )
        await self.storage.release_pubsub_node_sync(self.node, owner, SyncState.COMPLETED)
        _, (page, _) = await self.read(ItemsQuery())
        self.assertEqual([i.name for i in page], ["s1", "s2"])
        await self.assert_as_database()


class OtherWritersTests(ReadCacheTestCase):
    """Writes of another storage or process on the same database: the next read of
    this storage (which kept its pages) sees them."""

    async def setUp(self) -> None:
        await super().setUp()
        self.other = Storage(self.storage.db_url)
        await self.other.initialise()
        self.addCleanup(self.other.close)
        self.other_node = await self.other.get_pubsub_node(self.alice, SERVICE, "blog")
        await self.assert_cached()

    async def test_items_written(self) -> None:
        """New and edited items written by another storage."""
        items = [make_item("new"), make_item("i9", "edited")]
        await self.other.cache_pubsub_items(self.alice, self.other_node, items)
        await self.assert_as_database()

    async def test_items_deleted(self) -> None:
        """Items retracted and purged by another storage."""
        await self.other.delete_pubsub_items(self.other_node, ["i9"])
        await self.assert_as_database()
        await self.other.purge_pubsub_items()
        await self.assert_as_database()

    async def test_catch_up(self) -> None:
        """A catch-up made by another storage."""
        await self.other.catch_up_pubsub_items(
            self.alice, self.other_node, [make_item("i8", "changed")], None, ["i0"],
            [make_item("late")], None,
        )  # fmt: skip
        await self.assert_as_database()

    async def test_node_deleted_and_created_again(self) -> None:
        """The node deleted and created again (same name, maybe the same id) by
        another storage, with other items."""
        await self.other.delete_pubsub_node(None, None, None)
        node = await self.other.set_pubsub_node(self.alice, SERVICE, "blog")
        await self.other.cache_pubsub_items(self.alice, node, make_items(NAMES[:5]))
        await self.other.update_pubsub_node_sync_state(node, SyncState.COMPLETED)
        await self.assert_as_database()

    async def raw_write(self, statement: str, name: str) -> None:
        """Run ``statement`` (``:name`` bound) in another process, plain SQLAlchemy."""
        out, err, code = await utils.getProcessOutputAndValue(
            sys.executable,
            ["-c", RAW_WRITER, self.storage.db_url, statement, name],
            env=None,
            path=str(Path(__file__).parents[2]),
        )
        self.assertEqual(code, 0, err.decode())

    async def test_raw_sql_of_another_process(self) -> None:
        """Items edited and deleted by plain SQL of another process."""
        await self.raw_write(
            "UPDATE pubsub_items SET data = replace(data, 'title of i9', 'raw') "
            "WHERE name = :name",
            "i9",
        )
        await self.assert_as_database()
        _, (page, _) = await self.read()
        self.assertIn("raw", page[-1].data.toXml())
        await self.raw_write("DELETE FROM pubsub_items WHERE name = :name", "i8")
        await self.assert_as_database()


class BoundTests(ReadCacheTestCase):
    async def setUp(self) -> None:
        await super().setUp()
        self.storage.read_cache.max_items = 5

    async def test_bounded_in_items(self) -> None:
        """Pages are kept while their items fit the bound; older ones are dropped."""
        queries = [ItemsQuery(max_items=2, from_index=i) for i in range(4)]
        for query in queries:
            await self.read(query)
        cache = self.storage.read_cache
        self.assertEqual((len(cache), cache.size), (2, 4))
        with self.item_reads() as reads:
            await self.read(queries[-1])  # kept: the newest
        self.assertEqual(reads, [])
        with self.item_reads() as reads:
            await self.read(queries[0])  # dropped: the oldest
        self.assertNotEqual(reads, [])

    async def test_least_recently_used_dropped(self) -> None:
        """A page used again is kept over one read before and not since."""
        first, second, third = (ItemsQuery(max_items=2, from_index=i) for i in range(3))
        for query in (first, second, first, third):
            await self.read(query)
        with self.item_reads() as reads:
            await self.read(first)
        self.assertEqual(reads, [])
        with self.item_reads() as reads:
            await self.read(second)
        self.assertNotEqual(reads, [])

    async def test_page_over_the_bound(self) -> None:
        """A page of more items than the bound is answered, not kept."""
        _, (page, _) = await self.read(ItemsQuery())
        self.assertEqual((len(page), len(self.storage.read_cache)), (10, 0))

    async def test_node_pages_dropped_on_write(self) -> None:
        """A write of this storage drops the node's pages at once."""
        await self.read()
        await self.storage.cache_pubsub_items(self.alice, self.node, [make_item("x")])
        self.assertEqual(len(self.storage.read_cache), 0)


class SettingTests(TestCase):
    def test_default(self) -> None:
        """The bound defaults to DEFAULT_READ_CACHE_ITEMS items."""
        storage = Storage("sqlite:///unused.sqlite")
        self.assertEqual(storage.read_cache.max_items, DEFAULT_READ_CACHE_ITEMS)

    def test_config_and_argument(self) -> None:
        """[storage] read_cache_items is read; the argument wins over it."""
        path = Path(self.mktemp())
        path.write_text("[storage]\nread_cache_items = 7\n")
        config = Config([path])
        self.assertEqual(Storage("sqlite:///u.sqlite", config).read_cache.max_items, 7)
        storage = Storage("sqlite:///u.sqlite", config, read_cache_items=0)
        self.assertEqual(storage.read_cache.max_items, 0)

    def test_bad_value(self) -> None:
        """A bound that is not a non-negative integer is refused, naming the setting."""
        for value in (-1, "many", True, 2.5):
            with self.assertRaisesRegex(ValueError, "read_cache_items"):
                Storage("sqlite:///u.sqlite", read_cache_items=value)  # type: ignore[arg-type]


class DisabledTests(ReadCacheTestCase):
    async def test_no_cache(self) -> None:
        """With read_cache_items = 0 every read reads its page, and nothing is kept."""
        storage = Storage(self.storage.db_url, read_cache_items=0)
        await storage.initialise()
        self.addCleanup(storage.close)
        await self.read(storage=storage)
        with self.item_reads(storage) as reads:
            await self.read(storage=storage)
        self.assertNotEqual(reads, [])
        self.assertEqual(len(storage.read_cache), 0)
