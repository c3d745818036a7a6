"""Segments: ``segment`` (definitions) and ``segment_member`` (membership spells).

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
    )
    op.create_table(
        "segment_member",
        sa.Column("segment", sa.String(64), primary_key=True),
        sa.Column("person_id", sa.String(40), primary_key=True),
        sa.Column("entered_on", sa.Date, primary_key=True),
        sa.Column("exited_on", sa.Date),
    )
    op.create_index("ix_segment_member_person", "segment_member", ["person_id"])


def downgrade() -> None:
    op.drop_index("ix_segment_member_person", table_name="segment_member")
    op.drop_table("segment_member")
    op.drop_table("segment")
