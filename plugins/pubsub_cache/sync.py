"""Synchronisation of a node: tasks (one per key, deadline, retries, progress) and paging.

Nothing here talks to the network or the database: the plugin gives a ``fetch``
callable (one items request, with an optional RSM dict) and a ``write`` callable (one
bulk write), and the clock (the reactor, or ``task.Clock`` in tests).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure
from twisted.words.xish import domish

from sat_storage.deferreds import as_deferred

log = logging.getLogger(__name__)

#: ``fetch(rsm_request)``: one items request -> (items, rsm response or None).
#: ``rsm_request`` is None or a dict with ``max`` and ``after`` or ``before``; the RSM
#: response is None when the service answered without ``<set/>``, else a dict with
#: ``first``, ``last``, ``index``, ``count``.
Fetch = Callable[[dict[str, Any] | None], Awaitable[tuple[list[domish.Element], Any]]]
Write = Callable[[list[domish.Element]], Awaitable[None]]


class SyncExpired(Exception):
    """The synchronisation ran past its deadline, or was cancelled."""


#: why :class:`SyncsClosed` is raised
CLOSED = "the pubsub cache is stopping"


class SyncsClosed(RuntimeError):
    """A synchronisation was asked for after the cache stopped."""


class RepeatedItemsError(Exception):
    """The service gave the same item twice while paging: it cannot be cached."""


@dataclass(eq=False)
class SyncTask:
    """One attempt at synchronising one node; what the sync and the events share."""

    key: Hashable
    attempt: int
    started: float
    #: attempts the manager makes in all (this one included)
    max_attempts: int = 1
    cached: int = 0
    total: int | None = None
    rsm: bool | None = None
    #: changes told by events during the sync, replayed in order once every page is
    #: written (so pages keep the service's order and events win over older pages)
    pending: list[Callable[[], Any]] = field(default_factory=list)
    #: pending changes replayed: events now go straight to the cache
    finished: bool = False
    #: the node was purged meanwhile: pages fetched earlier are stale, stop paging
    purged: bool = False
    #: the node was deleted (or the cache reset): stop, and touch nothing more
    dropped: bool = False
    #: stopped on purpose (no retry): a disconnection, the host stopping, a purge
    stopped: bool = False
    expired: bool = False
    _waiting: defer.Deferred[Any] | None = None

    @property
    def will_retry(self) -> bool:
        """True when another attempt follows this one once it has finished: it expired
        (deadline), was not stopped, and was not the last allowed."""
        return self.expired and not self.stopped and self.attempt < self.max_attempts

    def check(self) -> None:
        """Raise ``SyncExpired`` once the deadline has passed (or the task was stopped)."""
        if self.expired:
            raise SyncExpired(f"synchronisation of {self.key} expired (attempt {self.attempt})")

    async def guard(self, d: defer.Deferred[Any]) -> Any:
        """Await a network request, which is cancelled if the deadline passes meanwhile."""
        self.check()
        self._waiting = d
        try:
            return await d
        except defer.CancelledError:
            self.check()
            raise
        finally:
            self._waiting = None

    def expire(self) -> None:
        """Stop the task: the pending network request is cancelled, writes finish first."""
        self.expired = True
        if self._waiting is not None:
            self._waiting.cancel()

    def progress(self) -> dict[str, Any]:
        """Serialisable progress: ``cached``, ``total`` (None if unknown), ``attempt``..."""
        return {
            "cached": self.cached,
            "total": self.total,
            "attempt": self.attempt,
            "started": self.started,
            "rsm": self.rsm,
        }


@dataclass(eq=False)
class _Entry:
    run: Callable[[SyncTask], Any]
    task: SyncTask
    call: IDelayedCall | None
    waiters: list[defer.Deferred[Any]] = field(default_factory=list)


class SyncManager:
    """At most one synchronisation per key; deadline, retries and progress.

    ``run(task)`` performs one attempt and must handle its own errors (it returns the
    final state), except those of ``quiet``, which are handed to the callers. When
    the deadline passes, :meth:`SyncTask.expire` is called; once the attempt has
    finished, a new one starts, up to ``max_attempts``. :attr:`SyncTask.will_retry`
    tells an attempt whether one follows (it may then keep what the next one needs).
    """

    def __init__(
        self,
        clock: IReactorTime,
        deadline: float,
        max_attempts: int = 3,
        quiet: tuple[type[BaseException], ...] = (),
    ) -> None:
        if deadline <= 0:
            raise ValueError(f"sync deadline must be positive, got {deadline!r}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts!r}")
        self.clock = clock
        self.deadline = deadline
        self.max_attempts = max_attempts
        #: errors of ``run`` that are an answer, not a bug: logged without traceback
        self.quiet = quiet
        self._entries: dict[Hashable, _Entry] = {}
        #: set by :meth:`close`: no synchronisation starts any more
        self.closed = False

    def running(self, key: Hashable) -> bool:
        """True while a synchronisation of ``key`` runs (retries included)."""
        return key in self._entries

    def task(self, key: Hashable) -> SyncTask | None:
        """The current attempt for ``key``, if any."""
        entry = self._entries.get(key)
        return None if entry is None else entry.task

    def join(self, key: Hashable) -> defer.Deferred[Any] | None:
        """A Deferred firing with the result of the running synchronisation, or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        d: defer.Deferred[Any] = defer.Deferred()
        entry.waiters.append(d)
        return d

    def keys(self) -> list[Hashable]:
        """Keys being synchronised."""
        return list(self._entries)

    def start(self, key: Hashable, run: Callable[[SyncTask], Any]) -> defer.Deferred[Any]:
        """Start synchronising ``key`` with ``run``, or join the running synchronisation.

        The Deferred fires with the result of the last attempt; cancelling it does not
        stop the synchronisation (use :meth:`stop`). After :meth:`close`, it fails with
        :class:`SyncsClosed` and ``run`` is not called.
        """
        if self.closed:
            return defer.fail(SyncsClosed(f"synchronisation of {key} not started: {CLOSED}"))
        joined = self.join(key)
        if joined is not None:
            return joined
        d: defer.Deferred[Any] = defer.Deferred()
        first = SyncTask(key, 1, self.clock.seconds(), self.max_attempts)
        entry = self._entries[key] = _Entry(run, first, None)
        entry.waiters.append(d)
        self._launch(key, entry)
        return d

    def _launch(self, key: Hashable, entry: _Entry) -> None:
        entry.call = self.clock.callLater(self.deadline, self._expire, key, entry.task)
        as_deferred(entry.run, entry.task).addBoth(self._finished, key, entry)

    def _expire(self, key: Hashable, task: SyncTask) -> None:
        log.warning(
            "synchronisation of %s is still running after %ss (attempt %d): cancelling it",
            key,
            self.deadline,
            task.attempt,
        )
        task.expire()

    def _finished(self, result: Any, key: Hashable, entry: _Entry) -> None:
        task = entry.task
        if entry.call is not None and entry.call.active():
            entry.call.cancel()
        if task.will_retry:
            log.info("retrying the synchronisation of %s (attempt %d)", key, task.attempt + 1)
            entry.task = SyncTask(key, task.attempt + 1, self.clock.seconds(), self.max_attempts)
            self._launch(key, entry)
            return
        del self._entries[key]
        if isinstance(result, Failure):
            if result.check(*self.quiet):
                log.info("synchronisation of %s not done: %s", key, result.value)
            else:
                log.error("synchronisation of %s failed: %s", key, result.getTraceback())
        for waiter in entry.waiters:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)

    def stop(self, key: Hashable, dropped: bool = False) -> defer.Deferred[Any] | None:
        """Stop the synchronisation of ``key`` (no retry); Deferred firing when it ended.

        ``dropped``: the node is gone, the synchronisation must not write anything more.
        """
        entry = self._entries.get(key)
        if entry is None:
            return None
        entry.task.stopped = True
        entry.task.dropped = entry.task.dropped or dropped
        d = self.join(key)
        entry.task.expire()
        return d

    def close(self) -> defer.Deferred[Any]:
        """Stop every synchronisation and start none any more (the cache stops).

        A request that was on its way to :meth:`start` (e.g. awaiting the node's
        analysis) when the cache stopped must not claim the node afterwards: the
        storage is closed next, and the node would stay IN_PROGRESS until the next run.
        """
        self.closed = True
        return self.stop_all()

    def stop_all(self, dropped: bool = False) -> defer.Deferred[Any]:
        """Stop every synchronisation; fires once all have ended."""
        stopping = [self.stop(key, dropped) for key in self.keys()]
        return defer.gatherResults(
            [d.addErrback(lambda _: None) for d in stopping if d is not None]
        )


def _item_id(item: domish.Element) -> str | None:
    """Id of an ``<item/>`` element (None if missing or empty)."""
    return item.getAttribute("id") or None


class Pager:
    """Fetches every item of a node (up to ``limit``) and writes them page by page.

    With RSM the node is paged forward and each page written as it comes. When the
    service counts more items than ``limit``, the newest ``limit`` items are fetched
    backwards (``before``) and then written oldest first, so that the cache keeps the
    newest items in their order. A service answering without ``<set/>`` (no RSM) gives
    every item at once: the newest ``limit`` are kept.
    """

    def __init__(
        self,
        task: SyncTask,
        fetch: Fetch,
        write: Write,
        limit: int,
        page_size: int,
        label: str = "node",
    ) -> None:
        if limit < 1 or page_size < 1:
            raise ValueError(f"limit and page_size must be positive ({limit}, {page_size})")
        self.task = task
        self.fetch = fetch
        self.write = write
        self.limit = limit
        self.page_size = page_size
        self.label = label
        self.seen: set[str] = set()
        self.cursors: set[str] = set()

    async def _fetch(self, request: dict[str, Any] | None) -> tuple[list[domish.Element], Any]:
        items, rsm = await self.task.guard(as_deferred(self.fetch, request))
        return self._valid(items), rsm

    def _valid(self, items: list[domish.Element]) -> list[domish.Element]:
        """Items with an id (others are logged and left out)."""
        valid = []
        for item in items:
            if not isinstance(item, domish.Element) or _item_id(item) is None:
                log.warning("%s: ignoring an item without id: %s", self.label, _xml(item))
            else:
                valid.append(item)
        return valid

    def _check_new(self, items: list[domish.Element]) -> None:
        """Record the ids of a page; ``RepeatedItemsError`` if one was seen already."""
        for item in items:
            item_id = _item_id(item)
            assert item_id is not None
            if item_id in self.seen:
                raise RepeatedItemsError(
                    f"{self.label}: the service gave item {item_id!r} twice while paging"
                )
            self.seen.add(item_id)

    def _next_cursor(self, cursor: Any) -> str | None:
        """A cursor never used before (None ends paging); repeats are a service bug."""
        if not cursor:
            return None
        cursor = str(cursor)
        if cursor in self.cursors:
            raise RepeatedItemsError(f"{self.label}: the service gave cursor {cursor!r} twice")
        self.cursors.add(cursor)
        return cursor

    async def _write(self, items: list[domish.Element]) -> None:
        for start in range(0, len(items), self.page_size):
            self.task.check()
            if self.task.purged or self.task.dropped:
                return
            page = items[start : start + self.page_size]
            await self.write(page)
            self.task.cached += len(page)
            self._log_progress()

    def _log_progress(self) -> None:
        total = "?" if self.task.total is None else self.task.total
        log.info("%s: %d/%s items cached", self.label, self.task.cached, total)

    def _stop(self) -> bool:
        return self.task.purged or self.task.dropped

    async def run(self) -> None:
        """Fetch and write; raises ``RepeatedItemsError``, ``SyncExpired``, fetch errors."""
        items, rsm = await self._fetch({"max": self.page_size})
        if rsm is None:
            self.task.rsm = False
            await self._all_at_once(items)
            return
        self.task.rsm = True
        count = rsm.get("count")
        self.task.total = None if count is None else min(int(count), self.limit)
        if count is not None and int(count) > self.limit:
            await self._newest_backwards()
        else:
            await self._forward(items, rsm)

    async def _all_at_once(self, items: list[domish.Element]) -> None:
        unique: dict[str, domish.Element] = {}
        for item in items:
            item_id = _item_id(item)
            if item_id in unique:
                log.warning("%s: the service gave item %r twice", self.label, item_id)
                del unique[item_id]  # keep the position of the last copy
            unique[item_id] = item
        kept = list(unique.values())[-self.limit :]
        if len(unique) > self.limit:
            log.warning(
                "%s has %d items, over the cache limit: only the newest %d are cached",
                self.label,
                len(unique),
                self.limit,
            )
        self.task.total = len(kept)
        await self._write(kept)

    async def _forward(self, items: list[domish.Element], rsm: dict[str, Any]) -> None:
        while True:
            items = items[: self.limit - len(self.seen)]
            self._check_new(items)
            await self._write(items)
            if self._stop() or not items or len(self.seen) >= self.limit:
                return
            count, index = rsm.get("count"), rsm.get("index")
            if count is not None and index is not None and int(index) + len(items) >= int(count):
                return
            cursor = self._next_cursor(rsm.get("last"))
            if cursor is None:
                return
            items, rsm = await self._fetch({"max": self.page_size, "after": cursor})
            if rsm is None:  # the service stopped paging: take this page and end
                rsm = {}

    async def _newest_backwards(self) -> None:
        log.warning(
            "%s has more items than the cache limit (%d): only the newest are cached",
            self.label,
            self.limit,
        )
        pages: list[list[domish.Element]] = []
        request: dict[str, Any] = {"max": self.page_size, "before": ""}
        while len(self.seen) < self.limit and not self._stop():
            items, rsm = await self._fetch(request)
            if not items:
                break
            self._check_new(items)
            pages.append(items)
            if rsm is None or rsm.get("index") in (0, "0"):
                break
            cursor = self._next_cursor(rsm.get("first"))
            if cursor is None:
                break
            request = {"max": self.page_size, "before": cursor}
        newest = [item for page in reversed(pages) for item in page][-self.limit :]
        await self._write(newest)


def _xml(element: Any) -> str:
    """Short XML (or repr) of an element, for logs."""
    try:
        text = element.toXml() if isinstance(element, domish.Element) else repr(element)
    except Exception:  # noqa: BLE001 - only for a log line
        text = repr(element)
    return text if len(text) <= 300 else text[:297] + "..."
