"""The churn model's training set: point-in-time features, labels and the leak check.

For a snapshot date T the features are the daily batch's own SQL (:func:`c360.batch.features.
profile_steps`) with the cutoff at the end of T, over the whole lake: every feature step reads
facts before its cutoff only, so a new installation with years of history trains on day one.
The label is the future the features must not see: no order (other than a cancelled one) in
(T, T + horizon]. The population at T: persons with at least one order before the end of T.

*The leak check* proves the first sentence instead of trusting it: the same SQL runs again over
the lake **cut at the end of T** (:func:`cut_steps`: every fact after T removed, every later
status change undone), and any feature whose value differs for any person reads facts after T;
the build fails naming it. The identity graph is today's for both (a person's identifiers found
later decide whose facts are whose, not which facts exist), which is why ``identifier_count`` is
not a model feature; ``email_subscription_status`` is a current state the lake keeps no history
of, and is not one either.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from c360.batch import catalogue
from c360.contracts.compute import LakeInput, SqlStep
from c360.contracts.cutoff import cutoff
from c360.errors import DataError

POPULATION = "churn_population"

# Not model features: ids and dates of the row, the model's own outputs, and the features
# whose history the lake does not keep (see the module docstring): Mailchimp's member status is
# today's, so the marketing consent built from it is too (text features are left out by type).
NOT_FEATURES = frozenset(
    {
        "person_id",
        "batch_date",
        "email_subscription_status",
        "marketing_consent",
        "marketing_consent_at",
        "identifier_count",
        *catalogue.PREDICTIVE,
    }
)


class ChurnDataError(DataError):
    """The history cannot give a training set (too few snapshot dates or churners)."""


class LeakageError(DataError):
    """A feature's value at T depends on facts after T."""


# Model inputs derived from catalogue features of the same row (so exactly as point-in-time as
# they are): a person's own purchase rhythm, which recency alone cannot tell apart from churn.
# purchase_interval_days: mean days between orders (two or more); recency_over_interval: days
# since the last purchase in units of that interval; orders_per_day: orders over the days
# since the first purchase.
DERIVED = ("purchase_interval_days", "recency_over_interval", "orders_per_day")
_DERIVED_FROM = ("number_of_orders", "first_purchase_date", "last_purchase_date")


def candidate_features(enabled: tuple[str, ...]) -> tuple[str, ...]:
    """The catalogue's features a model may use, given the shop's sources (absent ones are
    all null and left out), and the derived ones."""
    absent = set(catalogue.absent_features(enabled))
    chosen = tuple(
        f.name
        for f in catalogue.CATALOGUE
        if f.name not in NOT_FEATURES | absent and not pa.types.is_string(f.type)
    )
    return (*chosen, *DERIVED)


def _derived(table: pa.Table) -> dict[str, np.ndarray]:
    base = feature_matrix(table, _DERIVED_FROM)
    orders, first, last = base[:, 0], base[:, 1], base[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        interval = np.where(orders >= 2, (first - last) / (orders - 1), np.nan)
        return {
            "purchase_interval_days": interval,
            "recency_over_interval": np.where(interval > 0, last / interval, np.nan),
            "orders_per_day": np.where(first > 0, orders / first, np.nan),
        }


def snapshot_dates(
    as_of: dt.date, first_order: dt.date, horizon_days: int, count: int, interval_days: int
) -> list[dt.date]:
    """``count`` dates ``interval_days`` apart, the latest the last whose horizon has passed by
    the end of ``as_of``, none before the first order; oldest first."""
    latest = as_of - dt.timedelta(days=horizon_days)
    dates = [latest - dt.timedelta(days=interval_days * k) for k in range(count)]
    usable = sorted(d for d in dates if d > first_order)
    if len(usable) < 2:
        raise ChurnDataError(
            f"the history allows {len(usable)} snapshot date(s) (orders from {first_order} to "
            f"{as_of}, horizon {horizon_days} days, {interval_days} days apart); at least 2 are "
            "needed for a temporal split (train on earlier dates, test on the latest): wait for "
            "more history or lower churn.horizon_days / churn.snapshot_interval_days"
        )
    return usable


def _literal(moment: dt.datetime) -> str:
    return f"TIMESTAMPTZ '{moment.isoformat()}+00:00'"


def label_step(snapshot: dt.date, horizon_days: int) -> SqlStep:
    """Persons of the population with ``churned`` = no order (each order's latest status, not
    cancelled) in (T, T + horizon]."""
    start = cutoff(snapshot)
    end = start + dt.timedelta(days=horizon_days)
    return SqlStep(
        POPULATION,
        f"""
        WITH future AS (
            SELECT DISTINCT m.person_id
            FROM (SELECT * FROM (
                      SELECT *, row_number() OVER (
                          PARTITION BY order_id ORDER BY updated_at DESC, dt DESC) AS version_rank
                      FROM orders_versions) WHERE version_rank = 1) o
            JOIN identity_map m
              ON m.id_type = CASE WHEN o.customer_id IS NULL THEN 'email' ELSE 'customer_id' END
             AND m.id_value = CASE WHEN o.customer_id IS NULL THEN lower(trim(o.email))
                                   ELSE CAST(o.customer_id AS VARCHAR) END
            WHERE o.status <> 'cancelled'
              AND o.created_at >= {_literal(start)} AND o.created_at < {_literal(end)}
        )
        SELECT b.*, f.person_id IS NULL AS churned
        FROM batch_profile b LEFT JOIN future f ON f.person_id = b.person_id
        WHERE b.number_of_orders > 0
        """,
    )


# The lake as it stood at the end of T: each input's facts after the cutoff removed and later
# status changes undone. Inputs are renamed ``<name>__lake``; these steps take their names.
_CUT = {
    "customers": "SELECT * FROM customers__lake WHERE created_at < {cutoff}",
    # a version changed after T: at T the order was placed (not yet cancelled or refunded)
    "orders_versions": """
        SELECT * REPLACE (
            CASE WHEN updated_at < {cutoff} THEN status ELSE 'placed' END AS status,
            CASE WHEN updated_at < {cutoff} THEN updated_at ELSE created_at END AS updated_at)
        FROM orders_versions__lake WHERE created_at < {cutoff}
    """,
    "order_items_versions": """
        SELECT * FROM order_items_versions__lake WHERE order_id IN (
            SELECT order_id FROM orders_versions__lake WHERE created_at < {cutoff})
    """,
    "mailchimp_members": """
        SELECT * FROM mailchimp_members__lake
        WHERE optin_time IS NULL OR try_cast(optin_time AS TIMESTAMPTZ) IS NULL
           OR try_cast(optin_time AS TIMESTAMPTZ) < {cutoff}
    """,
    "mailchimp_email_activity_versions": """
        WITH firsts AS (
            SELECT campaign_id, min(CAST(action.timestamp AS TIMESTAMPTZ)) AS first_at
            FROM (SELECT campaign_id, unnest(activity) AS action
                  FROM mailchimp_email_activity_versions__lake) GROUP BY campaign_id)
        SELECT a.* REPLACE (
            list_filter(a.activity, lambda x: CAST(x.timestamp AS TIMESTAMPTZ) < {cutoff})
                AS activity)
        FROM mailchimp_email_activity_versions__lake a
        LEFT JOIN firsts f ON f.campaign_id = a.campaign_id
        WHERE f.first_at IS NULL OR f.first_at < {cutoff}
    """,
    "zendesk_events": "SELECT * FROM zendesk_events__lake WHERE time < {cutoff}",
    # the raw payload (no feature reads it; most of the archive's bytes) is not copied: a feature
    # that came to read it would differ here and fail the check loudly, never pass it silently
    "events_clickstream": """
        SELECT * REPLACE (CAST(NULL AS VARCHAR) AS payload) FROM events_clickstream__lake
        WHERE event_time < {cutoff}
    """,
}


def cut_inputs(inputs: list[LakeInput]) -> list[LakeInput]:
    """``inputs`` renamed for :func:`cut_steps` (the ones it cuts)."""
    return [LakeInput(f"{i.name}__lake", i.urls, i.schema) if i.name in _CUT else i for i in inputs]


def cut_steps() -> tuple[SqlStep, ...]:
    """Steps that stand in for the lake inputs, cut at ``{cutoff}``."""
    return tuple(SqlStep(name, sql) for name, sql in _CUT.items())


def feature_matrix(table: pa.Table, features: tuple[str, ...]) -> np.ndarray:
    """The model's input: one float column per feature, null as NaN; dates and times as days
    before the row's batch date (its cutoff)."""
    ends = table.column("batch_date").cast(pa.timestamp("us", tz="UTC"))
    ends = pc.add(ends, pa.scalar(dt.timedelta(days=1), pa.duration("us")))
    derived = _derived(table) if any(name in DERIVED for name in features) else {}
    columns = []
    for name in features:
        if name in derived:
            columns.append(derived[name])
            continue
        column = table.column(name)
        kind = column.type
        if pa.types.is_date(kind) or pa.types.is_timestamp(kind):
            moments = column.cast(pa.timestamp("us", tz="UTC"))
            micros = pc.subtract(ends, moments).cast(pa.int64())
            values = pc.divide(micros.cast(pa.float64()), 86_400e6)
        elif (
            pa.types.is_boolean(kind)
            or pa.types.is_decimal(kind)
            or pa.types.is_integer(kind)
            or pa.types.is_floating(kind)
        ):
            values = column.cast(pa.float64())
        else:
            raise DataError(f"churn feature {name!r} has type {kind}, which is not numeric")
        columns.append(values.to_numpy(zero_copy_only=False))
    if not columns:
        return np.empty((table.num_rows, 0))
    return np.column_stack(columns).astype(np.float64)


@dataclass(frozen=True)
class Leak:
    feature: str
    persons: int
    example: str


def leaks(
    snapshot: dt.date, full: pa.Table, cut: pa.Table, features: tuple[str, ...]
) -> list[Leak]:
    """The features whose values differ between the whole lake and the lake cut at T, for the
    population at T (rows matched by person id)."""
    full = full.sort_by("person_id")
    cut = cut.sort_by("person_id")
    if full.column("person_id").to_pylist() != cut.column("person_id").to_pylist():
        missing = set(full.column("person_id").to_pylist()) ^ set(
            cut.column("person_id").to_pylist()
        )
        return [Leak("population", len(missing), f"{len(missing)} persons differ at {snapshot}")]
    a, b = feature_matrix(full, features), feature_matrix(cut, features)
    same = np.isclose(a, b, rtol=1e-9, atol=1e-6, equal_nan=True)
    found = []
    for j, name in enumerate(features):
        bad = np.flatnonzero(~same[:, j])
        if bad.size:
            i = int(bad[0])
            person = full.column("person_id")[i].as_py()
            example = f"{person}: {a[i, j]} with facts after {snapshot}, {b[i, j]} without"
            found.append(Leak(name, int(bad.size), example))
    return found


def raise_on_leaks(snapshot: dt.date, found: list[Leak]) -> None:
    if found:
        named = "; ".join(f"{x.feature} ({x.persons} persons, e.g. {x.example})" for x in found)
        raise LeakageError(
            f"features at snapshot {snapshot} read facts after the end of that day: {named}. "
            "Every feature step must keep to facts before {cutoff}"
        )
