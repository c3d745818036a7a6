"""Segments: ``segment`` (definitions), ``segment_member`` (daily membership spells),
``segment_live_member`` (real-time membership), ``segment_event`` (the entered/exited outbox)
and ``webhook_delivery`` (every delivery attempt).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "segment",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("definition", sa.Text, nullable=False),
        sa.Column("description", sa.String(500)),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("evaluated_on", sa.Date),
    )
    op.create_table(
        "segment_member",
        sa.Column("segment", sa.String(64), primary_key=True),
        sa.Column("person_id", sa.String(40), primary_key=True),
        sa.Column("entered_on", sa.Date, primary_key=True),
        sa.Column("exited_on", sa.Date),
    )
    op.create_index("ix_segment_member_person", "segment_member", ["person_id"])
    op.create_table(
        "segment_live_member",
        sa.Column("segment", sa.String(64), primary_key=True),
        sa.Column("person_id", sa.String(40), primary_key=True),
        sa.Column("entered_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_segment_live_member_person", "segment_live_member", ["person_id"])
    op.create_table(
        "segment_event",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("segment", sa.String(64), nullable=False),
        sa.Column("person_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("occurred_at", sa.DateTime, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime),
    )
    op.create_index("ix_segment_event_due", "segment_event", ["status", "next_attempt_at"])
    op.create_table(
        "webhook_delivery",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("attempted_at", sa.DateTime, nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("error", sa.String(200)),
        sa.Column("succeeded", sa.Boolean, nullable=False),
    )
    op.create_index("ix_webhook_delivery_event_id", "webhook_delivery", ["event_id"])


def downgrade() -> None:
    op.drop_index("ix_webhook_delivery_event_id", table_name="webhook_delivery")
    op.drop_table("webhook_delivery")
    op.drop_index("ix_segment_event_due", table_name="segment_event")
    op.drop_table("segment_event")
    op.drop_index("ix_segment_live_member_person", table_name="segment_live_member")
    op.drop_table("segment_live_member")
    op.drop_index("ix_segment_member_person", table_name="segment_member")
    op.drop_table("segment_member")
    op.drop_table("segment")
