"""Baseline: the serving tables as c360 0.1.0 created them.

A frozen copy — later changes to :mod:`c360.contracts.serving` get revisions of their own. A
store 0.1.0 wrote (no ``alembic_version``) is stamped here after the tables and columns an older
build lacked are added (:func:`c360.stores.migrations.upgrade`).

Revision ID: 0001
Revises:
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

metadata = MetaData()

identity_map = Table(
    "identity_map",
    metadata,
    Column("id_type", String(32), primary_key=True),
    Column("id_value", String(320), primary_key=True),
    Column("person_id", String(40), nullable=False, index=True),
)

person = Table(
    "person",
    metadata,
    Column("person_id", String(40), primary_key=True),
    Column("customer_id", BigInteger),
    Column("email", String(320)),
    Column("first_name", String(100)),
    Column("last_name", String(100)),
    Column("phone", String(32)),
    Column("city", String(100)),
    Column("country", String(2)),
)

person_redirect = Table(
    "person_redirect",
    metadata,
    Column("retired_id", String(40), primary_key=True),
    Column("person_id", String(40), nullable=False, index=True),
    Column("since", Date, nullable=False),
)

identity_stitch = Table(
    "identity_stitch",
    metadata,
    Column("anonymous_id", String(320), primary_key=True),
    Column("customer_id", String(64), nullable=False, index=True),
    Column("linked_at", DateTime, nullable=False),
    Column(
        "status", String(16), nullable=False, default="provisional", server_default="provisional"
    ),
    Column("batch_person_id", String(40)),
    Column("flagged_at", DateTime),  # the cutoff of the latest batch that contradicted it
)

realtime_state = Table(
    "realtime_state",
    metadata,
    Column("id_type", String(32), primary_key=True),
    Column("id_value", String(320), primary_key=True),
    Column("user_id", String(64), index=True),
    Column("session_start", DateTime),
    Column("session_last_event_at", DateTime),
    Column("current_session_page_views", Integer, nullable=False, default=0),
    Column("current_session_product_views", Integer, nullable=False, default=0, server_default="0"),
    Column("last_event_at", DateTime),
    Column("last_event_type", String(64)),
    Column("events_total", BigInteger, nullable=False, default=0),
    Column("cart_id", String(64)),
    Column("cart_items", Integer, nullable=False, default=0, server_default="0"),
    Column("cart_value", Float, nullable=False, default=0.0, server_default="0"),
    Column("cart_lines", Text),
    Column("cart_since", DateTime),
    Column("cart_updated_at", DateTime),
    Column("recent_event_times", Text),
    Column("user_id_at", DateTime),
    Column("recent_message_ids", Text),
)

realtime_support = Table(
    "realtime_support",
    metadata,
    Column("id_type", String(32), primary_key=True),
    Column("id_value", String(320), primary_key=True),
    Column("open_ticket_count", Integer, nullable=False, default=0, server_default="0"),
    Column("last_event_at", DateTime),
    Column("events_total", BigInteger, nullable=False, default=0, server_default="0"),
    Column("tickets", Text),
    Column("recent_event_ids", Text),
)

realtime_order = Table(
    "realtime_order",
    metadata,
    Column("order_id", String(64), primary_key=True),
    Column("id_type", String(32), nullable=False),
    Column("id_value", String(320), nullable=False),
    Column("user_id", String(64)),
    Column("order_at", DateTime, nullable=False, index=True),
    Column("revenue", Float, nullable=False),
    Index("ix_realtime_order_identifier", "id_type", "id_value"),
)

stream_offsets = Table(
    "stream_offsets",
    metadata,
    Column("consumer_group", String(100), primary_key=True),
    Column("topic", String(100), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("next_offset", BigInteger, nullable=False),
)

dead_letter = Table(
    "dead_letter",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("topic", String(100), nullable=False),
    Column("partition", Integer),
    Column("offset", BigInteger),
    Column("reason", Text, nullable=False),
    Column("payload", Text, nullable=False),
    Column("received_at", DateTime, nullable=False),
)

batch_publish = Table(
    "batch_publish",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("batch_date", String(10), nullable=False),
    Column("cutoff_at", DateTime, nullable=False),
    Column("published_at", DateTime, nullable=False),
    Column("persons", BigInteger, nullable=False),
)

batch_run = Table(
    "batch_run",
    metadata,
    Column("batch_date", String(10), primary_key=True),
    Column("step", String(32), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("started_at", DateTime, nullable=False),
    Column("finished_at", DateTime),
    Column("seconds", Float),
    Column("rows", BigInteger),
    Column("detail", Text),
)


def upgrade() -> None:
    metadata.create_all(op.get_bind())


def downgrade() -> None:
    metadata.drop_all(op.get_bind())
