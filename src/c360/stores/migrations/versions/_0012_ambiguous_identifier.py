"""``ambiguous_identifier``: the identifier values identity leaves out of ``identity_map``
because records of several persons carry them, with how many persons, so that a lookup by a
shared mailbox or a household phone is answered as ambiguous rather than unknown. Empty until
the next publish of a batch that computed it.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ambiguous_identifier",
        sa.Column("id_type", sa.String(32), primary_key=True),
        sa.Column("id_value", sa.String(320), primary_key=True),
        sa.Column("persons", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ambiguous_identifier")
