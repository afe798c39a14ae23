"""Synchronisation tasks and paging, without network or database (pure logic).

``PagedService`` is an in-memory stand-in that answers items requests the way
XEP-0059 says (or, with ``rsm=False``, the way Prosody does: everything, no
``<set/>``); the real servers are exercised by the end-to-end tests.
"""

from __future__ import annotations

from typing import Any

from sat_storage.plugins.pubsub_cache.sync import (
    Pager,
    RepeatedItemsError,
    SyncExpired,
    SyncManager,
    SyncsClosed,
    SyncTask,
)
from twisted.internet import defer, task
from twisted.trial.unittest import TestCase
from twisted.words.xish import domish

from twisted_tests.pubsub_cache.helpers import atom_item


class PagedService:
    """Items ``item-000``… answered with RSM pages (cursors are opaque strings)."""

    def __init__(self, count: int, rsm: bool = True, ignore_after: bool = False) -> None:
        self.items = [atom_item(f"item-{i:03d}") for i in range(count)]
        self.rsm = rsm
        self.ignore_after = ignore_after
        self.requests: list[dict[str, Any] | None] = []

    def _position(self, cursor: str) -> int:
        return [f"c-{item['id']}" for item in self.items].index(cursor)

    def fetch(self, request: dict[str, Any] | None) -> tuple[list[domish.Element], Any]:
        self.requests.append(request)
        if not self.rsm or request is None:
            return list(self.items), None
        size = request["max"]
        if "after" in request and not self.ignore_after:
            start = self._position(request["after"]) + 1
        elif "before" in request:
            end = len(self.items) if request["before"] == "" else self._position(request["before"])
            start = max(0, end - size)
            size = min(size, end - start)
        else:
            start = 0
        page = self.items[start : start + size]
        rsm = {"first": None, "last": None, "index": None, "count": len(self.items)}
        if page:
            rsm.update(first=f"c-{page[0]['id']}", last=f"c-{page[-1]['id']}", index=start)
        return page, rsm


def ids(items: list[domish.Element]) -> list[str]:
    return [item["id"] for item in items]


class PagerTests(TestCase):
    def setUp(self) -> None:
        self.task = SyncTask("key", 1, 0.0)
        self.written: list[list[str]] = []

    async def write(self, items: list[domish.Element]) -> None:
        self.written.append(ids(items))

    def pager(self, service: PagedService, limit: int = 1000, page_size: int = 10) -> Pager:
        return Pager(self.task, service.fetch, self.write, limit, page_size, "test node")

    def all_written(self) -> list[str]:
        return [item_id for page in self.written for item_id in page]

    async def test_rsm_forward_pages(self) -> None:
        """With RSM every page is fetched forward and written as it comes."""
        service = PagedService(25)
        await self.pager(service).run()
        self.assertEqual(self.written, [ids(service.items[i : i + 10]) for i in (0, 10, 20)])
        self.assertEqual(len(service.requests), 3)
        self.assertEqual(service.requests[1], {"max": 10, "after": "c-item-009"})
        self.assertEqual((self.task.cached, self.task.total, self.task.rsm), (25, 25, True))

    async def test_rsm_over_limit_keeps_newest(self) -> None:
        """Over the limit, the newest items are fetched backwards and written oldest first."""
        service = PagedService(250)
        await self.pager(service, limit=35).run()
        self.assertEqual(self.all_written(), ids(service.items[-35:]))
        self.assertEqual(service.requests[1], {"max": 10, "before": ""})
        self.assertEqual(self.task.total, 35)

    async def test_no_rsm_all_at_once(self) -> None:
        """Without ``<set/>`` the single answer is taken whole, written page by page."""
        service = PagedService(25, rsm=False)
        await self.pager(service).run()
        self.assertEqual(len(service.requests), 1)
        self.assertEqual(self.all_written(), ids(service.items))
        self.assertEqual(len(self.written), 3)
        self.assertIs(self.task.rsm, False)

    async def test_no_rsm_keeps_newest(self) -> None:
        """Without RSM, only the newest items up to the limit are kept."""
        service = PagedService(250, rsm=False)
        await self.pager(service, limit=100).run()
        self.assertEqual(self.all_written(), ids(service.items[-100:]))

    async def test_no_rsm_duplicates_dropped(self) -> None:
        """An id given twice in one answer is kept once, at its last position."""
        service = PagedService(3, rsm=False)
        service.items.append(atom_item("item-000"))
        await self.pager(service).run()
        self.assertEqual(self.all_written(), ["item-001", "item-002", "item-000"])

    async def test_repeating_service(self) -> None:
        """A service giving the same page again (ignoring ``after``) is detected."""
        service = PagedService(25, ignore_after=True)
        with self.assertRaises(RepeatedItemsError):
            await self.pager(service).run()
        self.assertEqual(len(service.requests), 2)

    async def test_items_without_id_skipped(self) -> None:
        """Items without id are left out, the others cached."""
        service = PagedService(3, rsm=False)
        service.items.insert(1, atom_item(None))
        await self.pager(service).run()
        self.assertEqual(self.all_written(), ["item-000", "item-001", "item-002"])

    async def test_purge_stops_paging(self) -> None:
        """Once the node is purged (by an event), no further page is written."""
        service = PagedService(25)

        async def write(items: list[domish.Element]) -> None:
            self.written.append(ids(items))
            self.task.purged = True

        await Pager(self.task, service.fetch, write, 1000, 10).run()
        self.assertEqual(len(self.written), 1)
        self.assertEqual(len(service.requests), 1)

    async def test_expire_cancels_request(self) -> None:
        """Expiring the task cancels the pending request and raises SyncExpired."""
        pending: defer.Deferred[Any] = defer.Deferred()
        pager = Pager(self.task, lambda request: pending, self.write, 1000, 10)
        d = defer.ensureDeferred(pager.run())
        self.task.expire()
        self.failureResultOf(d, SyncExpired)
        self.assertTrue(pending.called)  # cancelled (its CancelledError went to the pager)


class SyncManagerTests(TestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.manager = SyncManager(self.clock, deadline=60, max_attempts=2)
        self.runs: list[SyncTask] = []
        self.answers: list[defer.Deferred[Any]] = []

    async def attempt(self, sync_task: SyncTask) -> str:
        """One attempt: waits for a 'network' answer; 'expired' when cut by the deadline."""
        self.runs.append(sync_task)
        answer: defer.Deferred[Any] = defer.Deferred()
        self.answers.append(answer)
        try:
            return await sync_task.guard(answer)
        except SyncExpired:
            return "expired"

    def test_one_sync_per_key(self) -> None:
        """A second start for a running key joins it: one run, same result for both."""
        first = self.manager.start("k", self.attempt)
        second = self.manager.start("k", self.attempt)
        self.assertEqual(len(self.runs), 1)
        self.answers[0].callback("done")
        self.assertEqual(self.successResultOf(first), "done")
        self.assertEqual(self.successResultOf(second), "done")
        self.assertFalse(self.manager.running("k"))

    def test_deadline_retries(self) -> None:
        """Past the deadline the attempt is cancelled and a new one starts."""
        d = self.manager.start("k", self.attempt)
        self.clock.advance(59)
        self.assertEqual(len(self.runs), 1)
        self.clock.advance(1)
        self.assertTrue(self.answers[0].called)  # cancelled
        self.assertEqual([t.attempt for t in self.runs], [1, 2])
        self.answers[1].callback("done")
        self.assertEqual(self.successResultOf(d), "done")

    def test_attempts_are_bounded(self) -> None:
        """After ``max_attempts`` expired attempts, the last result is final."""
        d = self.manager.start("k", self.attempt)
        self.clock.advance(60)
        self.clock.advance(60)
        self.assertEqual(self.successResultOf(d), "expired")
        self.assertEqual(len(self.runs), 2)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_attempt_told_of_retry(self) -> None:
        """An expired attempt knows whether another follows: not after the last one."""
        self.manager.start("k", self.attempt)
        self.clock.advance(60)
        self.clock.advance(60)
        self.assertEqual([t.will_retry for t in self.runs], [True, False])

    def test_stopped_attempt_not_retried(self) -> None:
        """A stopped attempt knows that none follows."""
        self.manager.start("k", self.attempt)
        self.manager.stop("k")
        self.assertEqual((self.runs[0].expired, self.runs[0].will_retry), (True, False))

    def test_deadline_cleared_when_done(self) -> None:
        """A finished synchronisation leaves no delayed call behind."""
        d = self.manager.start("k", self.attempt)
        self.answers[0].callback("done")
        self.successResultOf(d)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop_without_retry(self) -> None:
        """stop() ends the synchronisation without retrying it."""
        d = self.manager.start("k", self.attempt)
        stopped = self.manager.stop("k", dropped=True)
        self.assertEqual(self.successResultOf(stopped), "expired")
        self.assertEqual(self.successResultOf(d), "expired")
        self.assertTrue(self.runs[0].dropped and self.runs[0].stopped)
        self.assertEqual(len(self.runs), 1)

    def test_closed_starts_nothing(self) -> None:
        """After close(), the running synchronisation is stopped and a new start fails
        with SyncsClosed without running anything (the cache is stopping)."""
        running = self.manager.start("k", self.attempt)
        closing = self.manager.close()
        self.assertEqual(self.successResultOf(running), "expired")
        self.successResultOf(closing)
        late = self.manager.start("late", self.attempt)
        self.assertIsInstance(self.failureResultOf(late, SyncsClosed).value, SyncsClosed)
        self.assertEqual(len(self.runs), 1)
        self.assertFalse(self.manager.running("late"))

    def test_progress(self) -> None:
        """The running task tells its progress."""
        self.clock.advance(5)
        self.manager.start("k", self.attempt)
        sync_task = self.manager.task("k")
        sync_task.cached, sync_task.total = 20, 250
        self.assertEqual(
            sync_task.progress(),
            {"cached": 20, "total": 250, "attempt": 1, "started": 5.0, "rsm": None},
        )
        self.answers[0].callback("done")
        self.assertIsNone(self.manager.task("k"))

    def test_bad_settings(self) -> None:
        """A non-positive deadline or attempt count is refused."""
        with self.assertRaisesRegex(ValueError, "deadline"):
            SyncManager(self.clock, deadline=0)
        with self.assertRaisesRegex(ValueError, "max_attempts"):
            SyncManager(self.clock, deadline=1, max_attempts=0)
