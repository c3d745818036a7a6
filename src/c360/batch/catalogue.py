"""The feature catalogue: every column of ``batch_profile``, documented once.

The batch SQL (``batch/features.py``) must produce exactly these columns, in this order, with
these types (a test checks it); ``docs/features.md`` and the Profile API's OpenAPI schema are
generated from this list. All features are as of the batch cutoff (the end of date D, UTC) and
come from the lake only.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa


@dataclass(frozen=True)
class Feature:
    name: str
    type: pa.DataType
    group: str
    source: str
    description: str


def _f(name: str, type_: pa.DataType, group: str, source: str, description: str) -> Feature:
    return Feature(name, type_, group, source, description)


MONEY = pa.decimal128(18, 2)
TS = pa.timestamp("us", tz="UTC")
INT = pa.int64()
FLOAT = pa.float64()
DATE = pa.date32()
TEXT = pa.string()

CATALOGUE: tuple[Feature, ...] = (
    _f("person_id", TEXT, "identity", "identity", "Stable person id (p_ + 16 hex digits)."),
    _f(
        "identifier_count",
        INT,
        "identity",
        "identity",
        "Identifiers of any type linked to the person.",
    ),
    _f(
        "first_seen_at",
        TS,
        "identity",
        "orders DB, clickstream",
        "Earliest sign-up, order or web event.",
    ),
    # demographics
    _f(
        "age",
        INT,
        "demographics",
        "orders DB",
        "Age in whole years at the end of D (from birth date).",
    ),
    _f("signup_date", DATE, "demographics", "orders DB", "Date the customer account was created."),
    _f(
        "marketing_opt_in",
        pa.bool_(),
        "demographics",
        "orders DB",
        "Opted in to marketing at sign-up.",
    ),
    # transactions
    _f(
        "total_lifetime_spend",
        MONEY,
        "transactions",
        "orders DB",
        "Sum of order totals; cancelled and refunded orders excluded.",
    ),
    _f(
        "number_of_orders",
        INT,
        "transactions",
        "orders DB",
        "Orders not cancelled (a refunded order still counts as an order).",
    ),
    _f(
        "avg_order_value",
        FLOAT,
        "transactions",
        "orders DB",
        "Lifetime spend / orders neither cancelled nor refunded.",
    ),
    _f(
        "first_purchase_date",
        DATE,
        "transactions",
        "orders DB",
        "Date of the first order not cancelled.",
    ),
    _f(
        "last_purchase_date",
        DATE,
        "transactions",
        "orders DB",
        "Date of the latest order not cancelled.",
    ),
    _f(
        "days_since_last_purchase",
        INT,
        "transactions",
        "orders DB",
        "Days from the last purchase to D.",
    ),
    _f(
        "orders_30d",
        INT,
        "transactions",
        "orders DB",
        "Orders not cancelled in the 30 days up to the cutoff.",
    ),
    _f(
        "orders_90d",
        INT,
        "transactions",
        "orders DB",
        "Orders not cancelled in the 90 days up to the cutoff.",
    ),
    _f(
        "orders_365d",
        INT,
        "transactions",
        "orders DB",
        "Orders not cancelled in the 365 days up to the cutoff.",
    ),
    _f(
        "spend_30d",
        MONEY,
        "transactions",
        "orders DB",
        "Spend (as lifetime spend) in the last 30 days.",
    ),
    _f(
        "spend_90d",
        MONEY,
        "transactions",
        "orders DB",
        "Spend (as lifetime spend) in the last 90 days.",
    ),
    _f(
        "spend_365d",
        MONEY,
        "transactions",
        "orders DB",
        "Spend (as lifetime spend) in the last 365 days.",
    ),
    _f(
        "favourite_category",
        TEXT,
        "transactions",
        "orders DB",
        "Product category with the most units bought (orders not cancelled); ties by name.",
    ),
    _f(
        "refund_rate", FLOAT, "transactions", "orders DB", "Refunded orders / orders not cancelled."
    ),
    _f(
        "rfm_recency",
        INT,
        "transactions",
        "orders DB",
        "Recency quintile among buyers, 5 = most recent (ties by person id).",
    ),
    _f(
        "rfm_frequency",
        INT,
        "transactions",
        "orders DB",
        "Order-count quintile among buyers, 5 = most.",
    ),
    _f("rfm_monetary", INT, "transactions", "orders DB", "Spend quintile among buyers, 5 = most."),
    # web
    _f(
        "sessions_30d",
        INT,
        "web",
        "clickstream",
        "Sessions (30 minutes of inactivity split them) started in the last 30 days.",
    ),
    _f("page_views_30d", INT, "web", "clickstream", "Page calls in the last 30 days."),
    _f(
        "product_views_30d", INT, "web", "clickstream", "Product Viewed events in the last 30 days."
    ),
    _f("cart_adds_30d", INT, "web", "clickstream", "Product Added events in the last 30 days."),
    _f(
        "conversion_rate_30d",
        FLOAT,
        "web",
        "clickstream",
        "Sessions with an Order Completed / sessions, last 30 days.",
    ),
    _f("last_visit_at", TS, "web", "clickstream", "Time of the latest web event."),
    # email
    _f(
        "email_subscription_status",
        TEXT,
        "email",
        "Mailchimp",
        "subscribed if any of the person's addresses is, else unsubscribed, else cleaned.",
    ),
    _f(
        "email_open_rate",
        FLOAT,
        "email",
        "Mailchimp",
        "Campaigns opened / received, over all the person's addresses; null if never mailed.",
    ),
    _f("email_click_rate", FLOAT, "email", "Mailchimp", "Campaigns clicked / campaigns received."),
    _f("last_email_open_at", TS, "email", "Mailchimp", "Time of the latest open."),
    # consent
    _f(
        "marketing_consent",
        pa.bool_(),
        "consent",
        "orders DB, Mailchimp",
        "Consent to marketing by the newest fact: the customer's opt-in (as of the customer "
        "row's last change) or a Mailchimp member's status (subscribed: as of its opt-in; "
        "any other: as of the snapshot showing it); a tie is no; null (no fact) is no.",
    ),
    _f(
        "marketing_consent_source",
        TEXT,
        "consent",
        "orders DB, Mailchimp",
        "The fact marketing_consent comes from: orders DB opt-in, or Mailchimp <status>.",
    ),
    _f(
        "marketing_consent_at",
        TS,
        "consent",
        "orders DB, Mailchimp",
        "When that fact was recorded (UTC).",
    ),
    # support
    _f(
        "support_ticket_count",
        INT,
        "support",
        "Zendesk",
        "Tickets requested by any of the person's Zendesk users.",
    ),
    _f("support_tickets_90d", INT, "support", "Zendesk", "Tickets created in the last 90 days."),
    _f(
        "open_support_tickets",
        INT,
        "support",
        "Zendesk",
        "Tickets whose status at the cutoff is not SOLVED or CLOSED.",
    ),
    _f(
        "avg_resolution_hours",
        FLOAT,
        "support",
        "Zendesk",
        "Mean hours from creation to the first SOLVED.",
    ),
    _f("csat_score", FLOAT, "support", "Zendesk", "Mean satisfaction rating (1-5) given."),
    # predictive: written by the churn model's score step (c360.batch.churn), null until a model
    # is registered and for persons without an order (outside the model's population)
    _f(
        "churn_risk",
        FLOAT,
        "predictive",
        "churn model",
        "Probability (calibrated) of no order in the model's horizon after D.",
    ),
    _f(
        "churn_risk_band",
        TEXT,
        "predictive",
        "churn model",
        "low, medium or high, by churn.band_thresholds.",
    ),
    _f("model_version", TEXT, "predictive", "churn model", "The churn model that scored."),
    _f(
        "churn_reason_1",
        TEXT,
        "predictive",
        "churn model",
        "The feature that raises this person's risk most, with its value and effect.",
    ),
    _f("churn_reason_2", TEXT, "predictive", "churn model", "The second reason."),
    _f("churn_reason_3", TEXT, "predictive", "churn model", "The third reason."),
    _f("batch_date", DATE, "identity", "batch", "The batch date D these features are as of."),
)

# The source of each optional source's features (``sources.enabled`` names), by catalogue
# ``source``: with the source switched off, its features are missing (null), not zero.
OPTIONAL_SOURCES = {"clickstream": "clickstream", "mailchimp": "Mailchimp", "zendesk": "Zendesk"}
PREDICTIVE = tuple(f.name for f in CATALOGUE if f.group == "predictive")

BY_NAME = {feature.name: feature for feature in CATALOGUE}


def absent_features(enabled: tuple[str, ...]) -> tuple[str, ...]:
    """The features of the sources not in ``enabled`` (``sources.enabled``)."""
    absent = {label for name, label in OPTIONAL_SOURCES.items() if name not in enabled}
    return tuple(f.name for f in CATALOGUE if f.source in absent)


def schema() -> pa.Schema:
    return pa.schema([pa.field(f.name, f.type) for f in CATALOGUE])


def markdown() -> str:
    """``docs/features.md``: the catalogue as a table per group."""
    lines = [
        "# Feature catalogue",
        "",
        "Generated from `src/c360/batch/catalogue.py` (`c360 features` prints it); do not edit.",
        "Every feature is as of the batch cutoff (end of date D, UTC), computed from the lake.",
    ]
    for group in dict.fromkeys(f.group for f in CATALOGUE):
        lines += [
            "",
            f"## {group}",
            "",
            "| feature | type | source | meaning |",
            "| --- | --- | --- | --- |",
        ]
        lines += [
            f"| `{f.name}` | {f.type} | {f.source} | {f.description} |"
            for f in CATALOGUE
            if f.group == group
        ]
    return "\n".join(lines) + "\n"
