"""pubsub_nodes sync lease

Who synchronises a node, across processes sharing the database: ``sync_owner`` (the
token of a running PUBSUB_CACHE instance: host name, pid, random part) and
``sync_lease_expires`` (epoch seconds; past it another process may take over).
Existing nodes get neither: one left IN_PROGRESS is an interrupted synchronisation.
The downgrade drops both columns (the nodes and their states are kept).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("pubsub_nodes") as batch_op:
        batch_op.add_column(sa.Column("sync_owner", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("sync_lease_expires", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pubsub_nodes") as batch_op:
        batch_op.drop_column("sync_lease_expires")
        batch_op.drop_column("sync_owner")
