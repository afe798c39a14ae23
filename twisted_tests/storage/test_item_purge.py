"""The purge's set-based delete (SQLite: the row triggers suspended inside its transaction)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from twisted.trial.unittest import TestCase

from sat_storage import engines
from sat_storage.models import PubsubItem
from sat_storage.storage.checks import IN_BATCH
from sat_storage.storage.item_purge import SUSPENDED_TRIGGERS
from sat_storage.storage.pubsub_filters import ItemFilters
from twisted_tests.db import make_storage, only_on, storage_with_profiles
from twisted_tests.storage.pubsub_helpers import OTHER_SERVICE, SERVICE, Client, make_items
from twisted_tests.storage.test_item_counts import counters

OLD = datetime(2020, 1, 1, tzinfo=UTC)
CUTOFF = datetime(2021, 1, 1, tzinfo=UTC)
#: (sort values whose item is gone, their item's item_id, values of live items)
ORPHANS_SQL = sa.text(
    "SELECT count(*) FROM pubsub_item_sort_values AS v "
    "WHERE NOT EXISTS (SELECT 1 FROM pubsub_items AS i WHERE i.id = v.item_id)"
)
VALUES_SQL = sa.text("SELECT count(*) FROM pubsub_item_sort_values")
TRIGGERS_SQL = (
    "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
    "AND tbl_name = 'pubsub_items' ORDER BY name"
)


class ItemPurgeTests(TestCase):
    """What a purge leaves behind: counts, versions, index entries, triggers."""

    async def setUp(self) -> None:
        self.storage = await storage_with_profiles(self, "alice")
        self.alice = Client("alice")
        self.node = await self.storage.set_pubsub_node(self.alice, SERVICE, "blog")
        self.other = await self.storage.set_pubsub_node(self.alice, OTHER_SERVICE, "blog")
        await self.storage.cache_pubsub_items(self.alice, self.node, make_items(list("abc")))
        await self.storage.cache_pubsub_items(self.alice, self.other, make_items(list("xy")))

    async def age(self, *names: str) -> None:
        """Make the items ``names`` old (updated before ``CUTOFF``)."""

        def txn(session: Session) -> None:
            stmt = update(PubsubItem).where(PubsubItem.name.in_(names)).values(updated=OLD)
            session.execute(stmt)

        await self.storage.db.run(txn)

    async def sort_values(self) -> tuple[int, int]:
        """``(sort values whose item is gone, sort values)``."""

        def txn(session: Session) -> tuple[int, int]:
            return session.execute(ORPHANS_SQL).scalar(), session.execute(VALUES_SQL).scalar()

        return await self.storage.db.run(txn)

    async def full_text_entries(self) -> int:
        """Entries of the full-text index (SQLite: FTS5 rows; PostgreSQL: item vectors)."""
        sql = sa.text(
            "SELECT count(*) FROM pubsub_items_fts"
            if self.storage.db.engine.dialect.name == "sqlite"
            else "SELECT count(fts_vector) FROM pubsub_items"
        )
        return await self.storage.db.run(lambda session: session.execute(sql).scalar())

    def raw(self) -> sqlite3.Connection:
        """A connection of another client (``sqlite3`` alone) to the storage's file."""
        path = engines.sqlite_path(self.storage.db.engine.url)
        connection = sqlite3.connect(str(path), isolation_level=None)
        self.addCleanup(connection.close)
        return connection

    async def test_version_of_touched_nodes_only(self) -> None:
        """A purge grows the version of each node it deleted items of, and only theirs;
        the counts follow the rows."""
        await self.age("a", "b")
        node_before = await counters(self.storage, self.node)
        other_before = await counters(self.storage, self.other)
        self.assertEqual(await self.storage.purge_pubsub_items(updated_before=CUTOFF), 2)
        count, version, rows = await counters(self.storage, self.node)
        self.assertEqual((count, rows), (1, 1))
        self.assertGreater(version, node_before[1])
        self.assertEqual(await counters(self.storage, self.other), other_before)

    async def test_index_entries_of_purged_items_only(self) -> None:
        """The purged items leave the full-text index; the other node's stay found."""
        await self.storage.purge_pubsub_items(services=[SERVICE])
        found = await self.storage.search_pubsub_items({"profiles": ["alice"], "fts": "title"})
        self.assertEqual(sorted(item.name for item in found), ["x", "y"])

    @only_on("sqlite")
    async def test_triggers_restored(self) -> None:
        """After a purge the row triggers are there, with the same text as before."""
        before = self.raw().execute(TRIGGERS_SQL).fetchall()
        self.assertTrue(set(SUSPENDED_TRIGGERS) <= {name for name, _ in before})
        await self.storage.purge_pubsub_items(services=[SERVICE])
        self.assertEqual(self.raw().execute(TRIGGERS_SQL).fetchall(), before)

    @only_on("sqlite")
    async def test_other_writers_still_counted(self) -> None:
        """After a purge, a delete by another client (``sqlite3``, none of the
        storage's code) is still counted and removes the index entry."""
        await self.storage.purge_pubsub_items(services=[SERVICE])
        raw = self.raw()
        raw.execute("PRAGMA foreign_keys = ON")
        raw.execute("DELETE FROM pubsub_items WHERE name = 'x'")
        count, _version, rows = await counters(self.storage, self.other)
        self.assertEqual((count, rows), (1, 1))
        (entries,) = raw.execute("SELECT count(*) FROM pubsub_items_fts").fetchone()
        self.assertEqual(entries, 1)

    @only_on("sqlite")
    async def test_failed_purge_rolled_back(self) -> None:
        """A purge that fails (a delete refused by the database) deletes nothing and
        leaves the triggers, the counts and the index as they were."""
        raw = self.raw()
        raw.execute(
            "CREATE TRIGGER test_refuse BEFORE DELETE ON pubsub_items "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
        before = raw.execute(TRIGGERS_SQL).fetchall()
        counts = await counters(self.storage, self.node)
        with self.assertRaises(IntegrityError):
            await self.storage.purge_pubsub_items(services=[SERVICE])
        self.assertEqual(raw.execute(TRIGGERS_SQL).fetchall(), before)
        self.assertEqual(await counters(self.storage, self.node), counts)
        (entries,) = raw.execute("SELECT count(*) FROM pubsub_items_fts").fetchone()
        self.assertEqual(entries, 5)

    @only_on("sqlite")
    async def test_missing_trigger_plain_delete(self) -> None:
        """With one of the two triggers missing (a database between migrations), the
        purge is a plain delete: the count trigger still there does the counting."""
        self.raw().execute(f'DROP TRIGGER "{SUSPENDED_TRIGGERS[1]}"')
        await self.storage.purge_pubsub_items(services=[SERVICE])
        count, _version, rows = await counters(self.storage, self.node)
        self.assertEqual((count, rows), (0, 0))

    async def test_sort_values_of_purged_items_only(self) -> None:
        """A purge deletes the sort values of its items (none left without an item) and
        keeps those of the items it leaves."""
        await self.storage.declare_sort_key(["published"], "desc")
        items = make_items(list("abc"))
        await self.storage.cache_pubsub_items(self.alice, self.node, items, [{"published": 1}] * 3)
        items = make_items(list("xy"))
        await self.storage.cache_pubsub_items(self.alice, self.other, items, [{"published": 2}] * 2)
        self.assertEqual(await self.sort_values(), (0, 5))
        self.assertEqual(await self.storage.purge_pubsub_items(services=[SERVICE]), 3)
        self.assertEqual(await self.sort_values(), (0, 2))

    async def test_other_storage_wrote_meanwhile(self) -> None:
        """Items another storage (another process) cached since this one's last write
        are purged with their counts, sort values and index entries."""
        await self.storage.declare_sort_key(["published"], "desc")
        second = await make_storage(self, self.storage.db_url)
        node = await second.get_pubsub_node(self.alice, SERVICE, "blog")
        await second.cache_pubsub_items(self.alice, node, make_items(list("cde")), [{}] * 3)
        self.assertEqual((await counters(self.storage, self.node))[0], 5)
        self.assertEqual(await self.storage.purge_pubsub_items(services=[SERVICE]), 5)
        count, _version, rows = await counters(self.storage, self.node)
        self.assertEqual((count, rows), (0, 0))
        self.assertEqual(await self.sort_values(), (0, 2))  # the other node's x and y
        self.assertEqual(await self.full_text_entries(), 2)
        await second.cache_pubsub_items(self.alice, node, make_items(["f"]), [{"published": 3}])
        count, _version, rows = await counters(second, node)  # counted again after the purge
        self.assertEqual((count, rows), (1, 1))

    @only_on("sqlite")
    async def test_other_client_deletes_sort_values(self) -> None:
        """After a purge, a delete by another client (``sqlite3``, none of the storage's
        code) still takes the item's sort values along (the trigger is back)."""
        await self.storage.declare_sort_key(["published"], "desc")
        await self.storage.cache_pubsub_items(
            self.alice, self.other, make_items(list("xy")), [{"published": 1}] * 2
        )
        await self.storage.purge_pubsub_items(services=[SERVICE])
        self.raw().execute("DELETE FROM pubsub_items WHERE name = 'x'")
        self.assertEqual(await self.sort_values(), (0, 1))

    async def test_purge_in_a_transaction(self) -> None:
        """``purge_pubsub_items_txn`` in a caller's transaction deletes what the purge
        deletes, with the counts and index entries, and the caller's own writes of that
        transaction are kept."""
        filters = ItemFilters.check(self.storage.get_profile_id, [SERVICE])

        def txn(session: Session) -> int:
            purged = self.storage.purge_pubsub_items_txn(session, filters)
            stmt = update(PubsubItem).where(PubsubItem.name == "x").values(updated=OLD)
            session.execute(stmt)
            return purged

        self.assertEqual(await self.storage.db.run(txn), 3)
        count, _version, rows = await counters(self.storage, self.node)
        self.assertEqual((count, rows), (0, 0))
        self.assertEqual(await self.full_text_entries(), 2)
        self.assertEqual(await self.storage.purge_pubsub_items(updated_before=CUTOFF), 1)

    async def test_filters_in_chunks_with_dates(self) -> None:
        """Filter lists longer than one chunk of bound values, a ``None`` among the types
        and both dates select exactly the items they name (no item twice, none of the
        nodes not named), with the counts following."""
        names = [f"n{index:04d}" for index in range(IN_BATCH + 5)]
        await self.age("a", "b", "x")
        later = datetime(2030, 1, 1, tzinfo=UTC)
        purged = await self.storage.purge_pubsub_items(
            names=[*names, "blog"],
            types=[None, *names],
            created_before=later,
            updated_before=CUTOFF,
        )
        self.assertEqual(purged, 3)
        self.assertEqual((await counters(self.storage, self.node))[::2], (1, 1))
        self.assertEqual((await counters(self.storage, self.other))[::2], (1, 1))
        self.assertEqual(await self.full_text_entries(), 2)

    async def test_same_shape_other_values(self) -> None:
        """Purges whose filters have the same shape (the statement compiled once) and
        other values each delete their own items only."""
        third = await self.storage.set_pubsub_node(self.alice, SERVICE, "news")
        await self.storage.cache_pubsub_items(self.alice, third, make_items(list("mn")))
        for name, expected in (("news", 2), ("blog", 5), ("news", 0)):
            self.assertEqual(await self.storage.purge_pubsub_items(names=[name]), expected)
        self.assertEqual(await self.full_text_entries(), 0)
        await self.storage.cache_pubsub_items(self.alice, third, make_items(list("mn")))
        await self.storage.cache_pubsub_items(self.alice, self.node, make_items(list("ab")))
        purged = await self.storage.purge_pubsub_items(services=[SERVICE], names=["news"])
        self.assertEqual(purged, 2)
        self.assertEqual((await counters(self.storage, self.node))[::2], (2, 2))
