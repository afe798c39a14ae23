"""pubsub sort keys declared by analysers

``pubsub_sort_keys`` lists the paths of items' parsed data declared sort keys (path as
a JSON list, direction, type); ``pubsub_item_sort_values`` holds, for every cached item
and declared key, the item's sort value (kind rank, then the value), with an index in
the search's order. Both start empty: a key is declared at run time, which fills its
values for the items already cached. The downgrade drops both tables (items untouched).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pubsub_sort_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("direction", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pubsub_sort_keys")),
        sa.UniqueConstraint("path", "direction", name=op.f("uq_pubsub_sort_keys_path_direction")),
    )
    op.create_table(
        "pubsub_item_sort_values",
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("rank", sa.SmallInteger(), nullable=False),
        sa.Column("num", sa.LargeBinary().with_variant(sa.Numeric(), "postgresql"),
                  nullable=True),
        sa.Column("txt", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"),
                  nullable=True),
        sa.Column("flag", sa.Boolean(), nullable=True),
        sa.ForeignKeyConstraint(
            ["item_id"], ["pubsub_items.id"], ondelete="CASCADE",
            name=op.f("fk_pubsub_item_sort_values_item_id_pubsub_items"),
        ),
        sa.ForeignKeyConstraint(
            ["key_id"], ["pubsub_sort_keys.id"], ondelete="CASCADE",
            name=op.f("fk_pubsub_item_sort_values_key_id_pubsub_sort_keys"),
        ),
        sa.PrimaryKeyConstraint("item_id", "key_id", name=op.f("pk_pubsub_item_sort_values")),
    )  # fmt: skip
    op.create_index(
        "pubsub_item_sort_values__order",
        "pubsub_item_sort_values",
        ["key_id", "rank", "num", "txt", "flag", "item_id"],
    )


def downgrade() -> None:
    op.drop_index("pubsub_item_sort_values__order", table_name="pubsub_item_sort_values")
    op.drop_table("pubsub_item_sort_values")
    op.drop_table("pubsub_sort_keys")
