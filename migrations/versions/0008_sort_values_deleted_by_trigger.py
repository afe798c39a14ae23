"""sort values deleted with their items by a trigger, not a foreign key

``pubsub_item_sort_values.item_id`` loses its foreign key to ``pubsub_items`` (whose
``ON DELETE CASCADE`` ran once per deleted item on both engines) and a trigger deletes
an item's values with it instead (``sat_storage.sort_values``): SQLite a row trigger,
which the storage's purge suspends and replaces by one set-based ``DELETE``;
PostgreSQL one statement trigger reading the deleted rows' transition table. The
foreign key to ``pubsub_sort_keys`` stays. SQLite recreates the table (batch mode: its
rows, primary key and order index kept).

The downgrade drops the trigger and adds the foreign key again (no value can be
orphaned while the trigger is there).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

from sat_storage import sort_values

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FOREIGN_KEY = "fk_pubsub_item_sort_values_item_id_pubsub_items"


def upgrade() -> None:
    connection = op.get_bind()
    with op.batch_alter_table(sort_values.TABLE) as batch_op:
        batch_op.drop_constraint(FOREIGN_KEY, type_="foreignkey")
    for statement in sort_values.create_statements(connection.dialect.name):
        connection.exec_driver_sql(statement)


def downgrade() -> None:
    connection = op.get_bind()
    for statement in sort_values.drop_statements(connection.dialect.name):
        connection.exec_driver_sql(statement)
    with op.batch_alter_table(sort_values.TABLE) as batch_op:
        batch_op.create_foreign_key(
            FOREIGN_KEY, "pubsub_items", ["item_id"], ["id"], ondelete="CASCADE"
        )
