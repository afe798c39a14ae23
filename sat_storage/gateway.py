"""The thread boundary: one gateway owns the engine and the database threads.

Callers hand over a synchronous function that receives a SQLAlchemy ``Session``;
the gateway runs it in its own database threads
(:class:`~sat_storage.db_threads.DatabaseThreads`) inside one transaction (commit
on return, rollback on raise) and returns a Deferred with its result. Hot read-only
work (the newest or oldest page of ``get_items``, a search asked again) may instead
go through :meth:`Gateway.read`: the function receives a
:class:`~sat_storage.driver_sql.Reader` on a pooled driver connection, no Session;
the hot write (``cache_pubsub_items``) through :meth:`Gateway.write`, a
:class:`~sat_storage.driver_write.Writer` likewise.
Nothing else in the package touches threads or opens sessions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from twisted.internet import defer

from sat_storage import engines
from sat_storage.db_threads import DatabaseThreads
from sat_storage.driver_sql import Reader
from sat_storage.driver_write import Writer
from sat_storage.wal_changes import WalChanges

log = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT_ATTEMPTS = 3
RETRY_DELAY = 0.05
THREAD_NAME = "sat_storage-db"
_PENDING = object()


def _retrying(attempt: Callable[..., T], *args: Any) -> T:
    """``attempt(*args)``, again after a transient error, at most ``TRANSIENT_ATTEMPTS``
    times in all; every other error is passed on at once."""
    for number in range(1, TRANSIENT_ATTEMPTS + 1):
        try:
            return attempt(*args)
        except Exception as e:
            if number == TRANSIENT_ATTEMPTS or not engines.is_transient(e):
                raise
            log.warning("transient database error (attempt %d): %s", number, e)
            time.sleep(RETRY_DELAY * number)
    raise AssertionError("unreachable")


def _close_writer(writer: Writer, driver: Any) -> None:
    """Close ``writer``'s cursor and roll back whatever was not committed (nothing
    after a commit). A connection that fails here is to be dropped by the pool;
    the error is not raised (it would hide the one of the transaction, if any)."""
    try:
        writer.cursor.close()
        driver.rollback()
    except writer.dialect.loaded_dbapi.Error:
        writer.invalidated = True


def _sqlite_transaction(
    writer: Writer, driver: Any, fn: Callable[..., T], args: tuple[Any, ...]
) -> T:
    """``fn(writer, *args)`` between ``BEGIN IMMEDIATE`` (the write lock at once) and
    ``COMMIT``."""
    writer.execute("BEGIN IMMEDIATE")
    result = fn(writer, *args)
    writer.execute("COMMIT")
    return result


def _postgresql_transaction(
    writer: Writer, driver: Any, fn: Callable[..., T], args: tuple[Any, ...]
) -> T:
    """``fn(writer, *args)`` between ``BEGIN`` and ``COMMIT`` sent as statements on an
    autocommit connection in pipeline mode (see :meth:`Gateway.write`)."""
    driver.autocommit = True
    with driver.pipeline():
        writer.cursor.execute("BEGIN")
        result = fn(writer, *args)
        writer.cursor.execute("COMMIT")
    return result


class _Lost(Exception):
    """A read found its (unpinged) connection lost: to be run again at once."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _again_if_lost(
    what: str, once: Callable[..., T], fn: Callable[..., Any], args: tuple[Any, ...]
) -> T:
    """``once(fn, args, pinged=False)``; when it found its unpinged connection lost,
    at once again on a pinged one (``what``: "read" or "write", for the log)."""
    try:
        return once(fn, args, pinged=False)
    except _Lost as lost:
        log.info("lost database connection on a %s, %s again: %s", what, what, lost.error)
        return once(fn, args, pinged=True)


class GatewayClosed(RuntimeError):
    """The storage was closed (or never initialised): no more database work."""


class Gateway:
    """Runs transactions in its own database threads and returns Deferreds.

    The threads (:attr:`pool`, a :class:`~sat_storage.db_threads.DatabaseThreads`)
    are stopped by :meth:`close`, or before the reactor shuts down (pending work is
    drained first, so its Deferreds still fire in the running reactor).
    """

    def __init__(self, engine: Engine, reactor: Any = None) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.engine = engine
        self.reactor = reactor
        self.dialect_name = engine.dialect.name
        self.pool = DatabaseThreads(reactor, engines.thread_count(engine), THREAD_NAME)
        self._closed = False
        self._close_waiters: list[defer.Deferred[None]] = []
        self._close_outcome: object = _PENDING
        #: a SQLite file's commits, told without a query (:meth:`watch_changes`)
        self.changes: WalChanges | None = None
        #: a SQLite file: :meth:`read` keeps a connection of the pool (and a reader on
        #: its cursor)
        self._sqlite_file = engines.is_sqlite(engine) and bool(engines.sqlite_path(engine.url))
        self._read_connection: tuple[Any, Any, Reader] | None = None
        self._shutdown_trigger: Any = reactor.addSystemEventTrigger(
            "before", "shutdown", self._on_shutdown
        )

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (no new work is accepted)."""
        return self._closed

    def _defer(self, work: Callable[..., T], *args: Any) -> defer.Deferred[T]:
        if self._closed:
            return defer.fail(GatewayClosed("the storage is closed"))
        return self.pool.submit(work, *args)

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> defer.Deferred[T]:
        """Run ``fn(session, *args, **kwargs)`` in one transaction, in a DB thread.

        Commit when it returns, roll back when it raises. Transient errors (locked
        SQLite file, PostgreSQL serialisation failure or deadlock, lost connection)
        roll back and retry the whole function, at most ``TRANSIENT_ATTEMPTS`` times
        in all; every other error is passed on at once.
        """

        def attempt() -> T:
            session = Session(self.engine, expire_on_commit=False, autoflush=False)
            try:
                with session.begin():
                    return fn(session, *args, **kwargs)
            finally:
                session.close()

        return self._defer(_retrying, attempt)

    def read(
        self,
        fn: Callable[..., T],
        *args: Any,
        then: Callable[..., Any] | None = None,
        then_args: tuple[Any, ...] = (),
    ) -> defer.Deferred[Any]:
        """Run ``fn(reader, *args)`` in a DB thread: read-only work on the driver alone.

        ``reader`` is a :class:`~sat_storage.driver_sql.Reader` on a pooled
        connection: no ``Session``, no SQLAlchemy execution per statement. SQLite: its
        statements see one snapshot (a deferred ``BEGIN``, rolled back: no write lock
        is taken, where :meth:`run` takes it at once). PostgreSQL: autocommit, no
        BEGIN/COMMIT round trips; each statement sees its own snapshot, as it does in
        a READ COMMITTED transaction; the connection is not pinged when checked out
        (:func:`~sat_storage.engines.checkout_unpinged`, one round trip saved): when
        it is found lost, it is dropped and ``fn`` runs again at once on a connection
        checked out as every other checkout is (pinged unless new: a failed ping
        drops the pool's connections older than it, as after a server restart).
        ``fn`` must not write (it may run twice). Transient errors are retried as
        by :meth:`run`.

        ``then`` (the read cache's misses): called in the reactor thread as
        ``then(result, *then_args)``, the Deferred firing with what it returns, as
        ``read(fn, *args).addCallback(then, *then_args)`` would, one callback fewer.
        """
        if self._closed:
            return defer.fail(GatewayClosed("the storage is closed"))
        return self.pool.submit_then(then, then_args, _retrying, self._read_attempt, fn, args)

    def _read_attempt(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        """One attempt of :meth:`read` (in the database thread)."""
        return _again_if_lost("read", self._read_once, fn, args)

    def _read_once(self, fn: Callable[..., T], args: tuple[Any, ...], pinged: bool) -> T:
        """``fn(reader, *args)`` once (see :meth:`read`), the connection checked out
        with the ping if ``pinged``. A lost connection is dropped; not ``pinged``,
        :class:`_Lost` is raised for it."""
        if self._sqlite_file:
            return self._read_sqlite(fn, args)
        sqlite = self.dialect_name == "sqlite"
        if pinged or sqlite:  # (SQLite has no ping)
            pooled = self.engine.raw_connection()
        else:
            pooled = engines.checkout_unpinged(self.engine)
        driver: Any = pooled.driver_connection
        reader = Reader(driver.cursor(), self.engine)
        try:
            try:
                if sqlite:
                    reader.cursor.execute("BEGIN")
                else:
                    driver.autocommit = True
                return fn(reader, *args)
            finally:
                reader.cursor.close()
                if sqlite:
                    driver.rollback()
                elif not driver.closed:  # (psycopg: closed once found lost)
                    driver.autocommit = False
        except Exception as e:
            if reader.invalidated or self._lost(driver, e):
                pooled.invalidate(e)
                if not pinged:
                    raise _Lost(e) from e
            raise
        finally:
            pooled.close()

    def _read_sqlite(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        """``fn(reader, *args)`` on the SQLite file's read connection: one of the pool's,
        checked out by the first read and kept (only the one database thread uses it),
        with its driver connection and a :class:`~sat_storage.driver_sql.Reader` on its
        cursor; its statements in a deferred ``BEGIN``, rolled back."""
        held = self._read_connection
        if held is None:
            pooled = self.engine.raw_connection()
            driver = pooled.driver_connection
            held = self._read_connection = (pooled, driver, Reader(driver.cursor(), self.engine))
        pooled, driver, reader = held
        try:
            if driver.in_transaction:  # (a failed rollback, if ever)
                driver.rollback()
            reader.cursor.execute("BEGIN")
            try:
                return fn(reader, *args)
            finally:
                driver.rollback()
        except Exception as e:
            if reader.invalidated or self._lost(driver, e):
                self._read_connection = None
                pooled.invalidate(e)
                pooled.close()
            raise

    def _lost(self, driver: Any, error: Exception) -> bool:
        """True when ``error`` (raw from the driver or wrapped by SQLAlchemy) is
        ``driver``'s connection lost."""
        orig = error.orig if isinstance(error, DBAPIError) else error
        dialect = self.engine.dialect
        return isinstance(orig, dialect.loaded_dbapi.Error) and engines.is_lost_connection(
            dialect, orig, driver
        )

    def write(self, fn: Callable[..., T], *args: Any) -> defer.Deferred[T]:
        """Run ``fn(writer, *args)`` in one transaction, in a DB thread, without a Session.

        ``writer`` is a :class:`~sat_storage.driver_write.Writer` on a pooled driver
        connection. SQLite: ``BEGIN IMMEDIATE`` (the write lock at once, as :meth:`run`
        takes it). PostgreSQL: psycopg's pipeline mode with the transaction's ``BEGIN``
        and ``COMMIT`` sent as statements, so that they and the statements whose
        results ``fn`` does not read travel together with the next one it reads, or
        with the commit: a write reading nothing is one round trip, one reading one
        result two. The connection is checked out without the ping; a write that finds
        it lost drops it and runs again at once on a pinged one (as :meth:`read`).
        Commit when ``fn`` returns, roll back when it raises; transient errors are
        retried as by :meth:`run`.
        """
        return self._defer(_retrying, self._write_attempt, fn, args)

    def _write_attempt(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        """One attempt of :meth:`write` (in the database thread); SQLite has no
        connection to lose (nor a ping)."""
        if self.dialect_name == "sqlite":
            return self._write_once(fn, args, pinged=True)
        return _again_if_lost("write", self._write_once, fn, args)

    def _write_once(self, fn: Callable[..., T], args: tuple[Any, ...], pinged: bool) -> T:
        """``fn(writer, *args)`` once in the engine's transaction (:func:`_sqlite_transaction`,
        :func:`_postgresql_transaction`), the connection checked out with the ping if
        ``pinged``. A lost connection is dropped; not ``pinged``, :class:`_Lost` is
        raised for it. Driver errors reach the caller wrapped as SQLAlchemy's."""
        sqlite = self.dialect_name == "sqlite"
        pooled = self.engine.raw_connection() if pinged else engines.checkout_unpinged(self.engine)
        driver: Any = pooled.driver_connection
        writer = Writer(driver.cursor(), self.engine)
        transaction = _sqlite_transaction if sqlite else _postgresql_transaction
        error: Exception | None = None
        try:
            return transaction(writer, driver, fn, args)
        except self.engine.dialect.loaded_dbapi.Error as e:
            error = writer.wrapped(e, None, None)
            if writer.invalidated and not pinged:
                raise _Lost(error) from e
            raise error from e
        except Exception as e:
            error = e
            if not pinged and (writer.invalidated or self._lost(driver, e)):
                writer.invalidated = True
                raise _Lost(e) from e
            raise
        finally:
            _close_writer(writer, driver)  # rolls back a transaction left open
            if writer.invalidated:
                pooled.invalidate(error)
            elif not sqlite and not driver.closed:
                driver.autocommit = False
            pooled.close()

    def run_with_connection(
        self, fn: Callable[..., T], *args: Any, **kwargs: Any
    ) -> defer.Deferred[T]:
        """Run ``fn(connection, *args, **kwargs)`` in a DB thread; ``fn`` owns transactions."""

        def work() -> T:
            with self.engine.connect() as connection:
                return fn(connection, *args, **kwargs)

        return self._defer(work)

    def watch_changes(self) -> defer.Deferred[None]:
        """Start :attr:`changes` (a Deferred): a SQLite file in WAL mode, named by a
        plain path, gets a :class:`~sat_storage.wal_changes.WalChanges` (opened in a
        database thread), kept until :meth:`close`; other databases get None."""
        url = self.engine.url
        path = engines.sqlite_path(url) if engines.is_sqlite(url) else None
        if path is None or "uri" in url.query or self.changes is not None:
            return defer.succeed(None)

        def watching(changes: WalChanges | None) -> None:
            if self._closed:  # closed meanwhile
                if changes is not None:
                    changes.close()
            else:
                self.changes = changes

        return self._defer(WalChanges.open, str(path)).addCallback(watching)

    def close(self) -> defer.Deferred[None]:
        """Refuse new work, wait for pending work, stop the threads, dispose the engine.

        Every call (also one made while closing) returns a Deferred that fires once all
        of that is done.
        """
        waiter: defer.Deferred[None] = defer.Deferred()
        self._close_waiters.append(waiter)
        if not self._closed:
            self._closed = True
            defer.ensureDeferred(self._close()).addBoth(self._close_finished)
        elif self._close_outcome is not _PENDING:
            self._close_finished(self._close_outcome)
        return waiter

    def _close_finished(self, outcome: object) -> None:
        self._close_outcome = outcome
        waiters, self._close_waiters = self._close_waiters, []
        for waiter in waiters:
            waiter.callback(outcome)

    async def _close(self) -> None:
        await self.pool.drained()
        if self._shutdown_trigger is not None:
            try:
                self.reactor.removeSystemEventTrigger(self._shutdown_trigger)
            except (ValueError, KeyError):
                pass  # already fired: we are closing because the reactor shuts down
            self._shutdown_trigger = None
        if self.changes is not None:
            self.changes.close()
            self.changes = None
        self.pool.stop()
        if self._read_connection is not None:  # (the threads are stopped: nothing uses it)
            pooled, _driver, reader = self._read_connection
            self._read_connection = None
            reader.cursor.close()
            pooled.close()
        self.engine.dispose()

    def _on_shutdown(self) -> defer.Deferred[None]:
        self._shutdown_trigger = None
        return self.close()

    def keep_open_at_shutdown(self) -> None:
        """Do not close by itself when the reactor shuts down: the owner closes it.

        The reactor runs every ``before shutdown`` trigger at once; an owner whose own
        shutdown work still uses the gateway (a host recording its synchronisations'
        end) would otherwise find it closed under that work.
        """
        if self._shutdown_trigger is not None:
            self.reactor.removeSystemEventTrigger(self._shutdown_trigger)
            self._shutdown_trigger = None
