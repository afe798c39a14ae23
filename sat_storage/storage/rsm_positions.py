"""Positions of items in a node's order (RSM ``index``), without counting the node.

A page after or before a cursor answers with the position of its first item (how
many of the node's items come before it), and a ``from_index`` page needs the key at
a position. Both are read from the order's index (``pubsub_items(node_id, id)`` or
``(node_id, updated, id)``), index only, up to that position: O(position).

For a node read several times while it does not change, the keys at every
:data:`STEP`-th position ("marks") are read once, in one pass of that index, and
kept in memory per (database, node, order); a position is then the nearest mark's
plus a count of fewer than :data:`STEP` entries, and a key at a position an OFFSET
of fewer than :data:`STEP`. Marks belong to one ``items_version`` of the node (which
every item write bumps, whoever writes: :mod:`sat_storage.item_counts`): each
statement that uses them reads the node's version too, in the same snapshot, and
falls back to the direct count when it differs. Marks are built only for nodes of at
least :data:`MIN_ITEMS` items, at the :data:`BUILD_AT`-th read that needs them at one
version (a node written between every read is counted directly, never marked).
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sat_storage.models import PubsubItem, PubsubNode

__all__ = ["BUILD_AT", "CAPACITY", "MIN_ITEMS", "STEP", "key_at", "position"]

STEP = 256  # positions between two marks
MIN_ITEMS = 4 * STEP  # smaller nodes are always counted directly
CAPACITY = 128  # (database, node, order) entries kept, least recently used dropped
BUILD_AT = 2  # marks are built at this read (needing them) of one version of a node

Key = tuple[Any, ...]


@dataclass(frozen=True)
class _Marks:
    version: int
    keys: list[Key]  # the keys at positions 0, STEP, 2 * STEP...


# per (database URL, node id, order keys): marks, or (version, reads of it without marks)
_cache: OrderedDict[tuple[str, int, tuple[str, ...]], _Marks | tuple[int, int]] = OrderedDict()
_lock = threading.Lock()  # the database threads share the cache


def _range(
    session: Session, node_id: int, key: Any, lower: Key | None, upper: Key | None
) -> tuple[list[Any], list[Any]]:
    """WHERE clauses of the node's index entries with ``lower <= key < upper`` (None:
    open), and the ORDER BY that reads them from the order's index.

    On PostgreSQL the ORDER BY starts with ``node_id``, which only the order's index
    gives: it keeps the count there, index only (without it, PostgreSQL may read rows
    through the primary key, or scan the table, for a large range).
    """
    clauses: list[Any] = [PubsubItem.node_id == node_id]
    if lower is not None:
        clauses.append(key >= lower)
    if upper is not None:
        clauses.append(key < upper)
    order = list(key.clauses)
    if session.get_bind().dialect.name == "postgresql":
        order.insert(0, PubsubItem.node_id)
    return clauses, order


def _version(node_id: int) -> Any:
    return select(PubsubNode.items_version).where(PubsubNode.id == node_id).scalar_subquery()


def _count(
    session: Session, node_id: int, key: Any, lower: Key | None, upper: Key | None
) -> tuple[int, int]:
    """``(entries with lower <= key < upper, the node's version)``, one statement."""
    clauses, order = _range(session, node_id, key, lower, upper)
    entries = select(PubsubItem.node_id).where(*clauses)
    if session.get_bind().dialect.name == "postgresql":
        subquery = entries.order_by(*order).subquery()
        stmt = select(func.count(), _version(node_id)).select_from(subquery)
    else:
        stmt = entries.with_only_columns(func.count(), _version(node_id))
    found, version = session.execute(stmt).one()
    return found, version


def _marks(session: Session, node_id: int, key: Any, count: int, version: int) -> _Marks | None:
    """The node's valid marks for this order, built now if due (see the module doc)."""
    if count < MIN_ITEMS:
        return None
    names = tuple(c.key for c in key.clauses)
    entry = (str(session.get_bind().url), node_id, names)
    with _lock:
        known = _cache.get(entry)
        if known is not None:
            _cache.move_to_end(entry)
    if isinstance(known, _Marks) and known.version == version:
        return known
    reads = known[1] + 1 if isinstance(known, tuple) and known[0] == version else 1
    if reads < BUILD_AT:  # count directly, remember this read of the version
        _remember(entry, (version, reads))
        return None
    rank = func.row_number().over(order_by=key.clauses).label("rank")
    ranked = select(*key.clauses, rank).where(PubsubItem.node_id == node_id).subquery()
    rows = session.execute(
        select(*list(ranked.c)[:-1], _version(node_id))
        .where((ranked.c.rank - 1) % STEP == 0)
        .order_by(ranked.c.rank)
    ).all()
    if not rows or rows[0][-1] != version:  # written meanwhile
        return None
    marks = _Marks(version, [tuple(row[:-1]) for row in rows])
    _remember(entry, marks)
    return marks


def _remember(entry: tuple[str, int, tuple[str, ...]], value: _Marks | tuple[int, int]) -> None:
    with _lock:
        _cache[entry] = value
        _cache.move_to_end(entry)
        while len(_cache) > CAPACITY:
            _cache.popitem(last=False)


def position(
    session: Session, node_id: int, key: Any, first: Key, count: int, version: int
) -> int:
    """How many of the node's items come before key ``first`` in the order of ``key``.

    ``count`` and ``version`` are the node's ``item_count``/``items_version`` read in
    this transaction. From the marks when valid; else counted on the side of
    ``first`` that the node's extreme keys say is smaller.
    """
    marks = _marks(session, node_id, key, count, version)
    if marks is not None:
        mark = bisect_right(marks.keys, first) - 1
        if mark >= 0:
            found, seen = _count(session, node_id, key, marks.keys[mark], first)
            if seen == version:
                return mark * STEP + found
    lead = key.clauses[0]
    node_filter = PubsubItem.node_id == node_id
    ends = [
        select(lead).where(node_filter).order_by(order).limit(1).scalar_subquery()
        for order in (lead.asc(), lead.desc())
    ]
    low, high = session.execute(select(*ends)).one()
    if low != high and (first[0] - low) > (high - first[0]):  # nearer the end
        return count - _count(session, node_id, key, first, None)[0]
    return _count(session, node_id, key, None, first)[0]


def key_at(
    session: Session, node_id: int, key: Any, index: int, count: int, version: int
) -> Key | None:
    """The key of the item at position ``index`` in the order of ``key`` (None: past
    the end); an OFFSET from the nearest mark when valid, else from the start."""
    marks = _marks(session, node_id, key, count, version)
    if marks is not None and index // STEP < len(marks.keys):
        clauses, order = _range(session, node_id, key, marks.keys[index // STEP], None)
        stmt = select(*key.clauses, _version(node_id)).where(*clauses).order_by(*order)
        row = session.execute(stmt.offset(index % STEP).limit(1)).one_or_none()
        if row is None or row[-1] == version:
            return None if row is None else tuple(row[:-1])
    # the index alone, from the start (the node's first entry on)
    stmt = select(*key.clauses).where(PubsubItem.node_id == node_id).order_by(*key.clauses)
    row = session.execute(stmt.offset(index).limit(1)).one_or_none()
    return None if row is None else tuple(row)
