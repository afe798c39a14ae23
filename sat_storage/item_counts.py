"""Per-node item count and items version, kept by the database in every item write.

``pubsub_nodes.item_count`` is the number of the node's rows in ``pubsub_items``;
``pubsub_nodes.items_version`` grows (by one or more) with every change to them: an
item inserted, rewritten (any column) or deleted. A statement that changes no row (an
unchanged item re-cached, a purge matching nothing) changes neither.

Both are maintained by triggers on ``pubsub_items``, so every write is counted in its
own transaction, whoever makes it (the storage API, a cascade from a node's deletion,
the Libervia adoption, the CLI, a plugin's SQL):

- SQLite: one ``AFTER`` row trigger per operation (SQLite serialises writers); the
  storage's purge drops the delete trigger inside its own transaction and applies
  the same change once per node (:mod:`sat_storage.storage.item_purge`): no other
  connection ever sees the trigger missing;
- PostgreSQL: one ``AFTER ... FOR EACH STATEMENT`` trigger per operation with its
  transition table, updating each touched node once per statement as
  ``item_count = item_count + delta`` (the increment is applied to the newest row:
  concurrent writers of a node queue on its row lock, no update is lost). The row
  lock is held until the commit; so that two writers of the same node cannot
  deadlock (one holding the node, the other an item the first one needs), the
  storage's item writes lock their nodes first, in id order (:func:`lock_nodes_txn`).

A new node's ``items_version`` starts at its creation time in nanoseconds (the
model's default), so that a node deleted and created again under the same id (SQLite
reuses the largest rowid) never shows a version the old node had. Nodes that existed
before revision 0006 start at 0.

A revision that recreates ``pubsub_items`` on SQLite (batch mode) drops these triggers
with the table and must create them again (:func:`create_statements`).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session

from sat_storage import engines
from sat_storage.models import PubsubItem, PubsubNode

__all__ = [
    "COUNT_COLUMN",
    "DELETE_TRIGGER",
    "TRIGGERS",
    "VERSION_COLUMN",
    "create_statements",
    "drop_statements",
    "lock_nodes_txn",
    "recount_statement",
]

COUNT_COLUMN = "item_count"
VERSION_COLUMN = "items_version"
_PREFIX = "pubsub_items_counts"
#: names of the triggers (one per operation)
TRIGGERS = tuple(f"{_PREFIX}_{op}" for op in ("insert", "delete", "update"))
DELETE_TRIGGER = TRIGGERS[1]


_SQLITE_CREATE = (
    f"CREATE TRIGGER {_PREFIX}_insert AFTER INSERT ON pubsub_items BEGIN "
    f"UPDATE pubsub_nodes SET {COUNT_COLUMN} = {COUNT_COLUMN} + 1, "
    f"{VERSION_COLUMN} = {VERSION_COLUMN} + 1 WHERE id = new.node_id; END",
    f"CREATE TRIGGER {_PREFIX}_delete AFTER DELETE ON pubsub_items BEGIN "
    f"UPDATE pubsub_nodes SET {COUNT_COLUMN} = {COUNT_COLUMN} - 1, "
    f"{VERSION_COLUMN} = {VERSION_COLUMN} + 1 WHERE id = old.node_id; END",
    f"CREATE TRIGGER {_PREFIX}_update AFTER UPDATE ON pubsub_items BEGIN "
    f"UPDATE pubsub_nodes SET {VERSION_COLUMN} = {VERSION_COLUMN} + 1, "
    f"{COUNT_COLUMN} = {COUNT_COLUMN} + (id = new.node_id) - (id = old.node_id) "
    "WHERE id IN (old.node_id, new.node_id); END",
)
_SQLITE_DROP = tuple(
    f"DROP TRIGGER IF EXISTS {_PREFIX}_{op}" for op in ("update", "delete", "insert")
)

# delta per node of one statement, from its transition tables
_PG_DELTAS = {
    "insert": "SELECT node_id, count(*) AS delta FROM new_items GROUP BY node_id",
    "delete": "SELECT node_id, -count(*) AS delta FROM old_items GROUP BY node_id",
    "update": (
        "SELECT node_id, sum(delta) AS delta FROM (SELECT node_id, 1 AS delta FROM new_items "
        "UNION ALL SELECT node_id, -1 FROM old_items) AS changes GROUP BY node_id"
    ),
}
_PG_TRANSITIONS = {
    "insert": "NEW TABLE AS new_items",
    "delete": "OLD TABLE AS old_items",
    "update": "OLD TABLE AS old_items NEW TABLE AS new_items",
}


def _pg_function(op: str) -> str:
    return (
        f"CREATE FUNCTION {_PREFIX}_{op}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"UPDATE pubsub_nodes AS n SET {COUNT_COLUMN} = n.{COUNT_COLUMN} + d.delta, "
        f"{VERSION_COLUMN} = n.{VERSION_COLUMN} + 1 FROM ({_PG_DELTAS[op]}) AS d "
        "WHERE n.id = d.node_id; RETURN NULL; END $$"
    )


_POSTGRESQL_CREATE = tuple(
    statement
    for op in ("insert", "delete", "update")
    for statement in (
        _pg_function(op),
        f"CREATE TRIGGER {_PREFIX}_{op} AFTER {op.upper()} ON pubsub_items "
        f"REFERENCING {_PG_TRANSITIONS[op]} FOR EACH STATEMENT "
        f"EXECUTE FUNCTION {_PREFIX}_{op}()",
    )
)
_POSTGRESQL_DROP = tuple(
    statement
    for op in ("update", "delete", "insert")
    for statement in (
        f"DROP TRIGGER IF EXISTS {_PREFIX}_{op} ON pubsub_items",
        f"DROP FUNCTION IF EXISTS {_PREFIX}_{op}()",
    )
)


def create_statements(dialect: str) -> tuple[str, ...]:
    """DDL creating the triggers on ``pubsub_items`` (both tables must exist)."""
    return {"sqlite": _SQLITE_CREATE, "postgresql": _POSTGRESQL_CREATE}[dialect]


def drop_statements(dialect: str) -> tuple[str, ...]:
    """DDL dropping the triggers (the columns are left as they are)."""
    return {"sqlite": _SQLITE_DROP, "postgresql": _POSTGRESQL_DROP}[dialect]


def lock_nodes_txn(session: Session, *clauses: sa.ColumnElement[bool]) -> None:
    """PostgreSQL: lock the rows of the nodes matching ``clauses`` (in id order) for the
    rest of the transaction, before it writes their items; SQLite: nothing (writers are
    serialised)."""
    if session.get_bind().dialect.name == "postgresql":
        stmt = sa.select(PubsubNode.id).where(*clauses).order_by(PubsubNode.id)
        session.execute(stmt.with_for_update(key_share=True))  # FOR NO KEY UPDATE


def recount_statement() -> sa.Update:
    """Set every node's ``item_count`` from its rows (a migration's fill, a repair)."""
    nodes = sa.table("pubsub_nodes", sa.column("id"), sa.column(COUNT_COLUMN))
    items = sa.table("pubsub_items", sa.column("node_id"))
    count = (
        sa.select(sa.func.count())
        .select_from(items)
        .where(items.c.node_id == nodes.c.id)
        .scalar_subquery()
    )
    return sa.update(nodes).values({COUNT_COLUMN: count})


# A new database is made by create_all (then stamped at head): create the triggers there
# too. Dropping pubsub_items drops its triggers; PostgreSQL's functions are dropped after.
event.listen(PubsubItem.__table__, "after_create", engines.ddl_listener(create_statements))
event.listen(
    PubsubItem.__table__,
    "after_drop",
    engines.ddl_listener(lambda dialect: _POSTGRESQL_DROP[1::2] if dialect == "postgresql" else ()),
)
