"""The statements of the pages of cached items, run by the driver alone.

Each statement is a Core ``SELECT`` built and compiled once per shape
(:class:`~sat_storage.driver_sql.DriverStatement`): a page of a node in an order,
after/before/from a key (the key bound as the driver read it: no conversion), the
node's counters (with a cursor item's key), items named in a list (a statement per
list size, sizes padded to powers of two). :func:`session_reader` runs them on the
connection of a Session's transaction.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Integer, Text, and_, bindparam, select, tuple_
from sqlalchemy.orm import Session
from sqlalchemy.types import NullType

from sat_storage.driver_sql import DriverStatement, Reader
from sat_storage.models import PubsubItem, PubsubNode
from sat_storage.storage import rsm_positions
from sat_storage.storage.item_reads import (
    ITEM_READ_COLUMNS,
    LAZY,
    LAZY_START,
    ItemRow,
    items_from_rows,
)
from sat_storage.storage.items_query import ItemsQuery

__all__ = [
    "COUNTERS",
    "counters_statement",
    "key_statement",
    "named_items",
    "named_params",
    "page_items",
    "page_statement",
    "raw_key",
    "session_reader",
]

_items = PubsubItem.__table__
_NODE_ID = bindparam("node_id", type_=Integer)
_RAW = NullType()  # bound as the driver gave the value (a key read by the driver)
#: where each item key column's driver value is in an ItemRow's row
_RAW_INDEX = {"id": 0, **{name: LAZY_START + LAZY.index(name) for name in ("created", "updated")}}


@functools.lru_cache(maxsize=16)
def named_items(size: int) -> DriverStatement:
    """The items of one node named in a list of ``size`` names (``n0``...): built
    once per size (callers pad a list to a power of two)."""
    names = [bindparam(f"n{i}", type_=Text) for i in range(size)]
    return DriverStatement(
        select(*ITEM_READ_COLUMNS).where(_items.c.node_id == _NODE_ID, _items.c.name.in_(names))
    )


def named_params(node_id: int, names: Sequence[str]) -> tuple[int, dict[str, Any]]:
    """(the statement size for ``names``, padded to a power of two by repeating the
    last name: the same rows; its bound values)."""
    size = 1 << (len(names) - 1).bit_length()
    padded = [*names, *[names[-1]] * (size - len(names))]
    return size, {"node_id": node_id, **{f"n{i}": name for i, name in enumerate(padded)}}


def _cursor(keys: tuple[str, ...]) -> tuple[Any, Any, list[Any], list[Any]]:
    """The keyset ``keys`` as SQL: the columns' tuple, the tuple of their bound values
    (``k0``, ``k1``...: the driver's values, bound as they are), the columns
    ascending and descending."""
    columns = [_items.c[k] for k in keys]
    bound = tuple_(*(bindparam(f"k{i}", type_=_RAW) for i in range(len(columns))))
    return tuple_(*columns), bound, [c.asc() for c in columns], [c.desc() for c in columns]


@functools.cache
def page_statement(keys: tuple[str, ...], mode: str, limited: bool) -> DriverStatement:
    """The statement of a page, built once per shape: ``keys`` the keyset, ``mode``
    ``after``/``before``/``from`` (bound by the keyset ``k0``...), ``desc`` or ``asc``
    (the newest or the oldest); ``limited``: bound by ``limit``."""
    key, bound, ascending, descending = _cursor(keys)
    stmt = select(*ITEM_READ_COLUMNS).where(_items.c.node_id == _NODE_ID)
    if mode == "after":
        stmt = stmt.where(key > bound).order_by(*ascending)
    elif mode == "before":
        stmt = stmt.where(key < bound).order_by(*descending)
    elif mode == "from":
        stmt = stmt.where(key >= bound).order_by(*ascending)
    else:
        stmt = stmt.order_by(*(descending if mode == "desc" else ascending))
    if limited:
        stmt = stmt.limit(bindparam("limit", type_=Integer))
    return DriverStatement(stmt)


@functools.cache
def key_statement(keys: tuple[str, ...]) -> DriverStatement:
    """The keyset of the item named ``name`` of a node (converted by the columns'
    types: compared with the items' in memory), built once."""
    stmt = select(*(_items.c[k] for k in keys)).where(_items.c.node_id == _NODE_ID)
    return DriverStatement(stmt.where(_items.c.name == bindparam("name", type_=Text)))


@functools.cache
def counters_statement(keys: tuple[str, ...] | None) -> DriverStatement:
    """The node's ``item_count`` and ``items_version``, built once; with ``keys``: and
    the keyset (the driver's values) of its item named ``name`` (NULLs when it is not
    cached)."""
    nodes = PubsubNode.__table__
    stmt = select(nodes.c.item_count, nodes.c.items_version).where(nodes.c.id == _NODE_ID)
    if keys is None:
        return DriverStatement(stmt)
    named = and_(_items.c.node_id == nodes.c.id, _items.c.name == bindparam("name", type_=Text))
    return DriverStatement(
        stmt.add_columns(*rsm_positions.raw_key_columns(keys)).outerjoin(_items, named)
    )


COUNTERS = counters_statement(None)


def raw_key(item: ItemRow, keys: tuple[str, ...]) -> tuple[Any, ...]:
    """The keyset of ``item`` as the driver read it (bound back as it is)."""
    row = item.row
    return tuple(row[_RAW_INDEX[k]] for k in keys)


def page_items(
    reader: Reader,
    node_id: int,
    query: ItemsQuery,
    cursor_key: tuple[Any, ...] | None,
    node: PubsubNode | None,
) -> list[ItemRow]:
    """Items of one page, oldest first, read from the order's index."""
    params: dict[str, Any] = {"node_id": node_id, "limit": query.max_items}
    backwards = False
    if query.after is not None:
        mode = "after"
    elif query.before:
        mode, backwards = "before", True
    elif query.from_index is not None:  # cursor_key: the key at that position
        if cursor_key is None:
            return []
        mode = "from"
    elif query.before == "" or query.desc:
        mode, backwards = "desc", True
    else:
        mode = "asc"
    if cursor_key is not None:
        params.update({f"k{i}": value for i, value in enumerate(cursor_key)})
    stmt = page_statement(query.keys, mode, query.max_items is not None)
    items = items_from_rows(reader.rows(stmt, params), reader.dialect, node)
    if backwards:
        items.reverse()
    return items


@contextmanager
def session_reader(session: Session) -> Iterator[Reader]:
    """A :class:`~sat_storage.driver_sql.Reader` on the connection of ``session``'s
    transaction (its statements in that transaction)."""
    connection = session.connection()
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        yield Reader(cursor, connection.engine)
    finally:
        cursor.close()
