"""Deferred helpers shared by the host, the triggers and the plugins.

- :func:`as_deferred`: call a plain function, a coroutine function or one returning a
  Deferred, and get a Deferred (what ``defer.maybeDeferred`` does, in one place);
- :class:`SingleFlight`: one operation per key at a time, later callers share its result;
- :class:`KeyedLock`: a ``DeferredLock`` per key.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Hashable
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure


def as_deferred(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> defer.Deferred[Any]:
    """Call ``fn`` (plain, coroutine function or Deferred-returning) -> Deferred."""
    try:
        result = fn(*args, **kwargs)
    except BaseException:
        return defer.fail()
    if isinstance(result, defer.Deferred):
        return result
    if inspect.iscoroutine(result):
        return defer.ensureDeferred(result)
    return defer.succeed(result)


class SingleFlight:
    """Run at most one operation per key; callers arriving meanwhile share its result.

    Each caller gets its own Deferred: cancelling it does not cancel the operation.
    """

    def __init__(self) -> None:
        self._waiters: dict[Hashable, list[defer.Deferred[Any]]] = {}

    def running(self, key: Hashable) -> bool:
        """True while an operation for ``key`` runs."""
        return key in self._waiters

    def run(self, key: Hashable, fn: Callable[..., Any], *args: Any) -> defer.Deferred[Any]:
        """Result of ``fn(*args)``, or of the operation already running for ``key``."""
        d: defer.Deferred[Any] = defer.Deferred()
        waiters = self._waiters.get(key)
        if waiters is not None:
            waiters.append(d)
            return d
        self._waiters[key] = [d]
        as_deferred(fn, *args).addBoth(self._done, key)
        return d

    def _done(self, result: Any, key: Hashable) -> None:
        for waiter in self._waiters.pop(key):
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)


class KeyedLock:
    """A ``DeferredLock`` per key, forgotten once nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, defer.DeferredLock] = {}

    def run(self, key: Hashable, fn: Callable[..., Any], *args: Any) -> defer.Deferred[Any]:
        """Run ``fn(*args)`` while holding the lock of ``key``."""
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = defer.DeferredLock()
        d = lock.run(as_deferred, fn, *args)
        d.addBoth(self._release, key, lock)
        return d

    def _release(self, result: Any, key: Hashable, lock: defer.DeferredLock) -> Any:
        if not lock.locked and not lock.waiting and self._locks.get(key) is lock:
            del self._locks[key]
        return result

    def __len__(self) -> int:
        return len(self._locks)
