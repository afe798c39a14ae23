"""The PostgreSQL purge (item_purge_pg): its statements on the wire, its node locks.

Round trips are counted with libpq's trace (:class:`WireTrace`); the lock is held for
real by another client (psycopg alone) in an open transaction.
"""

from __future__ import annotations

from typing import Any

import psycopg
from sqlalchemy import event, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from twisted.trial.unittest import TestCase

from sat_storage.models import PubsubItem
from twisted_tests.db import only_on
from twisted_tests.storage import test_item_purge
from twisted_tests.storage.pubsub_helpers import SERVICE
from twisted_tests.storage.test_item_counts import counters
from twisted_tests.storage.test_pg_reads import WireTrace

#: a backend of the test's database waiting for a lock (row locks: a transaction id)
WAITING_SQL = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
    "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
)
#: polls of WAITING_SQL before giving up (each a round trip: a bound, not a delay)
POLLS = 20_000


class PostgreSQLPurgeTests(TestCase):
    # the two nodes of the purge tests: "blog" on SERVICE (a, b, c), on OTHER_SERVICE (x, y)
    setUp = test_item_purge.ItemPurgeTests.setUp  # (not imported: trial would run its tests here)

    def client(self) -> psycopg.Connection[Any]:
        """A connection of another client (psycopg alone) to the storage's database."""
        url = make_url(self.storage.db_url).set(drivername="postgresql")
        connection = psycopg.connect(url.render_as_string(hide_password=False))
        self.addCleanup(connection.close)
        return connection

    @only_on("postgresql")
    async def test_two_statements_lock_first(self) -> None:
        """The purge runs two statements of its own, the nodes' lock first, then the
        delete that counts the items."""
        statements: list[str] = []

        def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            statements.append(statement)

        engine = self.storage.db.engine
        event.listen(engine, "before_cursor_execute", seen)
        self.addCleanup(event.remove, engine, "before_cursor_execute", seen)
        self.assertEqual(await self.storage.purge_pubsub_items(services=[SERVICE]), 3)
        self.assertEqual(len(statements), 2)
        self.assertIn("FOR NO KEY UPDATE", statements[0])
        self.assertTrue(statements[1].startswith("WITH deleted AS (DELETE FROM pubsub_items"))

    @only_on("postgresql")
    async def test_one_round_trip(self) -> None:
        """Both statements go to the server together: the delete is sent before any
        answer to the lock came back (its result is not waited for)."""
        trace = WireTrace(self, self.storage.db.engine)
        await self.storage.purge_pubsub_items(names=["nothing"])  # a connection made
        mark = len(trace.messages())
        self.assertEqual(await self.storage.purge_pubsub_items(services=[SERVICE]), 3)
        lines = trace.messages()[mark:]
        lock = next(i for i, line in enumerate(lines) if "FOR NO KEY UPDATE" in line)
        delete = next(i for i, line in enumerate(lines) if "WITH deleted AS" in line)
        self.assertIn("\tF\t", lines[lock])
        self.assertLess(lock, delete)
        self.assertEqual([line for line in lines[lock:delete] if "\tB\t" in line], [])

    @only_on("postgresql")
    async def test_waits_for_writer_and_sees_its_items(self) -> None:
        """A purge waits for the lock of a node another client writes, then deletes
        the items that client committed meanwhile too (the delete's snapshot is taken
        once the lock is held); the count follows."""
        writer = self.client()
        writer.execute(
            "SELECT id FROM pubsub_nodes WHERE id = %s FOR NO KEY UPDATE", (self.node.id,)
        )
        writer.execute(
            "INSERT INTO pubsub_items (node_id, name, data, created, updated, fts_vector) "
            "VALUES (%s, 'late', '<item id=\"late\"/>', now(), now(), ''::tsvector)",
            (self.node.id,),
        )
        purge = self.storage.purge_pubsub_items(services=[SERVICE])
        watcher = self.client()
        watcher.autocommit = True
        for _ in range(POLLS):
            if watcher.execute(WAITING_SQL).fetchone()[0]:
                break
        else:
            self.fail("the purge never waited for the node's lock")
        self.assertFalse(purge.called)
        writer.commit()
        self.assertEqual(await purge, 4)
        count, _version, rows = await counters(self.storage, self.node)
        self.assertEqual((count, rows), (0, 0))
        self.assertEqual((await counters(self.storage, self.other))[::2], (2, 2))

    @only_on("postgresql")
    async def test_dates_only_lock_nodes_with_items(self) -> None:
        """With no node filter, only the nodes having a matching item are locked: a
        writer holding another node's lock does not hold the purge up."""
        writer = self.client()
        writer.execute(
            "SELECT id FROM pubsub_nodes WHERE id = %s FOR NO KEY UPDATE", (self.other.id,)
        )
        self.addCleanup(writer.rollback)

        def age(session: Session) -> None:
            names = PubsubItem.name.in_(["a", "b"])
            stmt = update(PubsubItem).where(PubsubItem.node_id == self.node.id, names)
            session.execute(stmt.values(updated=test_item_purge.OLD))

        await self.storage.db.run(age)
        purged = await self.storage.purge_pubsub_items(updated_before=test_item_purge.CUTOFF)
        self.assertEqual(purged, 2)
        self.assertEqual((await counters(self.storage, self.node))[::2], (1, 1))
