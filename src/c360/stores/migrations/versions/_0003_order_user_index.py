"""Index realtime_order by user_id: a profile read finds a person's orders by customer id.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_realtime_order_user_id", "realtime_order", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_realtime_order_user_id", table_name="realtime_order")
