"""Trigger points: named places where plugins change the host's behaviour (Libervia's API).

A plugin adds a callback to a point (``host.trigger.add("XEP-0060_getItems", cb)``);
the code owning the point runs every callback, highest priority first (equal
priorities in the order they were added):

- :meth:`TriggerManager.point` / :meth:`~TriggerManager.async_point`: each callback
  returns a bool; the first false one stops the action (result False), unless the
  point is run with ``triggers_no_cancel=True``;
- :meth:`TriggerManager.return_point` / :meth:`~TriggerManager.async_return_point`:
  each callback returns ``(continue, value)``; the first ``(False, value)`` ends the
  action with ``value`` as its result.

A callback raising :class:`SkipOtherTriggers` makes the point skip the remaining
callbacks and continue normally. Async points accept plain functions, coroutine
functions and functions returning Deferreds; sync points need plain results.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

from twisted.internet import defer

from sat_storage.deferreds import as_deferred

log = logging.getLogger(__name__)

NO_CANCEL = "triggers_no_cancel"


class TriggerException(Exception):
    """Misuse of a trigger point (unknown callback, async callback on a sync point…)."""


class SkipOtherTriggers(Exception):  # noqa: N818  (Libervia's name)
    """Raised by a callback: skip the remaining callbacks, continue the action."""


def _name(callback: Callable[..., Any]) -> str:
    return getattr(callback, "__qualname__", None) or repr(callback)


class TriggerManager:
    """The host's trigger points (``host.trigger``)."""

    MIN_PRIORITY = float("-inf")
    MAX_PRIORITY = float("inf")

    def __init__(self) -> None:
        self._triggers: dict[str, list[tuple[float, Callable[..., Any]]]] = {}

    def add(self, point_name: str, callback: Callable[..., Any], priority: float = 0) -> None:
        """Run ``callback`` at ``point_name``; higher ``priority`` runs first."""
        if not isinstance(point_name, str):
            raise TypeError(f"point_name must be str, got {type(point_name).__name__}")
        if not callable(callback):
            raise TypeError(f"trigger callback for {point_name!r} must be callable: {callback!r}")
        if isinstance(priority, bool) or not isinstance(priority, (int, float)):
            raise TypeError(f"priority of trigger {_name(callback)} must be a number: {priority!r}")
        triggers = self._triggers.setdefault(point_name, [])
        if priority != 0 and any(p == priority for p, _ in triggers):
            log.debug("trigger point %r: several callbacks with priority %s", point_name, priority)
        triggers.append((priority, callback))
        triggers.sort(key=lambda trigger: trigger[0], reverse=True)  # stable

    def remove(self, point_name: str, callback: Callable[..., Any]) -> None:
        """Stop running ``callback`` at ``point_name`` (``TriggerException`` if not there)."""
        triggers = self._triggers.get(point_name, [])
        for index, (_, registered) in enumerate(triggers):
            if registered == callback:
                del triggers[index]
                if not triggers:
                    del self._triggers[point_name]
                return
        raise TriggerException(f"no trigger {_name(callback)} at point {point_name!r}")

    def callbacks(self, point_name: str) -> list[Callable[..., Any]]:
        """The callbacks of a point, in the order they run."""
        return [callback for _, callback in self._triggers.get(point_name, [])]

    def point(self, point_name: str, *args: Any, **kwargs: Any) -> bool:
        """Run a point's callbacks; False when one cancelled the action."""
        can_cancel = not kwargs.pop(NO_CANCEL, False)
        for callback in self.callbacks(point_name):
            try:
                result = self._sync_result(point_name, callback, callback(*args, **kwargs))
            except SkipOtherTriggers:
                break
            if not result and can_cancel:
                return False
        return True

    def return_point(self, point_name: str, *args: Any, **kwargs: Any) -> tuple[bool, Any]:
        """Run a point's callbacks; ``(False, value)`` from the first one ending the action."""
        for callback in self.callbacks(point_name):
            try:
                result = self._sync_result(point_name, callback, callback(*args, **kwargs))
            except SkipOtherTriggers:
                break
            cont, value = self._pair(point_name, callback, result)
            if not cont:
                return False, value
        return True, None

    def async_point(self, point_name: str, *args: Any, **kwargs: Any) -> defer.Deferred[bool]:
        """:meth:`point` for callbacks that may be async; a Deferred firing with the bool."""
        return defer.ensureDeferred(self._async_point(point_name, args, kwargs))

    def async_return_point(
        self, point_name: str, *args: Any, **kwargs: Any
    ) -> defer.Deferred[tuple[bool, Any]]:
        """:meth:`return_point` for callbacks that may be async; a Deferred of the pair."""
        return defer.ensureDeferred(self._async_return_point(point_name, args, kwargs))

    async def _async_point(self, point_name: str, args: tuple, kwargs: dict) -> bool:
        can_cancel = not kwargs.pop(NO_CANCEL, False)
        for callback in self.callbacks(point_name):
            try:
                result = await self._async_result(callback, args, kwargs)
            except SkipOtherTriggers:
                break
            if not result and can_cancel:
                return False
        return True

    async def _async_return_point(
        self, point_name: str, args: tuple, kwargs: dict
    ) -> tuple[bool, Any]:
        for callback in self.callbacks(point_name):
            try:
                result = await self._async_result(callback, args, kwargs)
            except SkipOtherTriggers:
                break
            cont, value = self._pair(point_name, callback, result)
            if not cont:
                return False, value
        return True, None

    @staticmethod
    async def _async_result(callback: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        return await as_deferred(callback, *args, **kwargs)

    @staticmethod
    def _sync_result(point_name: str, callback: Callable[..., Any], result: Any) -> Any:
        if isinstance(result, defer.Deferred) or inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()  # never awaited: close it quietly
            elif isinstance(result, defer.Deferred):
                result.addErrback(log.error)  # nobody else will see its failure
            raise TriggerException(
                f"trigger {_name(callback)} at sync point {point_name!r} returned "
                f"{type(result).__name__}: async callbacks need async_point/async_return_point"
            )
        return result

    @staticmethod
    def _pair(point_name: str, callback: Callable[..., Any], result: Any) -> tuple[bool, Any]:
        if not (isinstance(result, tuple) and len(result) == 2):
            raise TriggerException(
                f"trigger {_name(callback)} at return point {point_name!r} must return "
                f"(continue, value), got {result!r}"
            )
        return result
