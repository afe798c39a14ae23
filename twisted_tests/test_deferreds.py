"""One operation per key: SingleFlight and KeyedLock (pure logic)."""

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from sat_storage.deferreds import KeyedLock, SingleFlight, as_deferred


class AsDeferredTests(TestCase):
    def test_kinds(self) -> None:
        """Plain results, coroutines, Deferreds and exceptions all become Deferreds."""

        async def coro() -> int:
            return 2

        def boom() -> None:
            raise KeyError("x")

        self.assertEqual(self.successResultOf(as_deferred(lambda: 1)), 1)
        self.assertEqual(self.successResultOf(as_deferred(coro)), 2)
        self.assertEqual(self.successResultOf(as_deferred(defer.succeed, 3)), 3)
        self.failureResultOf(as_deferred(boom), KeyError)


class SingleFlightTests(TestCase):
    def setUp(self) -> None:
        self.flight = SingleFlight()
        self.calls = 0
        self.pending: defer.Deferred[str] = defer.Deferred()

    def operation(self) -> defer.Deferred[str]:
        self.calls += 1
        return self.pending

    def test_callers_share_one_run(self) -> None:
        """Concurrent callers for one key run the operation once and all get its result."""
        waiters = [self.flight.run("k", self.operation) for _ in range(50)]
        self.assertTrue(self.flight.running("k"))
        self.pending.callback("done")
        self.assertEqual([self.successResultOf(d) for d in waiters], ["done"] * 50)
        self.assertEqual(self.calls, 1)
        self.assertFalse(self.flight.running("k"))

    def test_failure_reaches_every_caller(self) -> None:
        """A failing operation fails every waiting caller."""
        waiters = [self.flight.run("k", self.operation) for _ in range(3)]
        self.pending.errback(ValueError("bad"))
        for d in waiters:
            self.failureResultOf(d, ValueError)

    def test_cancel_one_caller(self) -> None:
        """Cancelling one caller leaves the operation and the other callers alone."""
        first = self.flight.run("k", self.operation)
        second = self.flight.run("k", self.operation)
        first.cancel()
        self.failureResultOf(first, defer.CancelledError)
        self.pending.callback("done")
        self.assertEqual(self.successResultOf(second), "done")

    def test_new_run_after_end(self) -> None:
        """Once finished, the next call for the key runs the operation again."""
        self.pending = defer.succeed("one")
        self.successResultOf(self.flight.run("k", self.operation))
        self.pending = defer.succeed("two")
        self.assertEqual(self.successResultOf(self.flight.run("k", self.operation)), "two")
        self.assertEqual(self.calls, 2)

    def test_keys_are_independent(self) -> None:
        """Different keys run separately."""
        self.flight.run("a", self.operation)
        self.flight.run("b", self.operation)
        self.assertEqual(self.calls, 2)


class KeyedLockTests(TestCase):
    def test_serialises_one_key(self) -> None:
        """Operations on one key run one after the other, in call order."""
        lock = KeyedLock()
        order: list[str] = []
        gate: defer.Deferred[None] = defer.Deferred()

        def first() -> defer.Deferred[None]:
            order.append("first")
            return gate

        lock.run("k", first)
        second = lock.run("k", order.append, "second")
        self.assertEqual(order, ["first"])
        gate.callback(None)
        self.successResultOf(second)
        self.assertEqual(order, ["first", "second"])

    def test_forgets_idle_keys(self) -> None:
        """No lock is kept for a key nobody uses."""
        lock = KeyedLock()
        self.successResultOf(lock.run("k", lambda: None))
        self.assertEqual(len(lock), 0)

    def test_other_keys_not_blocked(self) -> None:
        """A held key does not block another key."""
        lock = KeyedLock()
        lock.run("a", lambda: defer.Deferred())
        self.assertEqual(self.successResultOf(lock.run("b", lambda: 7)), 7)
