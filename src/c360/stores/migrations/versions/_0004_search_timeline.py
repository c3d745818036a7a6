"""Search and the timeline: ``search_term``, ``timeline_event``, and the speed layer's bounded
lists for it (``realtime_state.recent_sessions``, ``realtime_support.recent_ticket_events``).

Both tables are filled by the next batch publish; until then search and the timeline's batch
part answer nothing, which is what an empty store answers too. The new columns are nullable:
existing state rows read as having no recent events until the speed layer rewrites them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _ordered_text(length: int) -> sa.String:
    """Byte-order comparison on PostgreSQL too (see c360.contracts.serving)."""
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "search_term",
        sa.Column("kind", sa.String(8), primary_key=True),
        sa.Column("term", _ordered_text(320), primary_key=True),
        sa.Column("person_id", _ordered_text(40), primary_key=True),
    )
    op.create_index("ix_search_term_person", "search_term", ["person_id", "kind", "term"])
    op.create_table(
        "timeline_event",
        sa.Column("id_type", sa.String(32), primary_key=True),
        sa.Column("id_value", sa.String(320), primary_key=True),
        sa.Column("occurred_at", sa.DateTime, primary_key=True),
        sa.Column("event_id", _ordered_text(16), primary_key=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("reference", sa.String(64)),
        sa.Column("status", sa.String(32)),
        sa.Column("amount", sa.Float),
        sa.Column("currency", sa.String(3)),
        sa.Column("quantity", sa.Integer),
        sa.Column("title", sa.String(200)),
        sa.Column("ended_at", sa.DateTime),
        sa.Column("page_views", sa.Integer),
        sa.Column("product_views", sa.Integer),
    )
    with op.batch_alter_table("realtime_state") as table:
        table.add_column(sa.Column("recent_sessions", sa.Text))
    with op.batch_alter_table("realtime_support") as table:
        table.add_column(sa.Column("recent_ticket_events", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("realtime_support") as table:
        table.drop_column("recent_ticket_events")
    with op.batch_alter_table("realtime_state") as table:
        table.drop_column("recent_sessions")
    op.drop_table("timeline_event")
    op.drop_index("ix_search_term_person", table_name="search_term")
    op.drop_table("search_term")
