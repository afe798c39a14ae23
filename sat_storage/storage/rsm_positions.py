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

Statements run on the driver alone (a :class:`~sat_storage.driver_sql.Reader`, in
:meth:`~sat_storage.gateway.Gateway.read` or on a Session's connection), compiled
once per shape; keys are the driver's values of the order's columns, bound back as
they were read (no conversion: the stored text on SQLite, what psycopg gives on
PostgreSQL).
"""

from __future__ import annotations

import functools
import threading
from bisect import bisect_right
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Integer, bindparam, func, select, tuple_

from sat_storage.driver_sql import DriverStatement, Reader
from sat_storage.models import PubsubItem, PubsubNode

__all__ = ["BUILD_AT", "CAPACITY", "MIN_ITEMS", "STEP", "key_at", "position", "raw_key_columns"]

STEP = 256  # positions between two marks
MIN_ITEMS = 4 * STEP  # smaller nodes are always counted directly
CAPACITY = 128  # (database, node, order) entries kept, least recently used dropped
BUILD_AT = 2  # marks are built at this read (needing them) of one version of a node

Key = tuple[Any, ...]
Keys = tuple[str, ...]  # the order's PubsubItem column names (ItemsQuery.keys)

_items = PubsubItem.__table__
_RAW = sa.types.NullType()  # selected and bound as the driver gives them
_NODE_ID = bindparam("node_id", type_=Integer)


@dataclass(frozen=True)
class _Marks:
    version: int
    keys: list[Key]  # the keys at positions 0, STEP, 2 * STEP...


# per (database URL, node id, order keys): marks, or (version, reads of it without marks)
_cache: OrderedDict[tuple[str, int, Keys], _Marks | tuple[int, int]] = OrderedDict()
_lock = threading.Lock()  # the database threads share the cache


def raw_key_columns(keys: Keys) -> list[sa.ColumnElement[Any]]:
    """The order's columns, selected as the driver gives them (no result processor)."""
    return [sa.type_coerce(_items.c[k], _RAW).label(k) for k in keys]


def _bound(prefix: str, keys: Keys) -> Any:
    """The tuple of the bound values ``prefix0``, ``prefix1``... of a key (raw)."""
    return tuple_(*(bindparam(f"{prefix}{i}", type_=_RAW) for i in range(len(keys))))


def _params(node_id: int, **keys: Key | None) -> dict[str, Any]:
    """Bound values: ``node_id`` and each key of ``keys`` under its prefix."""
    params: dict[str, Any] = {"node_id": node_id}
    for prefix, key in keys.items():
        if key is not None:
            params.update({f"{prefix}{i}": value for i, value in enumerate(key)})
    return params


def _version() -> Any:
    return select(PubsubNode.items_version).where(PubsubNode.id == _NODE_ID).scalar_subquery()


@functools.cache
def _count_statement(keys: Keys, lower: bool, upper: bool, dialect: str) -> DriverStatement:
    """``(entries with lower <= key < upper, the node's version)`` of the order's
    index (``l``/``u`` keys bound; without one: open), one statement.

    On PostgreSQL the ORDER BY starts with ``node_id``, which only the order's index
    gives: it keeps the count there, index only (without it, PostgreSQL may read rows
    through the primary key, or scan the table, for a large range).
    """
    key = tuple_(*(_items.c[k] for k in keys))
    clauses: list[Any] = [_items.c.node_id == _NODE_ID]
    if lower:
        clauses.append(key >= _bound("l", keys))
    if upper:
        clauses.append(key < _bound("u", keys))
    entries = select(_items.c.node_id).where(*clauses)
    if dialect == "postgresql":
        ordered = entries.order_by(_items.c.node_id, *key.clauses).subquery()
        return DriverStatement(select(func.count(), _version()).select_from(ordered))
    return DriverStatement(entries.with_only_columns(func.count(), _version()))


@functools.cache
def _marks_statement(keys: Keys) -> DriverStatement:
    """The keys at every ``step``-th position of the node, with its version."""
    columns = [_items.c[k] for k in keys]
    rank = func.row_number().over(order_by=columns).label("rank")
    ranked = select(*raw_key_columns(keys), rank).where(_items.c.node_id == _NODE_ID).subquery()
    step = bindparam("step", type_=Integer)
    return DriverStatement(
        select(*list(ranked.c)[:-1], _version())
        .where((ranked.c.rank - 1) % step == 0)
        .order_by(ranked.c.rank)
    )


@functools.cache
def _ends_statement(lead: str) -> DriverStatement:
    """The node's smallest and greatest ``lead`` (converted as its type reads it)."""
    column = _items.c[lead]
    node = _items.c.node_id == _NODE_ID
    ends = [
        select(column).where(node).order_by(order).limit(1).scalar_subquery()
        for order in (column.asc(), column.desc())
    ]
    return DriverStatement(select(*ends))


@functools.cache
def _key_at_statement(keys: Keys, from_mark: bool, dialect: str) -> DriverStatement:
    """The key ``offset`` entries on in the order's index: from the key bound as
    ``l`` (with the node's version), else from the node's first entry."""
    columns = [_items.c[k] for k in keys]
    stmt = select(*raw_key_columns(keys)).where(_items.c.node_id == _NODE_ID)
    if from_mark:
        order = [_items.c.node_id, *columns] if dialect == "postgresql" else columns
        stmt = stmt.add_columns(_version()).where(tuple_(*columns) >= _bound("l", keys))
        stmt = stmt.order_by(*order)
    else:
        stmt = stmt.order_by(*columns)
    offset = bindparam("offset", type_=Integer)
    return DriverStatement(stmt.offset(offset).limit(bindparam("limit", type_=Integer)))


def _count(
    reader: Reader, node_id: int, keys: Keys, lower: Key | None, upper: Key | None
) -> tuple[int, int]:
    """``(entries with lower <= key < upper, the node's version)``, one statement."""
    stmt = _count_statement(keys, lower is not None, upper is not None, reader.dialect.name)
    found, version = reader.rows(stmt, _params(node_id, l=lower, u=upper))[0]
    return found, version


def _marks(reader: Reader, node_id: int, keys: Keys, count: int, version: int) -> _Marks | None:
    """The node's valid marks for this order, built now if due (see the module doc)."""
    if count < MIN_ITEMS:
        return None
    entry = (str(reader.engine.url), node_id, keys)
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
    rows = reader.rows(_marks_statement(keys), {"node_id": node_id, "step": STEP})
    if not rows or rows[0][-1] != version:  # written meanwhile
        return None
    marks = _Marks(version, [tuple(row[:-1]) for row in rows])
    _remember(entry, marks)
    return marks


def _remember(entry: tuple[str, int, Keys], value: _Marks | tuple[int, int]) -> None:
    with _lock:
        _cache[entry] = value
        _cache.move_to_end(entry)
        while len(_cache) > CAPACITY:
            _cache.popitem(last=False)


def _lead_value(reader: Reader, lead: str, raw: Any) -> Any:
    """The driver's value ``raw`` of column ``lead`` as its type reads it."""
    dialect = reader.dialect
    process = _items.c[lead].type.dialect_impl(dialect).result_processor(dialect, None)
    return raw if process is None or raw is None else process(raw)


def position(
    reader: Reader, node_id: int, keys: Keys, first: Key, count: int, version: int
) -> int:
    """How many of the node's items come before key ``first`` (the driver's values)
    in the order of ``keys``.

    ``count`` and ``version`` are the node's ``item_count``/``items_version`` read in
    this read. From the marks when valid; else counted on the side of ``first`` that
    the node's extreme keys say is smaller.
    """
    marks = _marks(reader, node_id, keys, count, version)
    if marks is not None:
        mark = bisect_right(marks.keys, first) - 1
        if mark >= 0:
            found, seen = _count(reader, node_id, keys, marks.keys[mark], first)
            if seen == version:
                return mark * STEP + found
    low, high = reader.rows(_ends_statement(keys[0]), {"node_id": node_id})[0]
    lead = _lead_value(reader, keys[0], first[0])
    if low != high and (lead - low) > (high - lead):  # nearer the end
        return count - _count(reader, node_id, keys, first, None)[0]
    return _count(reader, node_id, keys, None, first)[0]


def key_at(
    reader: Reader, node_id: int, keys: Keys, index: int, count: int, version: int
) -> Key | None:
    """The key (the driver's values) of the item at position ``index`` in the order
    of ``keys`` (None: past the end); an OFFSET from the nearest mark when valid,
    else from the start."""
    marks = _marks(reader, node_id, keys, count, version)
    if marks is not None and index // STEP < len(marks.keys):
        stmt = _key_at_statement(keys, True, reader.dialect.name)
        params = _params(node_id, l=marks.keys[index // STEP])
        rows = reader.rows(stmt, {**params, "offset": index % STEP, "limit": 1})
        if not rows or rows[0][-1] == version:
            return tuple(rows[0][:-1]) if rows else None
    # the index alone, from the start (the node's first entry on)
    stmt = _key_at_statement(keys, False, reader.dialect.name)
    rows = reader.rows(stmt, {"node_id": node_id, "offset": index, "limit": 1})
    return tuple(rows[0]) if rows else None
