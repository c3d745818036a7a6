"""``dead_letter.reason_code``: why a record was dead-lettered as one of a few fixed codes
(``c360.contracts.reasons``), for ``c360 status`` to count by; the letters stored before it
are ``other``.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dead_letter") as batch:
        batch.add_column(
            sa.Column("reason_code", sa.String(32), nullable=False, server_default="other")
        )


def downgrade() -> None:
    with op.batch_alter_table("dead_letter") as batch:
        batch.drop_column("reason_code")
