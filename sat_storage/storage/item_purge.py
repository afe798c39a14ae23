"""The purge's delete of cached items: set-based on SQLite, where triggers run per row.

SQLite has row triggers only: deleting N items runs the count trigger
(:mod:`sat_storage.item_counts`), the full-text delete trigger (:mod:`sat_storage.fts`)
and the sort values' delete trigger (:mod:`sat_storage.sort_values`) N times each,
which cost more than the delete itself. The purge does their work with one statement
each instead, in its own transaction:

1. it drops those three triggers (their text is read from ``sqlite_master`` first);
2. one ``UPDATE ... FROM`` takes each touched node's deleted items off its
   ``item_count`` and adds one to its ``items_version`` (what the PostgreSQL statement
   trigger does);
3. one ``DELETE`` removes the items' sort values, one their full-text entries, one
   the items;
4. it creates the triggers again, from their own text.

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

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from sat_storage import fts, item_counts, sort_values
from sat_storage.models import PubsubItem, PubsubItemSortValue, PubsubNode

__all__ = ["SUSPENDED_TRIGGERS", "delete_items_txn"]

_ITEMS = PubsubItem.__table__
_NODES = PubsubNode.__table__
_VALUES = PubsubItemSortValue.__table__
#: the SQLite row triggers the purge replaces by set-based statements
SUSPENDED_TRIGGERS = (item_counts.DELETE_TRIGGER, fts.DELETE_TRIGGER, sort_values.DELETE_TRIGGER)
_TRIGGERS_SQL = sa.text(
    "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
    "AND tbl_name = 'pubsub_items' AND name IN (:counts, :fts, :values)"
).bindparams(counts=SUSPENDED_TRIGGERS[0], fts=SUSPENDED_TRIGGERS[1], values=SUSPENDED_TRIGGERS[2])


def _count_update(clauses: Sequence[sa.ColumnElement[bool]]) -> sa.Update:
    """Per touched node: ``item_count`` minus its matching items, ``items_version`` + 1."""
    deleted = (
        sa.select(_ITEMS.c.node_id, sa.func.count().label("n"))
        .where(*clauses)
        .group_by(_ITEMS.c.node_id)
        .subquery("deleted")
    )
    count = _NODES.c[item_counts.COUNT_COLUMN]
    version = _NODES.c[item_counts.VERSION_COLUMN]
    return (
        sa.update(_NODES)
        .where(_NODES.c.id == deleted.c.node_id)
        .values({count: count - deleted.c.n, version: version + 1})
    )


def delete_items_txn(session: Session, clauses: Sequence[sa.ColumnElement[bool]]) -> int:
    """Delete the items matching ``clauses`` (on ``pubsub_items``); how many.

    The nodes' counts and versions, the sort values and the full-text entries follow
    in the same transaction, as with the triggers (see the module docstring).
    """
    items = sa.delete(_ITEMS).where(*clauses)
    if session.get_bind().dialect.name != "sqlite":
        return session.execute(items).rowcount
    connection = session.connection()
    triggers = connection.execute(_TRIGGERS_SQL).all()
    if len(triggers) != len(SUSPENDED_TRIGGERS):
        return session.execute(items).rowcount
    for name, _sql in triggers:
        connection.exec_driver_sql(f'DROP TRIGGER "{name}"')  # one of our constant names
    try:
        session.execute(_count_update(clauses))
        ids = sa.select(_ITEMS.c.id).where(*clauses)
        session.execute(sa.delete(_VALUES).where(_VALUES.c.item_id.in_(ids)))
        session.execute(sa.delete(fts.FTS5_TABLE).where(fts.FTS5_TABLE.c.rowid.in_(ids)))
        return session.execute(items).rowcount
    finally:
        for _name, sql in triggers:
            connection.exec_driver_sql(sql)
