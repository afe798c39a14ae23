"""The full-text structures of earlier revisions, for the migrations that make or
leave them only (:mod:`sat_storage.fts` holds today's layout).

- revisions 0002-0006: the words in ``pubsub_items.fts_text``; SQLite an FTS5 table
  on that column (external content) kept in step by triggers, PostgreSQL a generated
  vector column (migrations 0002 and 0007);
- revisions 0007-0008 (SQLite): an FTS5 table with its own content, the trigger
  deleting its row (migrations 0007 and 0009).
"""

from __future__ import annotations

from sat_storage import fts
from sat_storage.fts import DELETE_TRIGGER, TABLE, TEXT_COLUMN, VECTOR_COLUMN

__all__ = [
    "V0007_SQLITE_CREATE",
    "V0007_SQLITE_DROP",
    "V0007_SQLITE_WRITE",
    "legacy_create_statements",
    "legacy_drop_statements",
]

# --- the layout of revisions 0007-0008 (for migrations 0007 and 0009) --------------------
# An FTS5 table with its own content, the trigger deleting its row.

V0007_SQLITE_CREATE = (
    f"CREATE VIRTUAL TABLE {TABLE} USING fts5({TEXT_COLUMN}, "
    "tokenize='unicode61 remove_diacritics 0')",
    f"CREATE TRIGGER {DELETE_TRIGGER} AFTER DELETE ON pubsub_items BEGIN "
    f"DELETE FROM {TABLE} WHERE rowid = old.id; END",
)
V0007_SQLITE_DROP = fts.drop_statements("sqlite")[:2]
#: the index entry of an item then (parameters: its id, its words)
V0007_SQLITE_WRITE = f"INSERT OR REPLACE INTO {TABLE}(rowid, {TEXT_COLUMN}) VALUES (?, ?)"

# --- the layout of revisions 0002-0006 (for migrations 0002 and 0007 only) ----------
# The words in ``pubsub_items.fts_text``; SQLite: an FTS5 table on that column
# (external content) kept in step by triggers; PostgreSQL: a generated vector column.

_LEGACY_SQLITE_CREATE = (
    f"CREATE VIRTUAL TABLE {TABLE} USING fts5({TEXT_COLUMN}, content='pubsub_items', "
    "content_rowid='id', tokenize='unicode61 remove_diacritics 0')",
    f"CREATE TRIGGER {TABLE}_insert AFTER INSERT ON pubsub_items BEGIN "
    f"INSERT INTO {TABLE}(rowid, {TEXT_COLUMN}) VALUES (new.id, new.{TEXT_COLUMN}); END",
    f"CREATE TRIGGER {TABLE}_delete AFTER DELETE ON pubsub_items BEGIN "
    f"INSERT INTO {TABLE}({TABLE}, rowid, {TEXT_COLUMN}) "
    f"VALUES ('delete', old.id, old.{TEXT_COLUMN}); END",
    f"CREATE TRIGGER {TABLE}_update AFTER UPDATE OF id, {TEXT_COLUMN} ON pubsub_items BEGIN "
    f"INSERT INTO {TABLE}({TABLE}, rowid, {TEXT_COLUMN}) "
    f"VALUES ('delete', old.id, old.{TEXT_COLUMN}); "
    f"INSERT INTO {TABLE}(rowid, {TEXT_COLUMN}) VALUES (new.id, new.{TEXT_COLUMN}); END",
    f"INSERT INTO {TABLE}({TABLE}) VALUES ('rebuild')",
)
_LEGACY_SQLITE_DROP = (
    f"DROP TRIGGER IF EXISTS {TABLE}_update",
    f"DROP TRIGGER IF EXISTS {TABLE}_delete",
    f"DROP TRIGGER IF EXISTS {TABLE}_insert",
    f"DROP TABLE IF EXISTS {TABLE}",
)
_LEGACY_POSTGRESQL_CREATE = (
    f"ALTER TABLE pubsub_items ADD COLUMN {VECTOR_COLUMN} tsvector GENERATED ALWAYS AS "
    f"(to_tsvector('simple'::regconfig, coalesce({TEXT_COLUMN}, ''))) STORED",
    f"CREATE INDEX {TABLE} ON pubsub_items USING gin ({VECTOR_COLUMN})",
)


def legacy_create_statements(dialect: str) -> tuple[str, ...]:
    """DDL creating (and filling) the structures of revisions 0002-0006 on
    ``pubsub_items`` holding ``fts_text``."""
    return {"sqlite": _LEGACY_SQLITE_CREATE, "postgresql": _LEGACY_POSTGRESQL_CREATE}[dialect]


def legacy_drop_statements(dialect: str) -> tuple[str, ...]:
    """DDL dropping the structures of revisions 0002-0006 (not ``fts_text``)."""
    return {"sqlite": _LEGACY_SQLITE_DROP, "postgresql": fts.drop_statements("postgresql")}[dialect]
