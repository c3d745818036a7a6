"""Serving-store tables: one definition for SQLite and PostgreSQL.

``batch_profile`` is wide and grows with the feature catalogue: its feature columns are not listed
here but created from the published Arrow schema (see :meth:`ServingStore.publish_batch`). The
``profile`` view joining batch and real-time state is in :mod:`c360.stores.views`.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
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

metadata = MetaData()

identity_map = Table(
    "identity_map",
    metadata,
    Column("id_type", String(32), primary_key=True),
    Column("id_value", String(320), primary_key=True),
    Column("person_id", String(40), nullable=False),
    # A person's identifiers in order, from the index alone (every profile read lists them).
    Index("ix_identity_map_person", "person_id", "id_type", "id_value"),
)

# Identifier values identity left out of identity_map because records of several persons carry
# them (a shared family mailbox, a household phone: c360.identity.stable_ids), with how many
# persons: a lookup by one is answered "ambiguous", not "unknown". Replaced with identity_map
# in the batch publish (from the lake's identity/ambiguous).
ambiguous_identifier = Table(
    "ambiguous_identifier",
    metadata,
    Column("id_type", String(32), primary_key=True),
    Column("id_value", String(320), primary_key=True),
    Column("persons", Integer, nullable=False),
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

# Retired person ids (absorbed by a merge) and the live person each answers as: a lookup by a
# retired id serves the survivor. Cumulative and one hop (c360.identity.stable_ids); replaced
# with person and identity_map in the batch publish.
person_redirect = Table(
    "person_redirect",
    metadata,
    Column("retired_id", String(40), primary_key=True),
    Column("person_id", String(40), nullable=False, index=True),
    Column("since", Date, nullable=False),
)

# Real-time stitching (c360.identity.stitching): the customer account a cookie last identified as
# (identify, login, alias), written by the speed layer the moment it sees the event, so the
# cookie's activity shows on the customer's person before the next batch. The newest link per
# cookie wins. The batch publish reconciles: links the batch covers are dropped; links it
# contradicts (the batch puts the cookie in another person) stay, flagged "contradicted" with
# the batch's person for review.
RESOLVED = "resolved"  # Column.info key: the column is set by person resolution, not by writers


def _person_column() -> Column[str]:
    """A real-time row's person (c360.stores.resolution): NULL while no identity holds it."""
    return Column("person_id", String(40), index=True, info={RESOLVED: True})


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

# State per source identifier (an anonymous_id for the clickstream). user_id is the last customer
# id the cookie identified as: read after the cookie's identity_stitch link, it stitches
# anonymous activity to the customer. person_id is the person the row belongs to, resolved when
# the row is written and again when what it depends on changes (c360.stores.resolution), so a
# profile read is a lookup by person.
# The rules behind each column are in c360.speed.features.
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
    # The cart: product lines as JSON {product: [quantity, unit price]} and their totals.
    Column("cart_id", String(64)),
    Column("cart_items", Integer, nullable=False, default=0, server_default="0"),
    Column("cart_value", Float, nullable=False, default=0.0, server_default="0"),
    Column("cart_lines", Text),
    Column("cart_since", DateTime),
    Column("cart_updated_at", DateTime),
    # Event times (a JSON list of epoch milliseconds) in the hour up to the newest event: the
    # serving layer counts those after now - 1 h at read time (events in the last hour).
    Column("recent_event_times", Text),
    # Speed-layer bookkeeping: the event time that set user_id (a late identify must not
    # override a newer one) and the last messageIds seen (a JSON list; duplicates are dropped).
    Column("user_id_at", DateTime),
    Column("recent_message_ids", Text),
    # The last ended sessions, for the timeline (c360.speed.features; JSON [[start ms, last
    # event ms, page views, product views], …]); the current session is the columns above.
    Column("recent_sessions", Text),
    _person_column(),
)

# Support state per Zendesk user (id_type 'zendesk_user_id', the requester of ticket events),
# from the support topic; person_id through identity_map (as above). tickets is a JSON
# {ticket_id: [status, epoch ms of the event that set it]} (c360.speed.support).
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
    # The user's newest ticket events for the timeline (c360.speed.support: JSON [[epoch ms,
    # event id, type, ticket id, status], …]).
    Column("recent_ticket_events", Text),
    _person_column(),
)

# Orders the speed layer saw (Segment "Order Completed"), one row per order id. The Lambda
# merge adds those at or after the published batch cutoff to the batch's additive features
# (see c360.stores.views): when the next batch covers an order, its cutoff has moved past it.
realtime_order = Table(
    "realtime_order",
    metadata,
    Column("order_id", String(64), primary_key=True),
    Column("id_type", String(32), nullable=False),
    Column("id_value", String(320), nullable=False),
    Column("user_id", String(64)),
    Column("order_at", DateTime, nullable=False, index=True),
    Column("revenue", Float, nullable=False),
    _person_column(),
    Index("ix_realtime_order_identifier", "id_type", "id_value"),
    Index("ix_realtime_order_user_id", "user_id"),  # a person's orders by their customer ids
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
    # One of c360.contracts.reasons.CODES: what c360 status and the metrics count by.
    Column("reason_code", String(32), nullable=False, server_default="other"),
)

# One row per batch publish: which date's batch is serving and its cutoff (end of that date, UTC).
batch_publish = Table(
    "batch_publish",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("batch_date", String(10), nullable=False),
    Column("cutoff_at", DateTime, nullable=False),
    Column("published_at", DateTime, nullable=False),
    Column("persons", BigInteger, nullable=False),
)

# The daily pipeline's run log: one row per (batch date, step), rewritten by each attempt.
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

# Leases that keep work from running twice at once, one row per lease (``batch``: the daily
# batch, taken by ``c360 batch run|schedule`` and the Dagster assets). Times are epoch
# milliseconds of the database's clock, so hosts with skewed clocks agree on expiry.
batch_lock = Table(
    "batch_lock",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("acquired_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
)

# API keys of the Profile API (c360 keys create|list|revoke). The key itself is shown once, at
# creation: ``c360_<key_id>_<secret>``; only the SHA-256 of the secret is kept. ``scopes`` is
# space-separated (profiles:read, profiles:search, admin); ``rate_limit_per_s`` overrides the
# configured default for this key (null: the default).
api_key = Table(
    "api_key",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("name", String(100)),
    Column("scopes", Text, nullable=False),
    Column("secret_sha256", String(64), nullable=False),
    Column("rate_limit_per_s", Float),
    Column("created_at", DateTime, nullable=False),
    Column("revoked_at", DateTime),
)


# Byte-order comparison for the columns read by range (prefix search) or compared with values
# sorted in Python (the timeline's cursor): SQLite's BINARY already is; PostgreSQL's database
# collation may not be (en_US ignores punctuation at first), so these columns use "C".
def _ordered_text(length: int) -> String:
    return String(length).with_variant(String(length, collation="C"), "postgresql")


# Search terms of the published persons (c360.stores.search), replaced with them at each
# publish: kind 'name' holds each word of the golden record's first and last name, Unicode-
# folded (c360.identity.normalise.fold_text); kind 'email' each email identity_map gives the
# person (lookup form). Prefix search is a range scan of (kind, term); the second index finds a
# person's terms.
search_term = Table(
    "search_term",
    metadata,
    Column("kind", String(8), primary_key=True),
    Column("term", _ordered_text(320), primary_key=True),
    Column("person_id", _ordered_text(40), primary_key=True),
    Index("ix_search_term_person", "person_id", "kind", "term"),
)

# The timeline's batch events (c360.batch.timeline): orders, ticket events, email activity and
# web sessions of the last timeline.days before the cutoff, at most
# timeline.max_events_per_identifier per identifier, replaced at each publish. Keyed by the
# identifier the source knows (customer_id, else email, for orders; zendesk_user_id for tickets;
# email for email activity; anonymous_id for sessions), resolved to a person at read time like
# real-time state (c360.stores.timeline). event_id is 16 hex digits, unique per identifier: the
# tie-break of the timeline's (time, id) order. The columns after type are the event's summary;
# what each holds per kind is in c360.batch.timeline.
timeline_event = Table(
    "timeline_event",
    metadata,
    Column("id_type", String(32), primary_key=True),
    Column("id_value", String(320), primary_key=True),
    Column("occurred_at", DateTime, primary_key=True),
    Column("event_id", _ordered_text(16), primary_key=True),
    Column("source", String(16), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("type", String(64), nullable=False),
    Column("reference", String(64)),
    Column("status", String(32)),
    Column("amount", Float),
    Column("currency", String(3)),
    Column("quantity", Integer),
    Column("title", String(200)),
    Column("ended_at", DateTime),
    Column("page_views", Integer),
    Column("product_views", Integer),
)

BATCH_PROFILE = "batch_profile"

# Segments (c360.segments): audiences as boolean definitions over profile fields, checked when
# saved (the text is kept; the fields it read then are re-checked at each evaluation).
segment = Table(
    "segment",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("definition", Text, nullable=False),
    Column("description", String(500)),
    Column("created_at", DateTime, nullable=False),
    Column("evaluated_on", Date),  # batch date of the latest daily membership that evaluated it
)

# Segment membership as spells, computed by the daily pipeline's segments step on the batch
# engine: a person entered a segment on the batch date ``entered_on`` and left it on the batch
# date ``exited_on`` (null: still a member). Replaced at each segments publish from the lake's
# ``segments/segment_member/dt=D`` (the history: every day's spells are kept there).
segment_member = Table(
    "segment_member",
    metadata,
    Column("segment", String(64), primary_key=True),
    Column("person_id", String(40), primary_key=True),
    Column("entered_on", Date, primary_key=True),
    Column("exited_on", Date),
    Index("ix_segment_member_person", "person_id"),
)

# Real-time segment membership (c360.stores.live_segments): segments whose definition reads a
# real-time field, re-evaluated for the persons a speed-layer micro-batch changed, in the
# micro-batch's own transaction. One row per current member.
segment_live_member = Table(
    "segment_live_member",
    metadata,
    Column("segment", String(64), primary_key=True),
    Column("person_id", String(40), primary_key=True),
    Column("entered_at", DateTime, nullable=False),
    Index("ix_segment_live_member_person", "person_id"),
)

# The outbox of segment.entered / segment.exited events, written in the same transaction as the
# membership change (and so as the micro-batch's offsets): an event exists exactly once. The
# webhook dispatcher (c360.pipeline.webhooks) delivers it, keyed by event_id (the receiver's
# idempotency key): pending -> delivered | withheld (no marketing consent) | failed (gave up).
segment_event = Table(
    "segment_event",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("segment", String(64), nullable=False),
    Column("person_id", String(40), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("occurred_at", DateTime, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime, nullable=False),
    Column("finished_at", DateTime),
    Index("ix_segment_event_due", "status", "next_attempt_at"),
)

# Every webhook delivery attempt: its event, number, time, HTTP status (null: no answer) and
# the error's class (never a body or an address).
webhook_delivery = Table(
    "webhook_delivery",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, index=True),
    Column("attempt", Integer, nullable=False),
    Column("attempted_at", DateTime, nullable=False),
    Column("status_code", Integer),
    Column("error", String(200)),
    Column("succeeded", Boolean, nullable=False),
)

# Erasure (c360.stores.erasure, issue 18). The evidence of each erasure: when, what was asked,
# every store touched with its row and file counts, and the identifiers erased as keyed hashes
# (JSON) — never a value. Kept without personal data, so erasure never deletes it.
erasure_receipt = Table(
    "erasure_receipt",
    metadata,
    Column("erasure_id", String(36), primary_key=True),
    Column("erased_at", DateTime, nullable=False),
    Column("requested_by", String(100), nullable=False),
    Column("identifiers", Text, nullable=False),
    Column("stores", Text, nullable=False),
)

# The suppression list: the keyed hash of every erased identifier; the collector, the Zendesk
# webhook and ingestion drop what carries one (c360.privacy.suppression).
suppressed_identifier = Table(
    "suppressed_identifier",
    metadata,
    Column("hash", String(64), primary_key=True),
    Column("id_type", String(32), nullable=False),
    Column("erasure_id", String(36), nullable=False),
    Column("since", DateTime, nullable=False),
)

# The key of those hashes (HMAC-SHA256): made at random by the first erasure, one row.
# ``generation`` counts the additions to the suppression list: a speed-layer micro-batch
# computed against an older list is not committed (c360.pipeline.stream_worker).
erasure_salt = Table(
    "erasure_salt",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("salt", String(64), nullable=False),
    Column("generation", BigInteger, nullable=False, server_default="0"),
)

# Marketing-consent decisions that arrived since the batch (an admin's PUT, a Mailchimp
# unsubscribe webhook, a Segment identify's consent trait), one per identifier: the newest
# by ``decided_at`` is kept. At every exit a person's consent is the newest of these (through
# the identity map, or by person id) and the batch profile's (``marketing_consent_at``).
consent_decision = Table(
    "consent_decision",
    metadata,
    Column("id_type", String(32), primary_key=True),  # an identity type, or "person_id"
    Column("id_value", String(320), primary_key=True),
    Column("consent", Boolean, nullable=False),
    Column("decided_at", DateTime, nullable=False),
    Column("source", String(32), nullable=False),
    Column("recorded_at", DateTime, nullable=False),
)

# Who read whose profile: the key id (never the secret), the route template, the person and
# when. Written in batches by the API's audit buffer (c360.api.audit).
read_audit = Table(
    "read_audit",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("read_at", DateTime, nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("person_id", String(40), nullable=False),
    Column("route", String(100), nullable=False),
    Index("ix_read_audit_person", "person_id", "read_at"),
)
