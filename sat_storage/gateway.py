"""The thread boundary: one gateway owns the engine and the database threads.

Callers hand over a synchronous function that receives a SQLAlchemy ``Session``;
the gateway runs it in its own Twisted thread pool inside one transaction (commit
on return, rollback on raise) and returns a Deferred with its result. Nothing else
in the package touches threads or opens sessions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from twisted.internet import defer, threads
from twisted.python.threadpool import ThreadPool

from sat_storage import engines

log = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT_ATTEMPTS = 3
RETRY_DELAY = 0.05


class GatewayClosed(RuntimeError):
    """The storage was closed (or never initialised): no more database work."""


class Gateway:
    """Runs transactions in a dedicated thread pool and returns Deferreds."""

    def __init__(self, engine: Engine, reactor: Any = None) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.engine = engine
        self.reactor = reactor
        self.dialect_name = engine.dialect.name
        self.pool = ThreadPool(
            minthreads=0, maxthreads=engines.thread_count(engine), name="sat_storage-db"
        )
        self._pending: set[defer.Deferred[Any]] = set()
        self._shutdown_trigger: Any = None
        self._closed = False
        self.pool.start()
        self._shutdown_trigger = reactor.addSystemEventTrigger(
            "during", "shutdown", self._stop_pool
        )

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def _defer(self, work: Callable[[], T]) -> defer.Deferred[T]:
        if self._closed:
            return defer.fail(GatewayClosed("the storage is closed"))
        d = threads.deferToThreadPool(self.reactor, self.pool, work)
        self._pending.add(d)

        def forget(result: object) -> object:
            self._pending.discard(d)
            return result

        d.addBoth(forget)
        return d

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> defer.Deferred[T]:
        """Run ``fn(session, *args, **kwargs)`` in one transaction, in a DB thread.

        Commit when it returns, roll back when it raises. Transient errors (locked
        SQLite file, PostgreSQL serialisation failure or deadlock) roll back and
        retry the whole function a few times; every other error is passed on.
        """

        def transaction() -> T:
            for attempt in range(1, TRANSIENT_ATTEMPTS + 1):
                session = Session(self.engine, expire_on_commit=False, autoflush=False)
                try:
                    with session.begin():
                        return fn(session, *args, **kwargs)
                except Exception as e:
                    if attempt == TRANSIENT_ATTEMPTS or not engines.is_transient(e):
                        raise
                    log.warning("transient database error (attempt %d): %s", attempt, e)
                    time.sleep(RETRY_DELAY * attempt)
                finally:
                    session.close()
            raise AssertionError("unreachable")

        return self._defer(transaction)

    def run_with_connection(
        self, fn: Callable[..., T], *args: Any, **kwargs: Any
    ) -> defer.Deferred[T]:
        """Run ``fn(connection, *args, **kwargs)`` in a DB thread; ``fn`` owns transactions."""

        def work() -> T:
            with self.engine.connect() as connection:
                return fn(connection, *args, **kwargs)

        return self._defer(work)

    def run_sync(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` on a connection in the calling thread (tools and scripts only)."""
        with self.engine.connect() as connection:
            return fn(connection)

    def _stop_pool(self) -> None:
        if self.pool.started:
            self.pool.stop()

    @defer.inlineCallbacks
    def close(self) -> Any:
        """Refuse new work, wait for pending work, stop the threads, dispose the engine."""
        if self._closed:
            return
        self._closed = True
        while self._pending:
            yield defer.DeferredList(list(self._pending), consumeErrors=True)
        if self._shutdown_trigger is not None:
            try:
                self.reactor.removeSystemEventTrigger(self._shutdown_trigger)
            except (ValueError, KeyError):
                pass
            self._shutdown_trigger = None
        self._stop_pool()
        self.engine.dispose()
