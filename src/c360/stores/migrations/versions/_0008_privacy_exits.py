"""Privacy at the exits: ``consent_decision`` (consent decided since the batch, newest wins)
and ``read_audit`` (who read whose profile).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consent_decision",
        sa.Column("id_type", sa.String(32), primary_key=True),
        sa.Column("id_value", sa.String(320), primary_key=True),
        sa.Column("consent", sa.Boolean, nullable=False),
        sa.Column("decided_at", sa.DateTime, nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("recorded_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "read_audit",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("read_at", sa.DateTime, nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("person_id", sa.String(40), nullable=False),
        sa.Column("route", sa.String(100), nullable=False),
    )
    op.create_index("ix_read_audit_person", "read_audit", ["person_id", "read_at"])


def downgrade() -> None:
    op.drop_index("ix_read_audit_person", table_name="read_audit")
    op.drop_table("read_audit")
    op.drop_table("consent_decision")
