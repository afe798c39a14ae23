"""pubsub_nodes item count and items version

``pubsub_nodes.item_count`` (the node's number of cached items) and
``pubsub_nodes.items_version`` (grows with every change to the node's items), kept
by triggers on ``pubsub_items`` in the transaction of every item write (see
``sat_storage.item_counts``): RSM counts read the node's row instead of counting its
items, and readers can tell whether a node's items changed. The count of existing
nodes is filled from their items; their version starts at 0. A new database gets the
same triggers from ``create_all``. The downgrade drops the triggers, then the columns
(nodes and items are kept).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from sat_storage import item_counts

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("pubsub_nodes") as batch_op:
        batch_op.add_column(
            sa.Column(item_counts.COUNT_COLUMN, sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                item_counts.VERSION_COLUMN, sa.BigInteger(), server_default="0", nullable=False
            )
        )
    connection = op.get_bind()
    connection.execute(item_counts.recount_statement())
    for statement in item_counts.create_statements(connection.dialect.name):
        connection.exec_driver_sql(statement)


def downgrade() -> None:
    connection = op.get_bind()
    for statement in item_counts.drop_statements(connection.dialect.name):
        connection.exec_driver_sql(statement)
    with op.batch_alter_table("pubsub_nodes") as batch_op:
        batch_op.drop_column(item_counts.VERSION_COLUMN)
        batch_op.drop_column(item_counts.COUNT_COLUMN)
