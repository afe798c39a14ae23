"""The gateway's own database threads (sat_storage.db_threads), on the suite's database."""

from __future__ import annotations

import threading
import traceback
from typing import Any

import sqlalchemy as sa
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from sat_storage import engines
from sat_storage.db_threads import DatabaseThreads, ThreadsStopped
from sat_storage.driver_sql import DriverStatement, Reader
from sat_storage.gateway import THREAD_NAME, GatewayClosed
from twisted_tests.db import make_storage, only_on

WAIT = 60  # seconds: a safety bound of the waits below, never reached when green


def started_threads(threads: DatabaseThreads) -> list[threading.Thread]:
    """The threads of ``threads`` alive now."""
    return [t for t in threads.threads if t.is_alive()]


def broken_select(reader: Reader) -> Any:
    """A read whose statement the database refuses (no such table)."""
    missing = sa.table("no_such_table", sa.column("x"))
    return reader.rows(DriverStatement(sa.select(missing.c.x)))


class GatewayThreadsTests(TestCase):
    """Work given to the gateway, run in its own threads on a real database."""

    async def setUp(self) -> None:
        self.storage = await make_storage(self)
        self.db = self.storage.db

    def blocked(self, count: int) -> tuple[list[defer.Deferred[Any]], threading.Event]:
        """``count`` transactions that each wait in their thread for the event."""
        release = threading.Event()
        self.addCleanup(release.set)

        def wait(session: Session) -> str:
            release.wait(timeout=WAIT)
            return threading.current_thread().name

        return [self.db.run(wait) for _ in range(count)], release

    async def test_error_reaches_caller_with_traceback(self) -> None:
        """A database error raised in the thread reaches the caller as a Failure whose
        traceback shows where it was raised (the reading function, in the thread)."""
        failure = None
        try:
            await self.db.read(broken_select)
        except DBAPIError:
            failure = traceback.format_exc()
        self.assertIsNotNone(failure)
        self.assertIn("broken_select", failure)
        self.assertIn("no_such_table", failure)

    async def test_raised_error_is_the_function_s(self) -> None:
        """An error of the function itself (not the database's) reaches the caller as
        raised, after the transaction was rolled back; the gateway then still works."""

        class Refused(Exception):
            pass

        def refuse(session: Session) -> None:
            session.execute(text("SELECT 1"))
            raise Refused("no")

        with self.assertRaises(Refused):
            await self.db.run(refuse)
        self.assertEqual(await self.db.run(lambda s: s.execute(text("SELECT 2")).scalar()), 2)

    async def test_never_blocks_the_caller(self) -> None:
        """A call returns its Deferred at once while its work waits in the thread, and
        the result comes in the reactor thread."""
        (pending,), release = self.blocked(1)
        self.assertNoResult(pending)
        seen: list[threading.Thread] = []
        pending.addCallback(lambda name: seen.append(threading.current_thread()) or name)
        release.set()
        self.assertIn(THREAD_NAME, await pending)
        self.assertEqual(seen, [threading.main_thread()])

    @only_on("sqlite")
    async def test_sqlite_one_thread_in_order(self) -> None:
        """SQLite: every piece of work runs in the one database thread, in the order it
        was given, and the answers come in that order."""
        order: list[int] = []
        answers: list[int] = []

        def work(session: Session, number: int) -> int:
            order.append(number)
            return number

        calls = [self.db.run(work, n).addCallback(answers.append) for n in range(30)]
        calls += [self.db.read(lambda reader, n: order.append(n) or n, 30 + n) for n in range(10)]
        await defer.gatherResults(calls)
        self.assertEqual(order, list(range(40)))
        self.assertEqual(answers, list(range(30)))
        self.assertEqual(len(started_threads(self.db.pool)), 1)

    @only_on("postgresql")
    async def test_postgresql_pool_concurrent(self) -> None:
        """PostgreSQL: as many transactions as the engine has connections run at the
        same time, each in its own thread (they all wait for each other), and no more
        threads than that are started."""
        count = engines.thread_count(self.db.engine)
        barrier = threading.Barrier(count, timeout=WAIT)

        def meet(session: Session) -> str:
            session.execute(text("SELECT 1"))
            barrier.wait()  # broken (an error) unless all ``count`` run together
            return threading.current_thread().name

        names = await defer.gatherResults([self.db.run(meet) for _ in range(count)])
        self.assertEqual(len(set(names)), count)
        more, release = self.blocked(count + 3)
        release.set()
        await defer.gatherResults(more)
        self.assertEqual(len(started_threads(self.db.pool)), count)

    async def test_read_then(self) -> None:
        """read(then=...): the read's result handed to ``then`` in the reactor thread,
        and a database error of the read reaching the caller without ``then``."""
        called: list[Any] = []
        dialect = await self.db.read(
            lambda reader: reader.dialect.name,
            then=lambda name, *extra: called.append(extra) or name,
            then_args=(1, 2),
        )
        self.assertEqual((dialect, called), (self.db.dialect_name, [(1, 2)]))
        with self.assertRaises(DBAPIError):
            await self.db.read(broken_select, then=called.append)
        self.assertEqual(called, [(1, 2)])

    async def test_close_stops_threads_and_refuses_work(self) -> None:
        """close() waits for the work given before it, stops every thread, and work
        given afterwards fails with GatewayClosed."""
        pending, release = self.blocked(3)
        threads = started_threads(self.db.pool)
        self.assertTrue(threads)
        closing = self.db.close()
        release.set()
        self.assertEqual(len(await defer.gatherResults(pending)), 3)
        await closing
        self.assertEqual([t for t in threads if t.is_alive()], [])
        with self.assertRaises(GatewayClosed):
            await self.db.read(lambda reader: None)


class DatabaseThreadsTests(TestCase):
    """DatabaseThreads alone (what the gateway relies on)."""

    def threads(self, count: int = 2) -> DatabaseThreads:
        threads = DatabaseThreads(reactor, count, "test-db-threads")
        self.addCleanup(threads.stop)
        return threads

    def test_at_least_one_thread(self) -> None:
        """A bound below one thread is refused, naming the argument."""
        with self.assertRaisesRegex(ValueError, "max_threads"):
            DatabaseThreads(reactor, 0, "none")

    def test_no_thread_before_work(self) -> None:
        """No thread is started before work comes."""
        self.assertEqual(self.threads().threads, [])

    async def test_stop_runs_queued_work_then_refuses(self) -> None:
        """stop() lets the thread finish the work queued before it, joins the threads,
        and work submitted after it fails with ThreadsStopped."""
        threads = self.threads(1)
        release = threading.Event()
        self.addCleanup(release.set)
        first = threads.submit(release.wait, WAIT)
        second = threads.submit(lambda: "second")
        started = threads.threads
        release.set()
        threads.stop()
        self.assertEqual([t.is_alive() for t in started], [False])
        self.assertEqual(await first, True)
        self.assertEqual(await second, "second")
        with self.assertRaises(ThreadsStopped):
            await threads.submit(lambda: None)

    async def test_drained(self) -> None:
        """drained() fires once every piece of work submitted was answered (at once
        when none is pending), after the work's own Deferred."""
        threads = self.threads()
        self.assertIsNone(await threads.drained())
        release = threading.Event()
        self.addCleanup(release.set)
        events: list[str] = []
        work = threads.submit(release.wait, WAIT).addCallback(lambda _: events.append("work"))
        drained = threads.drained().addCallback(lambda _: events.append("drained"))
        self.assertNoResult(drained)
        release.set()
        await work
        await drained
        self.assertEqual(events, ["work", "drained"])
        self.assertEqual(threads.pending, 0)

    async def test_base_exception_is_a_failure(self) -> None:
        """Even a BaseException of the work comes back as a failure; the thread lives on."""
        threads = self.threads(1)

        def interrupt() -> None:
            raise KeyboardInterrupt

        with self.assertRaises(KeyboardInterrupt):
            await threads.submit(interrupt)
        self.assertEqual(await threads.submit(lambda: 5), 5)
        self.assertEqual(len(started_threads(threads)), 1)

    async def test_then_in_the_reactor_thread(self) -> None:
        """submit_then: ``then`` gets the result and its own arguments in the reactor
        thread, and the Deferred fires with what it returns."""
        threads = self.threads()
        seen: list[Any] = []

        def then(result: str, suffix: str) -> str:
            seen.append(threading.current_thread())
            return result + suffix

        self.assertEqual(await threads.submit_then(then, ("!",), lambda: "done"), "done!")
        self.assertEqual(seen, [threading.main_thread()])

    async def test_then_errors(self) -> None:
        """submit_then: an error of ``then`` reaches the caller; an error of the work
        does too, and ``then`` is not called for it."""
        threads = self.threads()
        called: list[Any] = []

        def then(result: Any) -> None:
            called.append(result)
            raise ValueError("then refused")

        with self.assertRaisesRegex(ValueError, "then refused"):
            await threads.submit_then(then, (), lambda: 1)

        def work() -> None:
            raise LookupError("work refused")

        with self.assertRaisesRegex(LookupError, "work refused"):
            await threads.submit_then(then, (), work)
        self.assertEqual(called, [1])
        self.assertEqual(threads.pending, 0)
