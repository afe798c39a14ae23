"""items without the index on their creation time; SQLite FTS5 leaves the size of a page

Two changes that make a purge (and every write of items) cheaper, with no read
slower:

- ``pubsub_items__created`` is dropped (both engines). Only the ``created_before``
  filter of ``purge_pubsub_items``/``count_pubsub_items`` could read it (creation
  order is the id's order; no read orders or pages by ``created``); such a purge now
  reads the table, as Libervia 0.9's (which has no such index) does. Each deleted or
  written item had one more index entry to remove or add.
- SQLite: the FTS5 table's leaf pages (``pgsz``) as large as one page of the file when
  its pages are 8 KiB or more (``sat_storage.fts.SQLITE_LEAF_SIZE``; 4 KiB files keep
  FTS5's default): half the leaves for a purge to write and for the incremental merge
  its flush runs. Segments written before keep their leaves (FTS5 reads both sizes).

The downgrade creates the index again and gives FTS5 its default leaf size back.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

from sat_storage import fts

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "pubsub_items__created"
FTS5_DEFAULT_LEAF_SIZE = 4050


def upgrade() -> None:
    connection = op.get_bind()
    op.drop_index(INDEX, table_name="pubsub_items")
    for statement in fts.settings_statements(connection.dialect.name):
        connection.exec_driver_sql(statement)


def downgrade() -> None:
    connection = op.get_bind()
    op.create_index(INDEX, "pubsub_items", ["created"], unique=False)
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql(
            f"INSERT INTO {fts.TABLE}({fts.TABLE}, rank) "
            f"VALUES ('pgsz', {FTS5_DEFAULT_LEAF_SIZE})"
        )
