"""Real-time rows hold their person (``person_id`` on ``realtime_state``, ``realtime_support``
and ``realtime_order``), resolved when written rather than at every read
(:mod:`c360.stores.resolution`). The rows already stored are resolved here, by the same rules.
``identity_map``'s index by person covers the identifiers too (a profile read lists them in
order from the index alone).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from c360.stores import resolution

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_identity_map_person_id", table_name="identity_map")
    op.create_index("ix_identity_map_person", "identity_map", ["person_id", "id_type", "id_value"])
    for table in resolution.TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("person_id", sa.String(40)))
        op.create_index(f"ix_{table}_person_id", table, ["person_id"])
    resolution.resolve_all(op.get_bind())


def downgrade() -> None:
    for table in resolution.TABLES:
        op.drop_index(f"ix_{table}_person_id", table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("person_id")
    op.drop_index("ix_identity_map_person", table_name="identity_map")
    op.create_index("ix_identity_map_person_id", "identity_map", ["person_id"])
