"""Nodes found missing on their service: a short-lived negative entry, nothing stored.

A node requested before it exists gets item-not-found from its service. That says
nothing of whether it may be cached once it exists, so nothing is recorded in the
database; the node is only remembered in memory for ``missing_node_delay`` seconds,
during which its requests go to the network without being analysed again. After that
(or once the node is seen to exist), it is handled as a new node.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.words.protocols.jabber import error as jabber_error

from sat_storage.exceptions import NotFound


def is_missing(failure_or_error: Any) -> bool:
    """True when an error says the node does not exist (item-not-found)."""
    error = getattr(failure_or_error, "value", failure_or_error)
    if isinstance(error, NotFound):
        return True
    return isinstance(error, jabber_error.StanzaError) and error.condition == "item-not-found"


class NodeMissing(Exception):
    """The service says the node does not exist (item-not-found)."""


class MissingNodes:
    """Keys of nodes seen missing, forgotten after ``delay`` seconds."""

    def __init__(self, clock: IReactorTime, delay: float) -> None:
        self.clock = clock
        self.delay = delay
        self._seen: dict[Any, float] = {}

    def add(self, key: Any) -> None:
        self._seen[key] = self.clock.seconds()

    def discard(self, key: Any) -> None:
        self._seen.pop(key, None)

    def __contains__(self, key: Any) -> bool:
        seen = self._seen.get(key)
        if seen is None:
            return False
        if self.clock.seconds() - seen >= self.delay:
            del self._seen[key]
            return False
        return True


__all__ = ["MissingNodes", "NodeMissing", "is_missing"]
