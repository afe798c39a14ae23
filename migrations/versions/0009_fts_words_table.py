"""full-text words in a table of their own, the FTS5 index on it as external content

SQLite only (PostgreSQL keeps its ``tsvector`` column: nothing to do). The FTS5 table
``pubsub_items_fts`` kept the items' words as its own content (0007); they move to the
plain table ``pubsub_items_fts_words`` (``id``: the item's, ``fts_text``), which the
FTS5 table indexes as external content (``sat_storage.fts``). Still out of the hot
``pubsub_items`` table; an FTS5 delete is now handed the words (``'delete'`` command)
instead of looking each row up and deleting it through the virtual table, and the
purge deletes all its items' entries with one statement. The index is built again
from the words (``rebuild``: the same entries, merged into one segment).

The downgrade makes 0007's own-content table again from the words.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

from sat_storage import fts, fts_layouts

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE, WORDS, TEXT = fts.TABLE, fts.WORDS_TABLE, fts.TEXT_COLUMN


def upgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name != "sqlite":
        return
    run = connection.exec_driver_sql
    words, *created = fts.create_statements("sqlite")
    run(words)
    run(f"INSERT INTO {WORDS}(id, {TEXT}) SELECT rowid, {TEXT} FROM {TABLE} ORDER BY rowid")
    for statement in fts_layouts.V0007_SQLITE_DROP + tuple(created):
        run(statement)
    run(f"INSERT INTO {TABLE}({TABLE}) VALUES ('rebuild')")


def downgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name != "sqlite":
        return
    run = connection.exec_driver_sql
    run(f"ALTER TABLE {WORDS} RENAME TO {WORDS}_old")
    for statement in fts.drop_statements("sqlite") + fts_layouts.V0007_SQLITE_CREATE:
        run(statement)
    run(f"INSERT INTO {TABLE}(rowid, {TEXT}) SELECT id, {TEXT} FROM {WORDS}_old ORDER BY id")
    run(f"DROP TABLE {WORDS}_old")
