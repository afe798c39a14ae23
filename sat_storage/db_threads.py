"""The database threads of a gateway: work in, one answer out, nothing else in between.

:class:`DatabaseThreads` runs synchronous functions in at most ``max`` threads of its
own and answers each with a Deferred fired in the reactor thread. It does what
``deferToThreadPool`` on a Twisted ``ThreadPool`` does for the gateway, with less on
the way (it is what a read of the database pays on top of the read, about as much as
a whole small SQLite read):

- a call is one ``put`` on a C queue (``queue.SimpleQueue``), taken by an idle
  thread, and one ``reactor.callFromThread`` with the result (a
  :class:`~twisted.python.failure.Failure`, traceback kept, when the function
  raised); no team coordinator, no per-call closures, no copy of Twisted's logging
  context (nothing run here logs through it: the package logs with ``logging``);
- the count of work not yet answered is kept here (in the reactor thread), so that
  the owner can wait for it to be drained (:meth:`drained`) with no callback of its
  own on every Deferred.

Threads are started when work comes and none is idle, up to ``max`` (one for
SQLite: its writes are serialised there; a pool for PostgreSQL, as many as the
engine's connections); work waits in the queue, taken in the order it came.
:meth:`stop` (once the owner refuses new work and the work is drained) ends and
joins every thread; work submitted after it fails with :class:`ThreadsStopped`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet import defer
from twisted.python.failure import Failure

__all__ = ["DatabaseThreads", "ThreadsStopped"]

T = TypeVar("T")
#: a job's Deferred, and what runs in the reactor thread before it fires (or None)
_Reply = tuple[defer.Deferred[Any], Callable[..., Any] | None, tuple[Any, ...]]
_Job = tuple[Callable[..., Any], tuple[Any, ...], _Reply]


class ThreadsStopped(RuntimeError):
    """Work was submitted to stopped database threads."""


class DatabaseThreads:
    """At most ``max`` threads named ``name-N`` running submitted work (see the
    module docstring); every method is called in the reactor thread."""

    def __init__(self, reactor: Any, max_threads: int, name: str) -> None:
        if max_threads < 1:
            raise ValueError(f"max_threads must be at least 1, got {max_threads!r}")
        self.reactor = reactor
        #: the most threads started (``ThreadPool.max``'s name)
        self.max = max_threads
        self.name = name
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        #: work submitted and not answered yet
        self.pending = 0
        self._drained: list[defer.Deferred[None]] = []
        self._stopped = False

    @property
    def threads(self) -> list[threading.Thread]:
        """The threads started (alive until :meth:`stop`)."""
        return list(self._threads)

    def submit(self, fn: Callable[..., T], *args: Any) -> defer.Deferred[T]:
        """``fn(*args)`` in one of the threads: a Deferred of its result or Failure."""
        return self._submit(fn, args, None, ())

    def submit_then(
        self,
        then: Callable[..., Any] | None,
        then_args: tuple[Any, ...],
        fn: Callable[..., Any],
        *args: Any,
    ) -> defer.Deferred[Any]:
        """``fn(*args)`` in one of the threads, then ``then(result, *then_args)`` in the
        reactor thread: a Deferred of what ``then`` returns (or of the Failure of
        either). The same as ``submit(fn, *args).addCallback(then, *then_args)``, one
        callback fewer on the way (for the hottest reads); ``then`` None: ``submit``."""
        return self._submit(fn, args, then, then_args)

    def _submit(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        then: Callable[..., Any] | None,
        then_args: tuple[Any, ...],
    ) -> defer.Deferred[Any]:
        if self._stopped:
            return defer.fail(ThreadsStopped(f"{self.name}: the database threads are stopped"))
        d: defer.Deferred[Any] = defer.Deferred()
        self.pending += 1
        started = len(self._threads)
        if self.pending > started and started < self.max:  # none idle: one more
            self._start()
        self._queue.put((fn, args, (d, then, then_args)))
        return d

    def _start(self) -> None:
        thread = threading.Thread(
            target=self._work, name=f"{self.name}-{len(self._threads) + 1}"
        )
        self._threads.append(thread)
        thread.start()

    def _work(self) -> None:
        """A thread's loop: take a job, run it, hand its outcome to the reactor."""
        take, answer, deliver = self._queue.get, self.reactor.callFromThread, self._deliver
        while True:
            job = take()
            if job is None:
                return
            fn, args, reply = job
            del job
            try:
                result: Any = fn(*args)
                ok = True
            except BaseException:
                result, ok = Failure(), False
            answer(deliver, reply, ok, result)
            del fn, args, reply, result  # nothing of the job kept while waiting for the next

    def _deliver(self, reply: _Reply, ok: bool, result: Any) -> None:
        """In the reactor thread: fire the job's Deferred (with ``then``'s value when
        it has one); then, nothing pending, the drain waiters."""
        self.pending -= 1
        d, then, then_args = reply
        if ok and then is not None:
            try:
                result = then(result, *then_args)
            except BaseException:
                result, ok = Failure(), False
        if ok:
            d.callback(result)
        else:
            d.errback(result)
        if not self.pending and self._drained:
            waiters, self._drained = self._drained, []
            for waiter in waiters:
                waiter.callback(None)

    def drained(self) -> defer.Deferred[None]:
        """A Deferred that fires once no submitted work is left unanswered."""
        if not self.pending:
            return defer.succeed(None)
        waiter: defer.Deferred[None] = defer.Deferred()
        self._drained.append(waiter)
        return waiter

    def stop(self) -> None:
        """Refuse new work; end every thread once the work queued before is done, and
        join them (blocking: the owner drains first, so that they are idle)."""
        self._stopped = True
        threads, self._threads = self._threads, []
        for _ in threads:
            self._queue.put(None)
        for thread in threads:
            thread.join()
