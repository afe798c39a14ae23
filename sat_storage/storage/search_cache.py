"""The statements of recent searches, by query: a search asked again is not built again.

Building a search's statement (:func:`.search.build_search`: checks, then SQL
expressions) costs about as much as running it on a small result, so a storage keeps
the statements of its last searches (:class:`SearchStatements`), keyed by an exact,
typed copy of the query (:func:`query_key`: ``1``, ``1.0`` and ``True`` are three
keys, a list and a tuple two, a ``JID`` and its text two), the profiles searched, the
dialect and the declared sort keys. Only statements that were built (so checked)
are kept: a bad query raises every time. A query holding anything else than dicts
with text keys, lists, tuples, text, numbers, booleans, None and JIDs is built every
time. What is kept is what ``build`` gives (the storage keeps a
:class:`~.search.KeptSearch`: the statement, and the driver's form of it once run).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

from twisted.words.protocols.jabber.jid import JID

__all__ = ["SearchStatements", "query_key"]

_SCALARS = (str, int, float, bool, type(None))
T = TypeVar("T")


class _Unkeyable(Exception):
    """A value :func:`query_key` does not copy."""


def _frozen(value: Any) -> Hashable:
    kind = type(value)
    if kind in _SCALARS:
        return kind, value
    if kind is dict:
        if not all(type(k) is str for k in value):
            raise _Unkeyable
        return dict, tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if kind is list or kind is tuple:
        return kind, tuple(_frozen(v) for v in value)
    if kind is JID:
        return JID, value.full()
    raise _Unkeyable


def query_key(query: Any) -> Hashable | None:
    """An exact, typed, hashable copy of ``query``; None when it holds other values."""
    try:
        return _frozen(query)
    except _Unkeyable:
        return None


class SearchStatements(Generic[T]):
    """An LRU of search statements (``size`` of them), forgotten together when the
    declared sort keys change (their index is an immutable value: a new one, new keys)."""

    def __init__(self, size: int = 128) -> None:
        self.size = size
        self._entries: OrderedDict[Hashable, T] = OrderedDict()
        self._sort_keys: object = None

    def get(
        self,
        query: Any,
        profile_ids: Sequence[int] | None,
        dialect: str,
        sort_keys: object,
        build: Callable[[], T],
    ) -> T:
        """The statement of ``query``: kept from an earlier call, else ``build()``."""
        frozen = query_key(query)
        if frozen is None:
            return build()
        if sort_keys is not self._sort_keys:
            self._entries.clear()
            self._sort_keys = sort_keys
        key = (frozen, None if profile_ids is None else tuple(profile_ids), dialect)
        stmt = self._entries.get(key)
        if stmt is not None:
            self._entries.move_to_end(key)
            return stmt
        stmt = build()
        self._entries[key] = stmt
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return stmt
