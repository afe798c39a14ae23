"""The read cache of Storage.get_items: hits, never stale, the caller's own objects.

A hit is seen in the statements run (a page answered from memory reads no item row)
and in the gateway calls made (none on SQLite while no transaction committed since:
the wal-index header says so). After every write (this storage's, another
connection's, another process's, a checkpoint restarting the WAL) the next read
must equal the database's: the page read by ``get_items_txn`` in a transaction,
which no cache serves.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
from pathlib import Path
from typing import Any

from twisted.internet import utils
from twisted.trial.unittest import TestCase

from sat_storage import ItemsQuery, Storage
from sat_storage.exceptions import NotFound
from sat_storage.storage.item_reads import ItemRow
from twisted_tests.db import make_storage, only_on, storage_with_profiles
from twisted_tests.storage.cache_writes import RAW_WRITER, ThisProcessWrites
from twisted_tests.storage.pubsub_helpers import (
    SERVICE,
    Client,
    gateway_calls,
    item_reads,
    make_item,
    make_items,
    refuse_transactions,
)

ALICE = Client("alice")
NAMES = [f"i{n}" for n in range(10)]
QUERIES = [
    ItemsQuery(max_items=3),
    ItemsQuery(max_items=3, desc=False),
    ItemsQuery(max_items=3, order_by=("creation",)),
    ItemsQuery(max_items=2, before=""),
    ItemsQuery(max_items=2, after="i3", order_by=("creation",)),
    ItemsQuery(max_items=2, before="i6"),
    ItemsQuery(max_items=2, from_index=4),
    ItemsQuery(item_ids=("i1", "i4", "i8")),
    ItemsQuery(max_items=0),
]
EDIT = "UPDATE pubsub_items SET data = replace(data, 'title of i9', 'edited') WHERE name = :name"


def page_of(page: tuple[list[Any], dict[str, Any]]) -> tuple[list[tuple[str, str]], Any]:
    """(names and XML of the items, metadata) of a page."""
    items, metadata = page
    return [(item.name, item.data.toXml()) for item in items], metadata


class ItemsCacheTestCase(TestCase):
    async def setUp(self) -> None:
        self.storage = await storage_with_profiles(self, "alice")
        self.node = await self.storage.set_pubsub_node(ALICE, SERVICE, "blog")
        await self.storage.cache_pubsub_items(ALICE, self.node, make_items(NAMES))

    async def read_all(self, storage: Storage | None = None, node: Any = None) -> None:
        """Every query of QUERIES read (and kept by the cache)."""
        for query in QUERIES:
            await (storage or self.storage).get_items(node or self.node, query)

    async def assert_as_database(self, storage: Storage | None = None, node: Any = None) -> None:
        """Every query of QUERIES answers what the database holds."""
        storage, node = storage or self.storage, node or self.node
        for query in QUERIES:
            try:
                expected = await storage.db.run(storage.get_items_txn, node.id, query, node)
            except NotFound:  # a cursor gone: the cache says so too
                with self.assertRaises(NotFound):
                    await storage.get_items(node, query)
                continue
            answer = await storage.get_items(node, query)
            self.assertEqual(page_of(answer), page_of(expected), query)

    async def raw_write(self, statement: str, name: str) -> None:
        """Run ``statement`` (``:name`` bound) in another process, plain SQLAlchemy."""
        out, err, code = await utils.getProcessOutputAndValue(
            sys.executable,
            ["-c", RAW_WRITER, self.storage.db_url, statement, name],
            env=os.environ,
            path=str(Path(__file__).parents[2]),
        )
        self.assertEqual(code, 0, err.decode())


class MissTests(ItemsCacheTestCase):
    async def test_every_miss_one_driver_read(self) -> None:
        """A miss of every kind of page (cursors, index and ids too) is one driver
        read, no Session transaction, and answers what the database holds."""
        expected = [
            page_of(await self.storage.db.run(self.storage.get_items_txn, self.node.id, query))
            for query in QUERIES
        ]
        refuse_transactions(self, self.storage)
        calls = gateway_calls(self, self.storage)
        for query, page in zip(QUERIES, expected, strict=True):
            self.storage.read_cache.clear()
            self.assertEqual(page_of(await self.storage.get_items(self.node, query)), page, query)
        self.assertEqual([fn.__name__ for fn in calls], ["read_items_unless"] * len(QUERIES))

    async def test_stale_page_one_driver_read(self) -> None:
        """A cached page of every kind found stale (the node's items written) is read
        again in the same driver read that found it stale."""
        await self.read_all()
        await self.storage.cache_pubsub_items(ALICE, self.node, [make_item("i2", "edited")])
        refuse_transactions(self, self.storage)
        calls = gateway_calls(self, self.storage)
        for query in QUERIES:
            await self.storage.get_items(self.node, query)
        self.assertEqual([fn.__name__ for fn in calls], ["read_items_unless"] * len(QUERIES))


class HitTests(ItemsCacheTestCase):


    async def test_no_item_row_read_again(self) -> None:
        """Every kind of page read again, unchanged, reads no item row."""
        await self.read_all()
        with item_reads(self.storage) as reads:
            await self.read_all()
        self.assertEqual(reads, [])

    @only_on("sqlite")
    async def test_no_gateway_call_without_commit(self) -> None:
        """SQLite: pages read again with no commit since make no gateway call."""
        await self.read_all()
        calls = gateway_calls(self, self.storage)
        await self.read_all()
        self.assertEqual(calls, [])

    async def test_one_call_after_a_commit(self) -> None:
        """After a commit not touching the node, a page read again is one gateway
        call (the node's counters), reading no item row."""
        await self.storage.get_items(self.node, QUERIES[0])
        other = await self.storage.set_pubsub_node(ALICE, SERVICE, "other")
        await self.storage.cache_pubsub_items(ALICE, other, make_items(["o"]))
        calls = gateway_calls(self, self.storage)
        with item_reads(self.storage) as reads:
            await self.storage.get_items(self.node, QUERIES[0])
        self.assertEqual((len(calls), reads), (1, []))

    async def test_cursor_page_checked_by_driver(self) -> None:
        """After a commit not touching the node, a cursor page read again is checked
        by one driver read of the counters: no transaction, no item row."""
        query = ItemsQuery(max_items=2, after="i3", order_by=("creation",))
        await self.storage.get_items(self.node, query)
        await self.storage.set_pubsub_node(ALICE, SERVICE, "other")
        calls = gateway_calls(self, self.storage)
        with item_reads(self.storage) as reads:
            await self.storage.get_items(self.node, query)
        self.assertEqual(([fn.__name__ for fn in calls], reads), (["read_items_unless"], []))

    async def test_same_as_database(self) -> None:
        """Hits answer what the database holds, for every kind of query."""
        await self.read_all()
        await self.assert_as_database()

    async def test_all_items_not_kept(self) -> None:
        """A read of all the node's items (no max_items, no ids) is not kept: read
        again, it reads its item rows again."""
        await self.storage.get_items(self.node)
        with item_reads(self.storage) as reads:
            items, _ = await self.storage.get_items(self.node)
        self.assertEqual((len(items), len(self.storage.read_cache)), (len(NAMES), 0))
        self.assertNotEqual(reads, [])

    async def test_disabled(self) -> None:
        """With read_cache_items = 0, a page read again reads its item rows again."""
        self.storage.read_cache.max_items = 0
        await self.read_all()
        with item_reads(self.storage) as reads:
            await self.storage.get_items(self.node, QUERIES[0])
        self.assertNotEqual((reads, len(self.storage.read_cache)), ([], 0))


class OwnObjectsTests(ItemsCacheTestCase):
    async def test_elements_not_shared(self) -> None:
        """Elements handed out twice are distinct: changing one changes no later answer."""
        first, _ = await self.storage.get_items(self.node, max_items=3)
        before = [item.data.toXml() for item in first]
        first[0].data["id"] = "changed"
        first[1].data.firstChildElement().children.clear()
        for _ in range(2):  # the answer that filled the cache, then hits
            again, _ = await self.storage.get_items(self.node, max_items=3)
            self.assertEqual([item.data.toXml() for item in again], before)
            self.assertTrue(all(a.data is not b.data for a, b in zip(first, again, strict=True)))
            first = again
            first[0].data.addElement("extra", content="x")

    async def test_parsed_and_metadata_not_shared(self) -> None:
        """Parsed data and metadata handed out are the caller's own too."""
        node = await self.storage.set_pubsub_node(ALICE, SERVICE, "parsed")
        await self.storage.cache_pubsub_items(
            ALICE, node, [make_item("p")], [{"tags": ["a"], "n": {"x": 1}}]
        )
        for _ in range(2):  # the answer that filled the cache, then a hit
            items, metadata = await self.storage.get_items(node, max_items=1)
            self.assertEqual(items[0].parsed, {"tags": ["a"], "n": {"x": 1}})
            self.assertEqual((metadata["rsm"]["count"], metadata["complete"]), (1, True))
            items[0].parsed["tags"].append("b")
            items[0].parsed["n"]["x"] = 2
            metadata["rsm"]["count"] = 99
            metadata["complete"] = None

    async def test_items_as_database_reads(self) -> None:
        """Items of a hit are ItemRows: the stored XML text, the node given, a copy
        of their own, and a new element once assigned."""
        await self.storage.get_items(self.node, max_items=1)
        (item,), _ = await self.storage.get_items(self.node, max_items=1)
        self.assertIsInstance(item, ItemRow)
        self.assertEqual((item.xml, item.node), (make_item("i9").toXml(), self.node))
        copy = item.copy()
        self.assertIsNot(copy.data, item.data)
        item.data = make_item("i9", "assigned")
        self.assertIn("assigned", item.xml)
        self.assertNotIn("assigned", copy.xml)


class ThisProcessWritesTests(ThisProcessWrites, ItemsCacheTestCase):
    """After each write of this storage, the next read is the database's (the
    scenarios shared with get_synced_items', and:)."""

    client = ALICE

    async def setUp(self) -> None:
        await super().setUp()
        await self.read_all()

    async def page(self, query: ItemsQuery) -> tuple[list[Any], dict[str, Any]]:
        return await self.storage.get_items(self.node, query)

    async def test_node_deleted_and_created_again(self) -> None:
        """A node deleted then created again (maybe under the same id) with other
        items: the new ones; the old node object reads an empty page."""
        await self.storage.delete_pubsub_node(None, None, None)
        items, _ = await self.storage.get_items(self.node, max_items=3)
        self.assertEqual(items, [])
        node = await self.storage.set_pubsub_node(ALICE, SERVICE, "blog")
        await self.storage.cache_pubsub_items(ALICE, node, make_items(["i1", "i3", "i6"]))
        await self.assert_as_database(node=node)


class OtherWritersTests(ItemsCacheTestCase):
    """Writes of another connection, storage or process on the same database: the
    next read of this storage (which kept its pages) sees them."""

    async def setUp(self) -> None:
        await super().setUp()
        await self.read_all()

    def sqlite_connection(self) -> sqlite3.Connection:
        """A plain sqlite3 connection of this process to the storage's file."""
        path = self.storage.db.engine.url.database
        assert path is not None
        connection = sqlite3.connect(path, isolation_level=None)
        self.addCleanup(connection.close)
        return connection

    @only_on("sqlite")
    async def test_second_sqlite3_connection(self) -> None:
        """An item edited, then one deleted, by a plain sqlite3 connection."""
        connection = self.sqlite_connection()
        connection.execute(EDIT, {"name": "i9"})
        await self.assert_as_database()
        items, _ = await self.storage.get_items(self.node, max_items=1)
        self.assertIn("edited", items[0].data.toXml())
        connection.execute("DELETE FROM pubsub_items WHERE name = 'i3'")
        await self.assert_as_database()

    @only_on("sqlite")
    async def test_checkpoint_and_restart(self) -> None:
        """A checkpoint truncating the WAL (pages stay right), then a write into the
        restarted WAL by another connection: seen."""
        connection = self.sqlite_connection()
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        await self.assert_as_database()
        connection.execute(EDIT, {"name": "i9"})
        await self.assert_as_database()

    async def test_another_process(self) -> None:
        """Items edited and deleted by plain SQL of another process."""
        await self.raw_write(EDIT, "i9")
        await self.assert_as_database()
        await self.raw_write("DELETE FROM pubsub_items WHERE name = :name", "i6")
        await self.assert_as_database()

    async def test_another_storage(self) -> None:
        """Items written and the node deleted and created again by another storage."""
        other = await make_storage(self, self.storage.db_url)
        node = await other.get_pubsub_node(ALICE, SERVICE, "blog")
        await other.cache_pubsub_items(ALICE, node, [make_item("new"), make_item("i2", "x")])
        await self.assert_as_database()
        await other.delete_pubsub_node(None, None, None)
        node = await other.set_pubsub_node(ALICE, SERVICE, "blog")
        await other.cache_pubsub_items(ALICE, node, make_items(NAMES[:4]))
        again = await self.storage.get_pubsub_node(ALICE, SERVICE, "blog")
        await self.assert_as_database(node=again)


class FallbackTests(ItemsCacheTestCase):
    """Without a trusted wal-index header, a hit is checked by the node's counters."""

    async def test_in_memory_database(self) -> None:
        """An in-memory SQLite database: no header; a page read again is one gateway
        call, reading no item row; a write is seen."""
        storage = Storage("sqlite://")
        await storage.initialise()
        self.addCleanup(storage.close)
        await storage.create_profile("alice")
        node = await storage.set_pubsub_node(ALICE, SERVICE, "blog")
        await storage.cache_pubsub_items(ALICE, node, make_items(NAMES))
        self.assertIsNone(storage.db.changes)
        await self.read_all(storage, node)
        calls = gateway_calls(self, storage)
        with item_reads(storage) as reads:
            await storage.get_items(node, QUERIES[0])
        self.assertEqual((len(calls), reads), (1, []))
        await storage.cache_pubsub_items(ALICE, node, [make_item("i9", "edited")])
        await self.assert_as_database(storage, node)

    @only_on("sqlite")
    async def test_shm_replaced(self) -> None:
        """The -shm file replaced under the storage (another inode): pages read again
        are checked by one gateway call each."""
        changes = self.storage.db.changes
        assert changes is not None
        copy = changes.shm_path + ".copy"
        shutil.copyfile(changes.shm_path, copy)
        os.replace(copy, changes.shm_path)
        calls = gateway_calls(self, self.storage)
        await self.read_all()
        self.assertEqual(len(calls), len(QUERIES))

    @only_on("postgresql")
    async def test_postgresql_checks_every_hit(self) -> None:
        """PostgreSQL: no header; every page read again is one gateway call."""
        self.assertIsNone(self.storage.db.changes)
        await self.read_all()
        calls = gateway_calls(self, self.storage)
        with item_reads(self.storage) as reads:
            await self.read_all()
        self.assertEqual((len(calls), reads), (len(QUERIES), []))

    async def test_unknown_cursor(self) -> None:
        """A cursor page cached, its item deleted by another process: NotFound."""
        query = ItemsQuery(max_items=2, after="i3", order_by=("creation",))
        await self.storage.get_items(self.node, query)
        await self.raw_write("DELETE FROM pubsub_items WHERE name = :name", "i3")
        with self.assertRaises(NotFound):
            await self.storage.get_items(self.node, query)
