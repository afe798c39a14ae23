"""full-text words out of pubsub_items

The words of each item (``sat_storage.fts``) leave the hot ``pubsub_items`` table, so
that a row is its XML and parsed JSON only (scans, sorts on undeclared paths and
purges read about half the pages):

- SQLite: the FTS5 table ``pubsub_items_fts`` gets its own content (it was an
  external-content table on ``pubsub_items.fts_text``): it is made again from the
  words, its three triggers give way to one that deletes an item's entry with the
  item, and the column is dropped (``ALTER TABLE … DROP COLUMN``: no copy of the
  table, so its other triggers stay);
- PostgreSQL: the generated ``fts_vector`` becomes a plain column (``DROP
  EXPRESSION``, values and GIN index kept) that the writer sets, and ``fts_text`` is
  dropped.

(Its SQLite layout is ``fts_layouts.V0007_SQLITE_CREATE``: revision 0009 gave the words a table
of their own.) The downgrade adds ``fts_text`` again (SQLite: from the FTS5 content; PostgreSQL:
computed from each item's XML) and restores 0002's structures.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from sat_storage import fts, fts_layouts

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE, TEXT, VECTOR = fts.TABLE, fts.TEXT_COLUMN, fts.VECTOR_COLUMN


def upgrade() -> None:
    connection = op.get_bind()
    run = connection.exec_driver_sql
    if connection.dialect.name == "sqlite":
        for statement in (
            fts_layouts.legacy_drop_statements("sqlite") + fts_layouts.V0007_SQLITE_CREATE
        ):
            run(statement)
        run(f"INSERT INTO {TABLE}(rowid, {TEXT}) SELECT id, {TEXT} FROM pubsub_items ORDER BY id")
        run(f"ALTER TABLE pubsub_items DROP COLUMN {TEXT}")
    else:
        run(f"ALTER TABLE pubsub_items ALTER COLUMN {VECTOR} DROP EXPRESSION")
        run(f"ALTER TABLE pubsub_items DROP COLUMN {TEXT}")


def _texts_from_xml(connection: sa.Connection) -> None:
    """PostgreSQL: ``fts_text`` of every item computed from its XML (keyset batches)."""
    select = "SELECT id, data FROM pubsub_items WHERE id > %(after)s ORDER BY id LIMIT 500"
    update = f"UPDATE pubsub_items SET {TEXT} = %(text)s WHERE id = %(id)s"
    after = 0
    while rows := connection.exec_driver_sql(select, {"after": after}).all():
        texts = [{"id": i, "text": fts.item_text(d)} for i, d in rows]
        connection.exec_driver_sql(update, texts)
        after = rows[-1][0]


def downgrade() -> None:
    connection = op.get_bind()
    run = connection.exec_driver_sql
    dialect = connection.dialect.name
    run(f"ALTER TABLE pubsub_items ADD COLUMN {TEXT} TEXT")
    if dialect == "sqlite":
        run(
            f"UPDATE pubsub_items SET {TEXT} = "
            f"(SELECT {TEXT} FROM {TABLE} WHERE {TABLE}.rowid = pubsub_items.id)"
        )
    else:
        _texts_from_xml(connection)
    dropped = fts_layouts.V0007_SQLITE_DROP if dialect == "sqlite" else fts.drop_statements(dialect)
    for statement in dropped + fts_layouts.legacy_create_statements(dialect):
        run(statement)
