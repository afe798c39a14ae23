"""TriggerManager: priorities, cancelling, skipping, return points, async callbacks."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from sat_storage.trigger import SkipOtherTriggers, TriggerException, TriggerManager


class Recorder:
    """Callbacks that record their calls in one list."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def make(self, name: str, result: Any = True) -> Any:
        def callback(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args, kwargs))
            return result

        callback.__qualname__ = name
        return callback

    @property
    def names(self) -> list[str]:
        return [name for name, _, _ in self.calls]


class PointTests(TestCase):
    def setUp(self) -> None:
        self.trigger = TriggerManager()
        self.rec = Recorder()

    def test_no_callback_continues(self) -> None:
        """A point without callbacks lets the action continue."""
        self.assertIs(self.trigger.point("nothing"), True)
        self.assertEqual(self.trigger.return_point("nothing"), (True, None))

    def test_priority_order(self) -> None:
        """Callbacks run highest priority first, whatever the order they were added."""
        for name, priority in (("low", -5), ("high", 10), ("mid", 0)):
            self.trigger.add("p", self.rec.make(name), priority)
        self.trigger.point("p")
        self.assertEqual(self.rec.names, ["high", "mid", "low"])

    def test_equal_priorities_keep_insertion_order(self) -> None:
        """Callbacks of equal priority run in the order they were added."""
        for name in ("a", "b", "c"):
            self.trigger.add("p", self.rec.make(name), 3)
        self.trigger.add("p", self.rec.make("first"), 4)
        self.trigger.point("p")
        self.assertEqual(self.rec.names, ["first", "a", "b", "c"])

    def test_arguments_passed(self) -> None:
        """Each callback gets the point's positional and keyword arguments."""
        self.trigger.add("p", self.rec.make("cb"))
        self.trigger.point("p", 1, "two", three=3)
        self.assertEqual(self.rec.calls, [("cb", (1, "two"), {"three": 3})])

    def test_false_cancels(self) -> None:
        """A callback returning False cancels the action; later callbacks do not run."""
        self.trigger.add("p", self.rec.make("first", False), 1)
        self.trigger.add("p", self.rec.make("second"), 0)
        self.assertIs(self.trigger.point("p"), False)
        self.assertEqual(self.rec.names, ["first"])

    def test_no_cancel(self) -> None:
        """With triggers_no_cancel every callback runs, the result is True, kwarg not passed."""
        self.trigger.add("p", self.rec.make("first", False), 1)
        self.trigger.add("p", self.rec.make("second"), 0)
        self.assertIs(self.trigger.point("p", triggers_no_cancel=True), True)
        self.assertEqual(self.rec.calls, [("first", (), {}), ("second", (), {})])

    def test_skip_other_triggers(self) -> None:
        """SkipOtherTriggers skips the remaining callbacks and lets the action continue."""

        def skip() -> bool:
            raise SkipOtherTriggers()

        self.trigger.add("p", skip, 5)
        self.trigger.add("p", self.rec.make("never", False))
        self.assertIs(self.trigger.point("p"), True)
        self.assertEqual(self.rec.names, [])

    def test_errors_propagate(self) -> None:
        """Any other exception of a callback reaches the caller of the point."""

        def broken() -> bool:
            raise ZeroDivisionError()

        self.trigger.add("p", broken)
        self.assertRaises(ZeroDivisionError, self.trigger.point, "p")

    def test_remove(self) -> None:
        """A removed callback no longer runs."""
        callback = self.rec.make("cb")
        self.trigger.add("p", callback)
        self.trigger.remove("p", callback)
        self.trigger.point("p")
        self.assertEqual(self.rec.calls, [])

    def test_remove_unknown(self) -> None:
        """Removing a callback that was not added raises TriggerException naming the point."""
        with self.assertRaises(TriggerException) as caught:
            self.trigger.remove("p", self.rec.make("cb"))
        self.assertIn("'p'", str(caught.exception))

    def test_add_not_callable(self) -> None:
        """Adding something not callable raises TypeError."""
        self.assertRaises(TypeError, self.trigger.add, "p", "not a function")

    def test_async_callback_on_sync_point(self) -> None:
        """A coroutine function on a sync point is refused clearly (not silently truthy)."""

        async def cb() -> bool:
            return False

        self.trigger.add("p", cb)
        with self.assertRaises(TriggerException) as caught:
            self.trigger.point("p")
        self.assertIn("async_point", str(caught.exception))

    def test_return_point_short_circuit(self) -> None:
        """return_point ends with the value of the first callback returning (False, value)."""
        self.trigger.add("p", self.rec.make("pass", (True, "ignored")), 2)
        self.trigger.add("p", self.rec.make("answer", (False, "value")), 1)
        self.trigger.add("p", self.rec.make("never", (False, "other")), 0)
        self.assertEqual(self.trigger.return_point("p"), (False, "value"))
        self.assertEqual(self.rec.names, ["pass", "answer"])

    def test_return_point_continue(self) -> None:
        """return_point gives (True, None) when every callback lets the action continue."""
        self.trigger.add("p", self.rec.make("pass", (True, "ignored")))
        self.assertEqual(self.trigger.return_point("p"), (True, None))

    def test_return_point_bad_shape(self) -> None:
        """A return-point callback not returning a pair raises TriggerException."""
        self.trigger.add("p", self.rec.make("bad", True))
        self.assertRaises(TriggerException, self.trigger.return_point, "p")


class AsyncPointTests(TestCase):
    def setUp(self) -> None:
        self.trigger = TriggerManager()
        self.rec = Recorder()

    async def test_mixed_callbacks(self) -> None:
        """async_point runs plain, coroutine and Deferred-returning callbacks in order."""

        async def coroutine_cb(value: int) -> bool:
            self.rec.calls.append(("coroutine", (value,), {}))
            return True

        def deferred_cb(value: int) -> defer.Deferred[bool]:
            self.rec.calls.append(("deferred", (value,), {}))
            return defer.succeed(True)

        self.trigger.add("p", coroutine_cb, 3)
        self.trigger.add("p", deferred_cb, 2)
        self.trigger.add("p", self.rec.make("plain"), 1)
        self.assertIs(await self.trigger.async_point("p", 7), True)
        self.assertEqual(self.rec.names, ["coroutine", "deferred", "plain"])

    def test_waits_for_each_callback(self) -> None:
        """The next callback runs only once the previous one's Deferred has fired."""
        pending: defer.Deferred[bool] = defer.Deferred()
        self.trigger.add("p", lambda: pending, 1)
        self.trigger.add("p", self.rec.make("next"), 0)
        result = self.trigger.async_point("p")
        self.assertEqual(self.rec.names, [])
        pending.callback(True)
        self.assertEqual(self.rec.names, ["next"])
        self.assertIs(self.successResultOf(result), True)

    async def test_async_cancel(self) -> None:
        """A coroutine callback returning False cancels the action."""

        async def refuse() -> bool:
            return False

        self.trigger.add("p", refuse, 1)
        self.trigger.add("p", self.rec.make("never"))
        self.assertIs(await self.trigger.async_point("p"), False)
        self.assertEqual(self.rec.names, [])

    async def test_async_no_cancel(self) -> None:
        """async_point honours triggers_no_cancel."""
        self.trigger.add("p", self.rec.make("refuse", False), 1)
        self.trigger.add("p", self.rec.make("after"))
        self.assertIs(await self.trigger.async_point("p", triggers_no_cancel=True), True)
        self.assertEqual(self.rec.calls, [("refuse", (), {}), ("after", (), {})])

    async def test_async_skip(self) -> None:
        """A coroutine raising SkipOtherTriggers skips the rest; the action continues."""

        async def skip() -> tuple[bool, object]:
            raise SkipOtherTriggers()

        self.trigger.add("p", skip, 1)
        self.trigger.add("p", self.rec.make("never", (False, "x")))
        self.assertEqual(await self.trigger.async_return_point("p"), (True, None))
        self.assertEqual(self.rec.names, [])

    async def test_async_return_point_short_circuit(self) -> None:
        """async_return_point gives the (False, value) of a coroutine callback."""

        async def answer(client: str, node: str) -> tuple[bool, object]:
            return False, ([client, node], {"complete": True})

        self.trigger.add("XEP-0060_getItems", answer)
        result = await self.trigger.async_return_point("XEP-0060_getItems", "c", "n")
        self.assertEqual(result, (False, (["c", "n"], {"complete": True})))

    async def test_async_errors_propagate(self) -> None:
        """A failing Deferred of a callback fails the point's Deferred."""
        self.trigger.add("p", lambda: defer.fail(ZeroDivisionError()))
        with self.assertRaises(ZeroDivisionError):
            await self.trigger.async_point("p")
