"""PostgreSQL reads and driver writes without the pool's ping: round trips on the wire,
lost connections.

``Gateway.read`` and ``Gateway.write`` check a pooled connection out without the ping
that a Session's checkout pays (one round trip); a read or write that finds its
connection lost drops it and the pool's older connections, and runs again on a fresh
one. A write sends its ``BEGIN`` and ``COMMIT`` with its statements (pipeline mode). Round trips are
counted on the wire: libpq's trace of the storage's connections (psycopg's
``PGconn.trace``), one ``ReadyForQuery`` message from the server per round trip.
Connections are lost for real: their server processes terminated
(``pg_terminate_backend``), or the whole server restarted.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import psycopg
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from twisted.trial.unittest import TestCase

from sat_storage import Storage, gateway
from sat_storage.driver_sql import Reader
from sat_storage.driver_write import Writer
from sat_storage.models import Profile
from twisted_tests.db import make_storage, only_on
from twisted_tests.storage.pubsub_helpers import SERVICE, Client, make_items

LOST = "lost database connection on a read"
LOST_WRITE = "lost database connection on a write"


class WireTrace:
    """libpq's trace of every connection ``engine`` opens from now on (the pool's
    connections are closed first), all in one file."""

    def __init__(self, testcase: TestCase, engine: Engine) -> None:
        self.path = testcase.mktemp()
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.engine = engine
        self.connections: list[Any] = []
        engine.pool.dispose()
        event.listen(engine, "connect", self._trace)
        testcase.addCleanup(self.close)

    def _trace(self, dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.pgconn.trace(self.fd)
        self.connections.append(dbapi_connection)

    def messages(self) -> list[str]:
        """Every message traced so far (libpq's buffers flushed: tracing again
        flushes the previous trace)."""
        for connection in self.connections:
            if not connection.closed:
                connection.pgconn.trace(self.fd)
        with open(self.path) as f:
            return f.read().splitlines()

    def since(self, mark: int, kind: str) -> int:
        """Messages of ``kind`` the server sent after the first ``mark`` messages."""
        return sum(1 for line in self.messages()[mark:] if "\tB\t" in line and kind in line)

    def round_trips(self, mark: int) -> int:
        """Round trips after the first ``mark`` messages: runs of messages sent by the
        client (a ``Flush`` asks for results as a ``Sync`` does, without a
        ``ReadyForQuery``)."""
        sent = ["\tF\t" in line for line in self.messages()[mark:] if "\t" in line]
        return sum(1 for i, f in enumerate(sent) if f and (i == 0 or not sent[i - 1]))

    def close(self) -> None:
        event.remove(self.engine, "connect", self._trace)
        for connection in self.connections:
            if not connection.closed:
                connection.pgconn.untrace()
        os.close(self.fd)


def gateway_records(testcase: TestCase) -> list[logging.LogRecord]:
    """The records the gateway logs from now on (INFO and above)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger(gateway.__name__)
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    testcase.addCleanup(logger.setLevel, level)
    testcase.addCleanup(logger.removeHandler, handler)
    return records


def lost_reads(records: list[logging.LogRecord], message: str = LOST) -> int:
    return sum(1 for record in records if message in record.getMessage())


def profile_count(session: Session) -> int:
    return session.query(Profile).count()


def count_profiles(reader: Reader) -> int:
    return int(reader.cursor.execute("SELECT count(*) FROM profiles").fetchone()[0])


def add_profile(writer: Writer, name: str) -> None:
    writer.execute("INSERT INTO profiles (name) VALUES (%s)", (name,))


def add_profile_counted(writer: Writer, name: str) -> int:
    add_profile(writer, name)
    return int(writer.fetch("SELECT count(*) FROM profiles")[0][0])


def pool_of(engine: Engine, size: int) -> None:
    """``size`` connections in ``engine``'s pool, checked in (each used once)."""
    connections = [engine.raw_connection() for _ in range(size)]
    for connection in connections:
        connection.close()


def terminate_backends(engine: Engine) -> int:
    """Terminate the server processes of every other connection to ``engine``'s
    database, waiting until they are gone; how many."""
    url = make_url(engine.url).set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid, 30000) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return sum(1 for (done,) in rows if done)


class RoundTripTests(TestCase):
    async def setUp(self) -> None:
        self.storage = await make_storage(self)
        self.db = self.storage.db
        self.trace = WireTrace(self, self.db.engine)
        await self.db.read(count_profiles)  # a connection made (fresh: never pinged)

    @only_on("postgresql")
    async def test_read_is_its_statements(self) -> None:
        """A read on a connection used before is its statement's round trip alone:
        no ping."""
        mark = len(self.trace.messages())
        self.assertEqual(await self.db.read(count_profiles), 0)
        self.assertEqual(self.trace.since(mark, "ReadyForQuery"), 1)
        self.assertEqual(self.trace.since(mark, "EmptyQueryResponse"), 0)

    @only_on("postgresql")
    async def test_cached_hit_one_round_trip(self) -> None:
        """A page of get_items asked again (the node's counters checked) is one round
        trip."""
        await self.storage.create_profile("alice")
        alice = Client("alice")
        node = await self.storage.set_pubsub_node(alice, SERVICE, "blog")
        await self.storage.cache_pubsub_items(alice, node, make_items(["a", "b", "c"]))
        first = await self.storage.get_items(node, max_items=2)
        mark = len(self.trace.messages())
        again = await self.storage.get_items(node, max_items=2)
        self.assertEqual(self.trace.since(mark, "ReadyForQuery"), 1)
        self.assertEqual([i.name for i in again[0]], [i.name for i in first[0]])

    @only_on("postgresql")
    async def test_write_reading_nothing_one_round_trip(self) -> None:
        """A driver write that reads no result is one round trip: its BEGIN, its
        statement and its COMMIT sent together, no ping."""
        mark = len(self.trace.messages())
        await self.db.write(add_profile, "alice")
        self.assertEqual(self.trace.round_trips(mark), 1)
        self.assertEqual(self.trace.since(mark, "EmptyQueryResponse"), 0)
        self.assertEqual(await self.db.read(count_profiles), 1)

    @only_on("postgresql")
    async def test_write_reading_one_result_two_round_trips(self) -> None:
        """A driver write reading one result is two round trips: up to the result,
        then the commit."""
        mark = len(self.trace.messages())
        self.assertEqual(await self.db.write(add_profile_counted, "alice"), 1)
        self.assertEqual(self.trace.round_trips(mark), 2)
        self.assertEqual(await self.db.read(count_profiles), 1)

    @only_on("postgresql")
    async def test_transaction_pinged(self) -> None:
        """A transaction (a Session) still checks its connection with the ping first."""
        mark = len(self.trace.messages())
        self.assertEqual(await self.db.run(profile_count), 0)
        self.assertEqual(self.trace.since(mark, "EmptyQueryResponse"), 1)


class LostConnectionTests(TestCase):
    async def setUp(self) -> None:
        self.storage = await make_storage(self)
        self.db = self.storage.db
        self.patch(gateway, "RETRY_DELAY", 0)
        pool_of(self.db.engine, 3)
        self.records = gateway_records(self)

    @only_on("postgresql")
    async def test_read_after_backends_terminated(self) -> None:
        """Reads after every pooled connection was lost succeed; the first finds its
        connection lost and drops the pool's older ones too: it alone reads again."""
        self.assertEqual(terminate_backends(self.db.engine), 3)
        for _ in range(4):
            self.assertEqual(await self.db.read(count_profiles), 0)
        self.assertEqual(lost_reads(self.records), 1)
        self.assertEqual([r for r in self.records if r.levelno >= logging.WARNING], [])

    @only_on("postgresql")
    async def test_transaction_after_backends_terminated(self) -> None:
        """A transaction after every pooled connection was lost succeeds at its first
        attempt: the ping found the connection lost (no transient retry)."""
        self.assertEqual(terminate_backends(self.db.engine), 3)
        for _ in range(4):
            self.assertEqual(await self.db.run(profile_count), 0)
        self.assertEqual(self.records, [])

    @only_on("postgresql")
    async def test_write_after_backends_terminated(self) -> None:
        """Driver writes after every pooled connection was lost succeed, each written
        once; the first finds its connection lost and alone runs again."""
        self.assertEqual(terminate_backends(self.db.engine), 3)
        for n in range(4):
            await self.db.write(add_profile, f"p{n}")
        self.assertEqual(await self.db.read(count_profiles), 4)
        self.assertEqual(lost_reads(self.records, LOST_WRITE), 1)
        self.assertEqual([r for r in self.records if r.levelno >= logging.WARNING], [])

    @only_on("postgresql")
    async def test_write_error_rolled_back_connection_kept(self) -> None:
        """A driver write whose statement fails on a live connection is not run again,
        leaves nothing written, and its connection serves the next write."""
        calls: list[int] = []

        def bad(writer: Writer) -> None:
            calls.append(1)
            add_profile(writer, "kept-out")
            writer.fetch("SELECT no_such_column FROM profiles")

        with self.assertRaises(DBAPIError):
            await self.db.write(bad)
        self.assertEqual(calls, [1])
        await self.db.write(add_profile, "alice")
        self.assertEqual(await self.db.read(count_profiles), 1)
        self.assertEqual(self.records, [])

    @only_on("postgresql")
    async def test_read_error_not_read_again(self) -> None:
        """A read whose statement fails on a live connection is not run again."""
        calls: list[int] = []

        def bad(reader: Reader) -> None:
            calls.append(1)
            reader.cursor.execute("SELECT no_such_column FROM profiles")

        with self.assertRaises(psycopg.errors.UndefinedColumn):
            await self.db.read(bad)
        self.assertEqual(calls, [1])
        self.assertEqual(await self.db.read(count_profiles), 0)


class ServerRestartTests(TestCase):
    @only_on("postgresql")
    async def test_get_items_after_restart(self) -> None:
        """get_items after the server restarted (every pooled connection lost)
        answers the page, not an error."""
        from twisted_tests.pg_server import start_postgresql

        server = start_postgresql()
        self.addCleanup(server.stop)
        storage = Storage(server.url)
        await storage.initialise()
        self.addCleanup(storage.close)
        await storage.create_profile("alice")
        alice = Client("alice")
        node = await storage.set_pubsub_node(alice, SERVICE, "blog")
        await storage.cache_pubsub_items(alice, node, make_items(["a", "b", "c"]))
        before = await storage.get_items(node, max_items=2)
        pool_of(storage.db.engine, 2)
        server.run("pg_ctl", "-D", "data", "-m", "fast", "-w", "-s", "restart")
        storage.read_cache.clear()
        records = gateway_records(self)
        items, metadata = await storage.get_items(node, max_items=2)
        self.assertEqual([i.name for i in items], [i.name for i in before[0]])
        self.assertEqual(metadata, before[1])
        self.assertEqual(lost_reads(records), 1)
