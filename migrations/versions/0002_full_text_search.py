"""full-text search of pubsub items

Adds ``pubsub_items.fts_text`` (the words of each item, see ``sat_storage.fts``),
fills it for the items already cached, then creates the engine's index: SQLite FTS5
external-content table kept in step by triggers; PostgreSQL generated ``tsvector``
column with a GIN index (``fts_layouts.legacy_create_statements``: revision 0007 moved the
words out of ``pubsub_items``).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from sat_storage import fts, fts_layouts

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BACKFILL_BATCH = 500

items = sa.table(
    "pubsub_items",
    sa.column("id", sa.Integer),
    sa.column("data", sa.Text),
    sa.column("fts_text", sa.Text),
)


def backfill(connection: sa.Connection) -> None:
    """Fill ``fts_text`` of every item, in batches in id order (keyset)."""
    select = sa.select(items.c.id, items.c.data).order_by(items.c.id).limit(BACKFILL_BATCH)
    update = (
        sa.update(items)
        .where(items.c.id == sa.bindparam("item_id"))
        .values(fts_text=sa.bindparam("text"))
    )
    last = None
    while True:
        batch = select if last is None else select.where(items.c.id > last)
        rows = connection.execute(batch).all()
        if not rows:
            return
        connection.execute(update, [{"item_id": i, "text": fts.item_text(d)} for i, d in rows])
        last = rows[-1].id


def upgrade() -> None:
    with op.batch_alter_table("pubsub_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fts_text", sa.Text(), nullable=True))
    connection = op.get_bind()
    backfill(connection)
    dialect = connection.dialect.name
    for statement in fts_layouts.legacy_create_statements(dialect):  # this revision's layout
        op.execute(statement)


def downgrade() -> None:
    for statement in fts_layouts.legacy_drop_statements(op.get_bind().dialect.name):
        op.execute(statement)
    with op.batch_alter_table("pubsub_items", schema=None) as batch_op:
        batch_op.drop_column("fts_text")
