"""The purge of cached items: set-based on SQLite, where triggers run per row.

SQLite has row triggers only: deleting N items runs the count trigger
(:mod:`sat_storage.item_counts`), the full-text delete trigger (:mod:`sat_storage.fts`)
and the sort values' delete trigger (:mod:`sat_storage.sort_values`) N times each,
which cost more than the delete itself. :func:`purge_sqlite` does their work with one
statement each instead, in one transaction (which holds SQLite's write lock from its
``BEGIN IMMEDIATE``: no other writer comes in between), all of it on the driver
(:meth:`.Gateway.write`: no Session, no SQLAlchemy execution per statement; for a
purge of a few items that machinery cost more than the statements):

1. it reads the ids of the matching items, once, as one JSON array per node made by
   SQLite with each node's count (no Python object per item; the filters compiled for
   the driver once per shape, with the dates as stored: :func:`_id_read`); with none,
   it stops (no DDL: a purge that matches nothing changes no schema cookie);
2. it drops those three triggers (their text is read from ``sqlite_master`` first);
3. it takes each touched node's deleted items off its ``item_count`` and adds one to
   its ``items_version`` (what the PostgreSQL statement trigger does);
4. one ``DELETE`` removes the items' sort values, one ``INSERT … SELECT`` their
   full-text entries (FTS5's ``'delete'`` command handed their words), one ``DELETE``
   their words, one the items: each by the ids, given as one JSON array parameter;
5. it creates the triggers again, from their own text.

Schema changes are transactional in SQLite: no other connection (another process, a
``sqlite3`` shell) ever sees the triggers missing, so every other write is still
counted by them; a purge that fails is rolled back with its ``DROP``. Readers of other
connections prepare their statements again after the commit (the schema cookie
changed): a purge is a maintenance operation, not a hot path. When the triggers are not
all there (a database between migrations), the items are deleted by their ids alone
and whatever triggers there are do the rest.

Why a swap and not a guard in the triggers (``WHEN NOT EXISTS (a flag the purge
sets)``): a trigger on ``pubsub_items`` whose body writes the FTS5 table (or updates a
``NOT NULL`` column) makes every ``DELETE`` of the table a statement that may abort,
so that SQLite keeps a statement journal of every page the ``DELETE`` changes, whether
the ``WHEN`` holds or not: measured (1,000 items, 8 KiB pages, raw ``sqlite3``, CPU)
+3.3 ms on the items ``DELETE`` and +0.9 ms at the commit with a ``WHEN 0`` trigger of
such a body, +0.1 ms with a ``WHEN 0`` trigger whose body cannot abort. The full-text
delete cannot be made such a body, so a guard costs more than the swap (~1.5-2 ms).

PostgreSQL: :mod:`sat_storage.storage.item_purge_pg` (its count and sort values
triggers run once per statement already).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from sat_storage import fts, item_counts, sort_values
from sat_storage.driver_write import CompiledWrite, Writer, bind, compile_driver
from sat_storage.models import PubsubItem
from sat_storage.storage.pubsub_filters import Chunk, ItemFilters

__all__ = ["SUSPENDED_TRIGGERS", "purge_sqlite", "purge_sqlite_txn"]

_ITEMS = PubsubItem.__table__
#: the SQLite row triggers the purge replaces by set-based statements
SUSPENDED_TRIGGERS = (item_counts.DELETE_TRIGGER, fts.DELETE_TRIGGER, sort_values.DELETE_TRIGGER)
_TRIGGERS_SQL = (
    "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
    "AND tbl_name = 'pubsub_items' AND name IN (?, ?, ?)"
)
_IDS = "SELECT value FROM json_each(?)"  # the ids: one parameter, a JSON array
_DELETE_ITEMS = f"DELETE FROM pubsub_items WHERE id IN ({_IDS})"
_DELETES = (
    f"DELETE FROM {sort_values.TABLE} WHERE item_id IN ({_IDS})",
    *fts.sqlite_delete_statements(_IDS),
    _DELETE_ITEMS,
)
#: the id reads compiled (:func:`_id_read`), by shape; at most this many kept
_ID_READS: dict[tuple[Any, ...], str] = {}
_ID_READS_KEPT = 256
_COUNT_UPDATE = (
    f"UPDATE pubsub_nodes SET {item_counts.COUNT_COLUMN} = {item_counts.COUNT_COLUMN} - ?, "
    f"{item_counts.VERSION_COLUMN} = {item_counts.VERSION_COLUMN} + 1 WHERE id = ?"
)


def purge_sqlite(sql: Writer, filters: ItemFilters) -> int:
    """SQLite: delete the items matching ``filters``, in the transaction of ``sql``
    (write-locked); how many. The nodes' counts and versions, the sort values and
    the full-text entries follow (see the module docstring)."""
    per_node: Counter[int] = Counter()
    arrays = []  # the ids of each node's items, a JSON array made by SQLite
    dates = filters.dates(sql.dialect)
    for chunks in filters.node_chunks():
        for node_id, count, array in sql.fetch(*_id_read(sql.dialect, chunks, dates)):
            per_node[node_id] += count
            arrays.append(array[1:-1])  # (integers: "[1,2]" -> "1,2")
    if not arrays:
        return 0
    deleted = sum(per_node.values())
    ids = (f"[{','.join(arrays)}]",)
    triggers = sql.fetch(_TRIGGERS_SQL, SUSPENDED_TRIGGERS)
    if len(triggers) != len(SUSPENDED_TRIGGERS):
        sql.execute(_DELETE_ITEMS, ids)  # the triggers there do their part
        return deleted
    for name, _text in triggers:
        sql.execute(f'DROP TRIGGER "{name}"')  # one of our constant names
    try:
        sql.execute(_COUNT_UPDATE, [(n, node) for node, n in per_node.items()])
        for statement in _DELETES:
            sql.execute(statement, ids)
    finally:  # (also after an error: a caller going on in this transaction keeps them)
        for _name, text in triggers:
            sql.execute(text)
    return deleted  # every item counted above: no other writer came in between


def _id_read(
    dialect: Dialect, chunks: list[Chunk] | None, dates: list[tuple[Any, Any]]
) -> tuple[str, tuple[Any, ...]]:
    """The driver SQL reading, per node, ``(node_id, count, JSON array of the ids)`` of
    the items of the nodes of ``chunks`` (None: every node) older than ``dates``
    (stored values), and its parameters.

    The SQL is compiled once per shape (which filters, how many values each, with None
    or not, which dates): its parameters are the filters' values in order, then the
    dates', which the first compilation of a shape checks, on distinct stand-in values
    (a shape that would bind otherwise is compiled at each call instead).
    """
    shape = (
        dialect.name,
        None if chunks is None else tuple((c.key, len(p), none) for c, p, none in chunks),
        tuple(column.key for column, _value in dates),
    )
    params = (*(v for _c, present, _n in chunks or () for v in present), *(v for _c, v in dates))
    sql = _ID_READS.get(shape)
    if sql is None:
        stand_ins = [f"\x00{index}" for index in range(len(params))]
        values = iter(stand_ins)
        probe = (
            None if chunks is None else [(c, [next(values) for _ in p], n) for c, p, n in chunks]
        )
        compiled = _compiled_read(dialect, probe, [(column, next(values)) for column, _v in dates])
        if list(bind(compiled, {})) != stand_ins:  # (not the order assumed)
            compiled = _compiled_read(dialect, chunks, dates)
            return compiled[0], tuple(bind(compiled, {}))
        if len(_ID_READS) >= _ID_READS_KEPT:
            _ID_READS.clear()
        sql = _ID_READS[shape] = compiled[0]
    return sql, params


def _compiled_read(
    dialect: Dialect, chunks: list[Chunk] | None, dates: list[tuple[Any, Any]]
) -> CompiledWrite:
    clauses = ItemFilters.chunk_clauses(chunks, [c < sa.literal(v) for c, v in dates])
    node_id = _ITEMS.c.node_id
    columns = (node_id, sa.func.count(), sa.func.json_group_array(_ITEMS.c.id))
    statement = sa.select(*columns).where(*clauses).group_by(node_id)
    return compile_driver(statement, dialect, ())


def purge_sqlite_txn(session: Session, filters: ItemFilters) -> int:
    """:func:`purge_sqlite` in ``session``'s transaction (on its driver connection)."""
    raw = session.connection().connection.driver_connection
    writer = Writer(raw.cursor(), session.get_bind())  # type: ignore[arg-type]
    try:
        return purge_sqlite(writer, filters)
    finally:
        writer.cursor.close()
