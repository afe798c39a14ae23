"""The gateway: transactions in database threads, retries, shutdown."""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError, InvalidRequestError
from sqlalchemy.orm import Session
from twisted.internet import defer, reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from sat_storage import engines, gateway
from sat_storage.driver_write import Writer
from sat_storage.gateway import THREAD_NAME, GatewayClosed
from sat_storage.models import Profile
from twisted_tests.db import database_url, make_storage, migrate, only_on
from twisted_tests.locks import real_locked_error


def add_profile(session: Session, name: str) -> int:
    profile = Profile(name=name)
    session.add(profile)
    session.flush()
    return profile.id


def profile_names(session: Session) -> list[str]:
    return sorted(session.scalars(select(Profile.name)))


def db_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if THREAD_NAME in t.name]


class GatewayTestCase(TestCase):
    async def setUp(self) -> None:
        self.storage = await make_storage(self)
        self.db = self.storage.db

    def statements_seen(self) -> list[str]:
        """SQL statements the engine runs from now on (until the test's cleanup)."""
        seen: list[str] = []

        def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            seen.append(statement)

        event.listen(self.db.engine, "before_cursor_execute", record)
        self.addCleanup(event.remove, self.db.engine, "before_cursor_execute", record)
        return seen


class TransactionTests(GatewayTestCase):
    async def test_commit_on_return(self) -> None:
        """What the function wrote is committed when it returns."""
        await self.db.run(add_profile, "alice")
        self.assertEqual(await self.db.run(profile_names), ["alice"])

    async def test_rollback_on_raise(self) -> None:
        """When the function raises, its error reaches the caller and nothing is kept."""

        def fails(session: Session) -> None:
            add_profile(session, "alice")
            raise ValueError("boom")

        with self.assertRaises(ValueError):
            await self.db.run(fails)
        self.assertEqual(await self.db.run(profile_names), [])

    async def test_arguments(self) -> None:
        """Positional and keyword arguments are passed after the session."""
        result = await self.db.run(lambda session, a, b=0: (a, b), 1, b=2)
        self.assertEqual(result, (1, 2))

    async def test_run_with_connection(self) -> None:
        """run_with_connection gives a connection; the function owns its transaction."""

        def work(connection: Any) -> int:
            with Session(connection) as session, session.begin():
                add_profile(session, "alice")
            return connection.execute(select(func.count()).select_from(Profile)).scalar()

        self.assertEqual(await self.db.run_with_connection(work), 1)

    async def test_results_loaded(self) -> None:
        """An ORM object returned keeps its loaded attributes; reading them runs no SQL."""
        profile_id = await self.db.run(add_profile, "alice")
        profile = await self.db.run(lambda session: session.get(Profile, profile_id))
        seen = self.statements_seen()
        self.assertEqual((profile.id, profile.name), (profile_id, "alice"))
        self.assertEqual(seen, [])

    async def test_no_lazy_loading(self) -> None:
        """An unloaded relationship raises in the reactor thread instead of querying."""
        profile_id = await self.db.run(add_profile, "alice")
        profile = await self.db.run(lambda session: session.get(Profile, profile_id))
        seen = self.statements_seen()
        with self.assertRaises(InvalidRequestError):
            profile.component  # noqa: B018
        self.assertEqual(seen, [])

    async def test_concurrent(self) -> None:
        """50 concurrent transactions all succeed and all their rows are kept."""
        names = [f"user{i:02}" for i in range(50)]
        ids = await defer.gatherResults([self.db.run(add_profile, name) for name in names])
        self.assertEqual(len(set(ids)), 50)
        self.assertEqual(await self.db.run(profile_names), names)


class RetryTests(GatewayTestCase):
    def setUp(self) -> Any:
        self.patch(gateway, "RETRY_DELAY", 0)
        self.locked = real_locked_error(self)
        return super().setUp()

    def failing(self, failures: int) -> tuple[Callable[[Session], str], list[int]]:
        """A function that writes, then raises 'database is locked' ``failures`` times."""
        attempts: list[int] = []

        def fn(session: Session) -> str:
            attempts.append(len(attempts) + 1)
            add_profile(session, f"attempt{len(attempts)}")
            if len(attempts) <= failures:
                raise self.locked
            return "done"

        return fn, attempts

    async def test_transient_retried(self) -> None:
        """A transient error is retried after a rollback: only the last attempt's writes stay."""
        fn, attempts = self.failing(1)
        with self.assertLogs("sat_storage.gateway", "WARNING"):
            self.assertEqual(await self.db.run(fn), "done")
        self.assertEqual(attempts, [1, 2])
        self.assertEqual(await self.db.run(profile_names), ["attempt2"])

    async def test_retries_bounded(self) -> None:
        """A transient error that persists reaches the caller after a few attempts."""
        fn, attempts = self.failing(1000)
        with self.assertRaises(sqlite3.OperationalError), self.assertLogs("sat_storage.gateway"):
            await self.db.run(fn)
        self.assertEqual(len(attempts), gateway.TRANSIENT_ATTEMPTS)
        self.assertEqual(await self.db.run(profile_names), [])

    async def test_other_errors_not_retried(self) -> None:
        """A constraint violation is not retried: one attempt, the error reaches the caller."""
        await self.db.run(add_profile, "alice")
        attempts: list[int] = []

        def duplicate(session: Session) -> None:
            attempts.append(1)
            add_profile(session, "alice")

        with self.assertRaises(IntegrityError):
            await self.db.run(duplicate)
        self.assertEqual(attempts, [1])

    @only_on("sqlite")
    async def test_write_lock_held_elsewhere(self) -> None:
        """A write lock held by another connection is waited for, not reported as an error."""
        path = engines.sqlite_path(self.db.engine.url)
        holder = sqlite3.connect(path, isolation_level=None)
        self.addCleanup(holder.close)
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("INSERT INTO profiles (name) VALUES ('holder')")

        def release_when_waiting(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            # The gateway's attempt is about to ask for the lock: the other connection
            # commits (in the reactor thread) while that attempt waits.
            if statement == "BEGIN IMMEDIATE" and holder.in_transaction:
                reactor.callFromThread(holder.execute, "COMMIT")

        event.listen(self.db.engine, "before_cursor_execute", release_when_waiting)
        self.addCleanup(event.remove, self.db.engine, "before_cursor_execute", release_when_waiting)
        attempts: list[int] = []

        def write(session: Session) -> list[str]:
            attempts.append(1)
            add_profile(session, "waiter")
            return profile_names(session)

        self.assertEqual(await self.db.run(write), ["holder", "waiter"])
        self.assertEqual(attempts, [1])


def add_profile_sql(writer: Writer, name: str) -> None:
    """Insert profile ``name`` with driver SQL (the driver's parameter style)."""
    mark = "?" if writer.dialect.name == "sqlite" else "%s"
    writer.execute(f"INSERT INTO profiles (name) VALUES ({mark})", (name,))


class WriteTests(GatewayTestCase):
    """Gateway.write: a transaction on the driver alone."""

    def setUp(self) -> Any:
        self.patch(gateway, "RETRY_DELAY", 0)
        self.locked = real_locked_error(self)
        return super().setUp()

    async def test_commit_on_return(self) -> None:
        """What the function wrote is committed when it returns, and its result returned."""
        self.assertEqual(await self.db.write(lambda w: add_profile_sql(w, "alice") or 7), 7)
        self.assertEqual(await self.db.run(profile_names), ["alice"])

    async def test_rollback_on_raise(self) -> None:
        """When the function raises, its error reaches the caller and nothing is kept."""

        def fails(writer: Writer) -> None:
            add_profile_sql(writer, "alice")
            raise ValueError("boom")

        with self.assertRaises(ValueError):
            await self.db.write(fails)
        self.assertEqual(await self.db.run(profile_names), [])

    async def test_rows_read_in_the_transaction(self) -> None:
        """Rows read by the function see its own earlier writes (not yet committed)."""

        def write_then_read(writer: Writer) -> list[tuple[Any, ...]]:
            add_profile_sql(writer, "alice")
            return writer.fetch("SELECT name FROM profiles")

        self.assertEqual(await self.db.write(write_then_read), [("alice",)])

    async def test_driver_error_as_sqlalchemy(self) -> None:
        """A driver error (a constraint violation, on PostgreSQL seen at the commit) is
        raised as SQLAlchemy raises it, once (not retried), and nothing is kept."""
        await self.db.run(add_profile, "alice")
        attempts: list[int] = []

        def duplicate(writer: Writer) -> None:
            attempts.append(1)
            add_profile_sql(writer, "bob")
            add_profile_sql(writer, "alice")

        with self.assertRaises(IntegrityError):
            await self.db.write(duplicate)
        self.assertEqual(attempts, [1])
        self.assertEqual(await self.db.run(profile_names), ["alice"])

    async def test_transient_retried(self) -> None:
        """A transient error is retried after a rollback: only the last attempt's writes stay."""
        attempts: list[int] = []

        def fn(writer: Writer) -> str:
            attempts.append(1)
            add_profile_sql(writer, f"attempt{len(attempts)}")
            if len(attempts) == 1:
                raise self.locked
            return "done"

        with self.assertLogs("sat_storage.gateway", "WARNING"):
            self.assertEqual(await self.db.write(fn), "done")
        self.assertEqual(await self.db.run(profile_names), ["attempt2"])

    @only_on("postgresql")
    async def test_lost_connection_dropped(self) -> None:
        """A connection lost in the middle of a write (its server process terminated)
        is found lost by the writer, dropped from the pool, and the write runs again at
        once on a new, pinged one, its first attempt's writes not kept."""
        writers: list[Writer] = []

        def fn(writer: Writer) -> str:
            writers.append(writer)
            add_profile_sql(writer, f"attempt{len(writers)}")
            if len(writers) == 1:
                writer.fetch("SELECT pg_terminate_backend(pg_backend_pid())")
            return "done"

        with self.assertLogs("sat_storage.gateway", "INFO") as logs:
            self.assertEqual(await self.db.write(fn), "done")
        self.assertEqual(
            [r.getMessage().split(":")[0] for r in logs.records],
            ["lost database connection on a write, write again"],
        )
        self.assertEqual([w.invalidated for w in writers], [True, False])
        self.assertEqual(await self.db.run(profile_names), ["attempt2"])

    async def test_statements_reported(self) -> None:
        """The function's statements reach the engine's ``before_cursor_execute``
        listeners (tests and benchmarks watch them there)."""
        seen = self.statements_seen()
        await self.db.write(add_profile_sql, "alice")
        self.assertIn("INSERT INTO profiles (name) VALUES", " ".join(seen))


class CloseTests(GatewayTestCase):
    def blocked(self) -> tuple[defer.Deferred[str], threading.Event]:
        """A transaction that waits in its thread until the returned event is set."""
        release = threading.Event()
        self.addCleanup(release.set)

        def wait_then_write(session: Session) -> str:
            release.wait(timeout=60)
            add_profile(session, "late")
            return "written"

        return self.db.run(wait_then_write), release

    async def test_drains_pending_work(self) -> None:
        """close() waits for a transaction started before it, which commits."""
        pending, release = self.blocked()
        closing = self.db.close()
        self.assertNoResult(closing)
        release.set()
        self.assertEqual(await pending, "written")
        await closing
        engine = engines.create_engine(self.storage.db_url)
        self.addCleanup(engine.dispose)
        with engine.connect() as connection:
            self.assertEqual(profile_names(Session(connection)), ["late"])

    async def test_keeps_pending_failure(self) -> None:
        """The failure of work pending at close() still reaches its caller."""

        def fails(session: Session) -> None:
            raise ValueError("boom")

        pending = self.db.run(fails)
        closing = self.db.close()
        with self.assertRaises(ValueError):
            await pending
        await closing

    async def test_refuses_new_work(self) -> None:
        """Once close() is called, new work fails with GatewayClosed, during and after."""
        pending, release = self.blocked()
        closing = self.db.close()
        with self.assertRaises(GatewayClosed):
            await self.db.run(profile_names)
        release.set()
        await pending
        await closing
        with self.assertRaises(GatewayClosed):
            await self.db.run_with_connection(lambda connection: None)

    async def test_stops_threads(self) -> None:
        """After close() no database thread is left running."""
        used = await defer.gatherResults(
            [self.db.run(lambda session: threading.current_thread()) for _ in range(10)]
        )
        await self.db.close()
        self.assertEqual([t for t in used if t.is_alive()], [])
        self.assertEqual(db_threads(), [])

    async def test_second_close_waits(self) -> None:
        """A second close() made while closing fires only when the first is done."""
        pending, release = self.blocked()
        first, second = self.db.close(), self.db.close()
        self.assertNoResult(second)
        release.set()
        await pending
        await first
        await second
        self.assertIsNone(self.successResultOf(self.db.close()))


SHUTDOWN_SCRIPT = """
import sys, threading
if sys.argv[2] == "asyncio":
    from twisted.internet import asyncioreactor
    asyncioreactor.install()
from twisted.internet import reactor
from sat_storage import engines
from sat_storage.gateway import THREAD_NAME, Gateway
from sat_storage.models import Profile

gateway = Gateway(engines.create_engine(sys.argv[1]))
release = threading.Event()
results = []

def write(session):
    release.wait(timeout=60)
    session.add(Profile(name="at-shutdown"))
    return "written"

def start():
    gateway.run(write).addBoth(results.append)
    # Added after the gateway's trigger: the work is still pending when shutdown starts.
    reactor.addSystemEventTrigger("before", "shutdown", release.set)
    reactor.stop()

reactor.callWhenRunning(start)
reactor.run()
threads = [t.name for t in threading.enumerate() if THREAD_NAME in t.name]
print(results, gateway.closed, threads)
"""


class ReactorShutdownTests(TestCase):
    async def test_shutdown_drains(self) -> None:
        """Stopping the reactor drains pending work, then stops the database threads."""
        url = database_url(self)
        migrate(url)
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        kind = "asyncio" if "asyncio" in type(reactor).__module__ else "default"
        out, err, code = await getProcessOutputAndValue(
            sys.executable,
            ["-W", "error", "-c", SHUTDOWN_SCRIPT, url, kind],
            env=dict(os.environ),
            path=directory,
        )
        self.assertEqual((code, err), (0, b""))
        self.assertEqual(out.decode().strip(), "['written'] True []")
        engine = engines.create_engine(url)
        self.addCleanup(engine.dispose)
        with engine.connect() as connection:
            self.assertEqual(profile_names(Session(connection)), ["at-shutdown"])
