"""Erasure: ``erasure_receipt`` (the evidence), ``suppressed_identifier`` (the suppression
list, hashes only) and ``erasure_salt`` (the key of those hashes).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "erasure_receipt",
        sa.Column("erasure_id", sa.String(36), primary_key=True),
        sa.Column("erased_at", sa.DateTime, nullable=False),
        sa.Column("requested_by", sa.String(100), nullable=False),
        sa.Column("identifiers", sa.Text, nullable=False),
        sa.Column("stores", sa.Text, nullable=False),
    )
    op.create_table(
        "suppressed_identifier",
        sa.Column("hash", sa.String(64), primary_key=True),
        sa.Column("id_type", sa.String(32), nullable=False),
        sa.Column("erasure_id", sa.String(36), nullable=False),
        sa.Column("since", sa.DateTime, nullable=False),
    )
    op.create_table(
        "erasure_salt",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("salt", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("erasure_salt")
    op.drop_table("suppressed_identifier")
    op.drop_table("erasure_receipt")
