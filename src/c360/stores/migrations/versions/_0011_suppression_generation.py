"""``erasure_salt.generation``: how many times the suppression list grew, so a speed-layer
micro-batch computed against an older list is recomputed rather than committed (it could write
an erased person back); stores erased before it start at 0.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("erasure_salt") as batch:
        batch.add_column(
            sa.Column("generation", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("erasure_salt") as batch:
        batch.drop_column("generation")
