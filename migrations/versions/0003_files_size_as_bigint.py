"""files.size as a 64-bit integer

A 32-bit ``INTEGER`` cannot hold the size of a file of 2 GiB or more on PostgreSQL.
The downgrade refuses (naming the largest size) rather than truncate a size that
does not fit the old column.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INT32_MAX = 2**31 - 1


def upgrade() -> None:
    with op.batch_alter_table("files") as batch_op:
        batch_op.alter_column(
            "size", existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=True
        )


def downgrade() -> None:
    files = sa.table("files", sa.column("size", sa.BigInteger))
    largest = op.get_bind().scalar(sa.select(sa.func.max(files.c.size)))
    if largest is not None and largest > INT32_MAX:
        raise RuntimeError(
            f"cannot downgrade below 0003: files.size holds {largest}, which does not fit "
            "the 32-bit column of revision 0002"
        )
    with op.batch_alter_table("files") as batch_op:
        batch_op.alter_column(
            "size", existing_type=sa.BigInteger(), type_=sa.Integer(), existing_nullable=True
        )
