"""The sort values of an item leave with the item: a trigger, not a foreign key.

``pubsub_item_sort_values.item_id`` names a row of ``pubsub_items`` (revision 0008:
without a foreign key). A foreign key's ``ON DELETE CASCADE`` runs once per deleted
item on both engines (SQLite: a sub-program per row; PostgreSQL: one RI query per row),
which made a purge of 1,000 items pay 1,000 look-ups. Instead, whoever deletes items,
the database removes their sort values in the same transaction:

- SQLite: the row trigger :data:`DELETE_TRIGGER` (``AFTER DELETE ON pubsub_items``,
  cascades from a node's deletion included); the storage's purge suspends it inside
  its own transaction and deletes the values of all its items with one statement
  (:mod:`sat_storage.storage.item_purge`), as it does for the counts and the
  full-text entries;
- PostgreSQL: one ``AFTER DELETE ... FOR EACH STATEMENT`` trigger with the transition
  table of the deleted rows (the one the count trigger reads, see
  :mod:`sat_storage.item_counts`): one set-based ``DELETE`` per statement.

Values are written only for items that exist (the writer selects them from
``pubsub_items`` after writing them, :mod:`sat_storage.storage.sort_keys`), and an
item's id never changes. A revision that recreates ``pubsub_items`` on SQLite (batch
mode) drops the trigger with the table and must create it again
(:func:`create_statements`).
"""

from __future__ import annotations

from sqlalchemy import event

from sat_storage import engines
from sat_storage.models import PubsubItem

__all__ = ["DELETE_TRIGGER", "create_statements", "drop_statements"]

TABLE = "pubsub_item_sort_values"
#: the trigger (both engines; PostgreSQL: also its function's name)
DELETE_TRIGGER = f"{TABLE}_delete"

_SQLITE_CREATE = (
    f"CREATE TRIGGER {DELETE_TRIGGER} AFTER DELETE ON pubsub_items BEGIN "
    f"DELETE FROM {TABLE} WHERE item_id = old.id; END",
)
_SQLITE_DROP = (f"DROP TRIGGER IF EXISTS {DELETE_TRIGGER}",)
_POSTGRESQL_CREATE = (
    f"CREATE FUNCTION {DELETE_TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    f"DELETE FROM {TABLE} AS v USING old_items AS o WHERE v.item_id = o.id; "
    "RETURN NULL; END $$",
    f"CREATE TRIGGER {DELETE_TRIGGER} AFTER DELETE ON pubsub_items "
    f"REFERENCING OLD TABLE AS old_items FOR EACH STATEMENT "
    f"EXECUTE FUNCTION {DELETE_TRIGGER}()",
)
_POSTGRESQL_DROP = (
    f"DROP TRIGGER IF EXISTS {DELETE_TRIGGER} ON pubsub_items",
    f"DROP FUNCTION IF EXISTS {DELETE_TRIGGER}()",
)


def create_statements(dialect: str) -> tuple[str, ...]:
    """DDL creating the trigger on ``pubsub_items`` (which must exist)."""
    return {"sqlite": _SQLITE_CREATE, "postgresql": _POSTGRESQL_CREATE}[dialect]


def drop_statements(dialect: str) -> tuple[str, ...]:
    """DDL dropping the trigger (and PostgreSQL's function)."""
    return {"sqlite": _SQLITE_DROP, "postgresql": _POSTGRESQL_DROP}[dialect]


# A new database is made by create_all (then stamped at head): create the trigger there
# too. Dropping pubsub_items drops its trigger; PostgreSQL's function is dropped after.
event.listen(PubsubItem.__table__, "after_create", engines.ddl_listener(create_statements))
event.listen(
    PubsubItem.__table__,
    "after_drop",
    engines.ddl_listener(lambda dialect: _POSTGRESQL_DROP[1:] if dialect == "postgresql" else ()),
)
