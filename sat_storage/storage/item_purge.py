"""The purge's delete of cached items: set-based on SQLite, where triggers run per row.

SQLite has row triggers only: deleting N items runs the count trigger
(:mod:`sat_storage.item_counts`), the full-text delete trigger (:mod:`sat_storage.fts`)
and the sort values' delete trigger (:mod:`sat_storage.sort_values`) N times each,
which cost more than the delete itself. The purge does their work with one statement
each instead, in its own transaction (which holds SQLite's write lock from its
``BEGIN IMMEDIATE``: no other writer comes in between):

1. it reads the ids (and nodes) of the matching items, once; with none, it stops;
2. it drops those three triggers (their text is read from ``sqlite_master`` first);
3. it takes each touched node's deleted items off its ``item_count`` and adds one to
   its ``items_version`` (what the PostgreSQL statement trigger does);
4. one ``DELETE`` removes the items' sort values, one ``INSERT … SELECT`` their
   full-text entries (FTS5's ``'delete'`` command handed their words), one ``DELETE``
   their words, one the items: each by the ids, given as one JSON array parameter;
5. it creates the triggers again, from their own text.

Steps 2-5 run on the driver's connection with constant SQL text (no per-statement
SQLAlchemy execution: for a purge of a few items, that machinery cost more than the
statements).

Schema changes are transactional in SQLite: no other connection (another process, a
``sqlite3`` shell) ever sees the triggers missing, so every other write is still
counted by them; a purge that fails is rolled back with its ``DROP``. Readers of other
connections prepare their statements again after the commit (the schema cookie
changed): a purge is a maintenance operation, not a hot path. When the triggers are not
all there (a database between migrations), the purge is a plain ``DELETE``.

PostgreSQL: a plain ``DELETE`` (its count and sort values triggers run once per
statement already).
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from sat_storage import fts, item_counts, sort_values
from sat_storage.models import PubsubItem

__all__ = ["SUSPENDED_TRIGGERS", "delete_items_txn"]

_ITEMS = PubsubItem.__table__
#: the SQLite row triggers the purge replaces by set-based statements
SUSPENDED_TRIGGERS = (item_counts.DELETE_TRIGGER, fts.DELETE_TRIGGER, sort_values.DELETE_TRIGGER)
_TRIGGERS_SQL = (
    "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
    "AND tbl_name = 'pubsub_items' AND name IN (?, ?, ?)"
)
_IDS = "SELECT value FROM json_each(?)"  # the ids: one parameter, a JSON array
_DELETES = (
    f"DELETE FROM {sort_values.TABLE} WHERE item_id IN ({_IDS})",
    *fts.sqlite_delete_statements(_IDS),
    f"DELETE FROM pubsub_items WHERE id IN ({_IDS})",
)
_COUNT_UPDATE = (
    f"UPDATE pubsub_nodes SET {item_counts.COUNT_COLUMN} = {item_counts.COUNT_COLUMN} - ?, "
    f"{item_counts.VERSION_COLUMN} = {item_counts.VERSION_COLUMN} + 1 WHERE id = ?"
)


def delete_items_txn(session: Session, clauses: Sequence[sa.ColumnElement[bool]]) -> int:
    """Delete the items matching ``clauses`` (on ``pubsub_items``); how many.

    The nodes' counts and versions, the sort values and the full-text entries follow
    in the same transaction, as with the triggers (see the module docstring).
    """
    if session.get_bind().dialect.name != "sqlite":
        return session.execute(sa.delete(_ITEMS).where(*clauses)).rowcount
    rows = session.execute(sa.select(_ITEMS.c.id, _ITEMS.c.node_id).where(*clauses)).all()
    if not rows:
        return 0
    raw = session.connection().connection.driver_connection
    run = _Driver(raw.cursor())
    try:
        triggers = run(_TRIGGERS_SQL, SUSPENDED_TRIGGERS).fetchall()
        if len(triggers) != len(SUSPENDED_TRIGGERS):
            return session.execute(sa.delete(_ITEMS).where(*clauses)).rowcount
        for name, _sql in triggers:
            run(f'DROP TRIGGER "{name}"')  # one of our constant names
        try:
            per_node = Counter(node_id for _id, node_id in rows)
            run(_COUNT_UPDATE, [(n, node) for node, n in per_node.items()])
            ids = (json.dumps([item_id for item_id, _node in rows]),)
            for statement in _DELETES:
                deleted = run(statement, ids).rowcount
            return deleted  # the items' DELETE (the last one): every row read above
        finally:
            for _name, sql in triggers:
                run(sql)
    finally:
        run.cursor.close()


class _Driver:
    """Constant SQL on a ``sqlite3`` cursor, its errors raised as SQLAlchemy raises them
    (``DBAPIError`` subclasses: the gateway and callers see the same errors as from a
    ``Session``)."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self.cursor = cursor

    def __call__(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        try:
            if isinstance(params, list):
                return self.cursor.executemany(sql, params)
            return self.cursor.execute(sql, params)
        except sqlite3.Error as e:
            raise DBAPIError.instance(sql, params, e, sqlite3.Error) from e
