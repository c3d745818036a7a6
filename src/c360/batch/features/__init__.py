"""Batch features as SQL steps over the lake inputs, one module per feature group.

Inputs (views the engine registers): customers, products, orders and order_items (latest
versions), mailchimp_members, mailchimp_email_activity (latest per recipient), zendesk_events,
events_clickstream (the archived event log) and identity_map. Literals: ``{cutoff}`` (end of D,
UTC), ``{since_30d}``/``{since_90d}``/``{since_365d}`` (window starts) and ``{batch_date}``.
The columns and their meaning are in :mod:`c360.batch.catalogue`.
"""

from __future__ import annotations

import datetime as dt

from c360.batch import timeline
from c360.batch.features import consent, email, profile, support, transactions, web
from c360.batch.latest import LATEST_EMAIL_ACTIVITY, LATEST_ORDER_ITEMS, LATEST_ORDERS
from c360.config import TimelineSettings
from c360.contracts.compute import SqlStep
from c360.contracts.cutoff import cutoff
from c360.identity import records

FEATURES = (
    *transactions.STEPS,
    *web.STEPS,
    *email.STEPS,
    *support.STEPS,
    *profile.STEPS[:2],  # person, identity_features: consent reads person
    *consent.STEPS,
    *profile.STEPS[2:],
)

# The golden record, the wide profile, and the timeline's batch events (c360.batch.timeline),
# computed from the same inputs in the same run.
FEATURE_OUTPUTS = ("person", "batch_profile", timeline.OUTPUT)
DEFAULT_TIMELINE_DAYS = TimelineSettings().days
DEFAULT_TIMELINE_MAX_EVENTS = TimelineSettings().max_events_per_identifier


def _literal(moment: dt.datetime) -> str:
    return f"TIMESTAMPTZ '{moment.isoformat()}+00:00'"


def _fill(
    pipeline: tuple[SqlStep, ...],
    batch_date: dt.date,
    timeline_days: int = DEFAULT_TIMELINE_DAYS,
    timeline_max_events: int = DEFAULT_TIMELINE_MAX_EVENTS,
) -> list[SqlStep]:
    end = cutoff(batch_date)
    since = end - dt.timedelta(days=timeline_days)
    literals = {
        "cutoff": _literal(end),
        "since_30d": _literal(end - dt.timedelta(days=30)),
        # a session running into the 30-day window starts at most 30 minutes before it
        "session_margin": _literal(end - dt.timedelta(days=30, minutes=30)),
        "since_90d": _literal(end - dt.timedelta(days=90)),
        "since_365d": _literal(end - dt.timedelta(days=365)),
        "batch_date": f"'{batch_date.isoformat()}'",
        "timeline_since": _literal(since),
        "timeline_margin": _literal(since - dt.timedelta(minutes=30)),
        "timeline_max": str(int(timeline_max_events)),
    }
    return [SqlStep(step.name, step.sql.format(**literals)) for step in pipeline]


def identity_record_steps(batch_date: dt.date) -> list[SqlStep]:
    """SQL producing the identity step's raw records (:data:`c360.identity.records.STEPS`)."""
    return _fill((LATEST_ORDERS, *records.STEPS), batch_date)


def feature_steps(
    batch_date: dt.date,
    timeline_days: int = DEFAULT_TIMELINE_DAYS,
    timeline_max_events: int = DEFAULT_TIMELINE_MAX_EVENTS,
) -> list[SqlStep]:
    """SQL producing ``person``, ``batch_profile`` and ``timeline_event`` (the last
    ``timeline_days`` of events, at most ``timeline_max_events`` per identifier) from the raw
    inputs and identity_map."""
    latest = (LATEST_ORDERS, LATEST_ORDER_ITEMS, LATEST_EMAIL_ACTIVITY)
    return _fill(
        (*latest, *FEATURES, *timeline.STEPS), batch_date, timeline_days, timeline_max_events
    )


def profile_steps(batch_date: dt.date) -> list[SqlStep]:
    """Only the steps producing ``person`` and ``batch_profile`` (as :func:`feature_steps` runs
    them): what the churn model's training snapshots compute for a past date."""
    latest = (LATEST_ORDERS, LATEST_ORDER_ITEMS, LATEST_EMAIL_ACTIVITY)
    return _fill((*latest, *FEATURES), batch_date)


def fill(steps: tuple[SqlStep, ...], batch_date: dt.date) -> list[SqlStep]:
    """Other steps with the same literals as the features of ``batch_date`` (``{cutoff}``, …)."""
    return _fill(steps, batch_date)


def timeline_steps(
    batch_date: dt.date,
    timeline_days: int = DEFAULT_TIMELINE_DAYS,
    timeline_max_events: int = DEFAULT_TIMELINE_MAX_EVENTS,
) -> list[SqlStep]:
    """Only the steps producing ``timeline_event`` (as :func:`feature_steps` runs them)."""
    latest = (LATEST_ORDERS, LATEST_ORDER_ITEMS, LATEST_EMAIL_ACTIVITY)
    return _fill((*latest, *timeline.STEPS), batch_date, timeline_days, timeline_max_events)
