"""The serving layer's unified view: the golden record, the batch profile and real-time state.

Real-time rows are kept per source identifier and hold the person they belong to, resolved
when they are written (:mod:`c360.stores.resolution`: a cookie's stitch link, the customer it
identified as, its own identifier). Per person, the rows are combined here: the latest session,
the latest cart, counters added up; orders since the serving batch's cutoff; support state.
The same SQL backs the ``profile`` view (for BI tools), the real-time segments and the API's
by-key lookup, which narrows it to one person (``person_id {match}``) and makes the real-time
picks in Python over that person's rows (:func:`realtime_of`, held to the view by a test).

Read time: ``events_last_hour`` counts the stored event times after *now* - 1 h, where now is
the database clock for the view and the caller's ``now`` (``:now_ms``) for the API.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, text

from c360.batch import gold
from c360.speed import merge

if TYPE_CHECKING:
    from c360.stores.base import StoreDialect

# Which persons a query reads: every person's rows (the views), one person's (the API), a few.
EVERY_PERSON = "IS NOT NULL"
ONE_PERSON = "= :person_id"

# One row per real-time identifier row of the persons ``{match}`` selects; {recent} counts the
# row's events in the last hour (see events_last_hour_sql).
REALTIME_ROWS = """
SELECT r.*, {recent} AS events_last_hour
FROM realtime_state r WHERE r.person_id {match}
"""


# Per person: the latest session wins for session and last-event features, the cart with the
# latest activity is the person's cart, counters add up.
REALTIME_BY_PERSON = """
SELECT person_id, current_session_page_views, current_session_product_views,
       session_start AS current_session_start, last_event_at, last_event_type,
       person_events_total AS events_total, person_events_last_hour AS events_last_hour,
       person_cart_items AS cart_items, person_cart_value AS cart_value
FROM (
  SELECT rows.*,
         CAST(SUM(rows.events_total) OVER (PARTITION BY rows.person_id) AS BIGINT)
             AS person_events_total,
         CAST(SUM(rows.events_last_hour) OVER (PARTITION BY rows.person_id) AS BIGINT)
             AS person_events_last_hour,
         FIRST_VALUE(rows.cart_items) OVER latest_cart AS person_cart_items,
         FIRST_VALUE(rows.cart_value) OVER latest_cart AS person_cart_value,
         ROW_NUMBER() OVER (
             PARTITION BY rows.person_id
             ORDER BY (rows.last_event_at IS NULL), rows.last_event_at DESC,
                      rows.id_type, rows.id_value) AS recency
  FROM ({rows}) rows
  WHERE rows.person_id IS NOT NULL
  WINDOW latest_cart AS (
      PARTITION BY rows.person_id
      ORDER BY (rows.cart_updated_at IS NULL), rows.cart_updated_at DESC,
               rows.id_type, rows.id_value)
) ranked
WHERE recency = 1
"""

# Support state per person, through the Zendesk users resolved to them.
SUPPORT_BY_PERSON = """
SELECT person_id, CAST(SUM(open_ticket_count) AS BIGINT) AS open_ticket_count,
       MAX(last_event_at) AS last_support_event_at
FROM realtime_support WHERE person_id {match}
GROUP BY person_id
"""
SUPPORT_PROFILE = SUPPORT_BY_PERSON.format(match=EVERY_PERSON)
SUPPORT_FOR_PERSON = SUPPORT_BY_PERSON.format(match=ONE_PERSON)

# c360.speed.features.HOUR_MS: the window of "events in the last hour".
LAST_HOUR_MS = 3_600_000


def events_last_hour_sql(dialect: StoreDialect, now_ms: str) -> str:
    """How many of a realtime_state row's ``recent_event_times`` (a JSON list of epoch ms) fall
    after ``now_ms`` - 1 h, for an SQL expression ``now_ms``."""
    return dialect.count_json_greater("r.recent_event_times", f"({now_ms}) - {LAST_HOUR_MS}")


def realtime_by_person_sql(dialect: StoreDialect, match: str, now_ms: str = ":now_ms") -> str:
    """Real-time features of the persons whose id meets ``match`` (``= :person_id``,
    ``IN (…)``, ``IS NOT NULL``), as of ``now_ms`` (an SQL expression, epoch ms)."""
    rows = REALTIME_ROWS.format(recent=events_last_hour_sql(dialect, now_ms), match=match)
    return REALTIME_BY_PERSON.format(rows=rows)


def realtime_profile_sql(dialect: StoreDialect) -> str:
    """Real-time features of every person, as of the database clock (the view's query)."""
    return realtime_by_person_sql(dialect, EVERY_PERSON, dialect.now_ms())


def realtime_for_persons_sql(dialect: StoreDialect, match: str) -> str:
    """Real-time features of the persons whose id meets ``match``, as of ``:now_ms``."""
    return realtime_by_person_sql(dialect, match)


# One person's real-time rows as the API reads them (``:person_id``, as of ``:now_ms``), to be
# combined by :func:`realtime_of`: the columns its picks need, each row read once by the index on
# person_id. Picking in SQL (the windows, or an ORDER BY … LIMIT 1 per pick) read the rows three
# times and sorted twice: two thirds of SQLite's work in the API's hot read, measured.
REALTIME_ROW_COLUMNS = (
    "id_type", "id_value", "current_session_page_views", "current_session_product_views",
    "session_start", "last_event_at", "last_event_type", "events_total", "cart_updated_at",
    "cart_items", "cart_value",
)  # fmt: skip


def realtime_row_columns_sql(dialect: StoreDialect) -> str:
    """The select list of one person's real-time rows (realtime_state as ``r``):
    :data:`REALTIME_ROW_COLUMNS` and ``events_last_hour`` as of ``:now_ms``."""
    columns = ", ".join(f"r.{name}" for name in REALTIME_ROW_COLUMNS)
    return f"{columns}, {events_last_hour_sql(dialect, ':now_ms')} AS events_last_hour"


def realtime_rows_sql(dialect: StoreDialect) -> str:
    """One person's (``:person_id``) real-time rows, for :func:`realtime_of`."""
    return (
        f"SELECT {realtime_row_columns_sql(dialect)} FROM realtime_state r"
        " WHERE r.person_id = :person_id"
    )


def realtime_of(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One person's real-time features from their rows (:func:`realtime_rows_sql`, times as
    Python values): :data:`REALTIME_BY_PERSON`'s picks — the latest session's row, the latest
    cart's row, each time's ties (and rows without one, last) decided by the identifier, as its
    windows' ORDER BY — held to them by the tests of the view against the API. Without the
    person's id; empty without rows."""
    if not rows:
        return {}
    session, cart = _latest(rows, "last_event_at"), _latest(rows, "cart_updated_at")
    return {
        "current_session_page_views": session["current_session_page_views"],
        "current_session_product_views": session["current_session_product_views"],
        "current_session_start": session["session_start"],
        "last_event_at": session["last_event_at"],
        "last_event_type": session["last_event_type"],
        "events_total": sum(row["events_total"] for row in rows),
        "events_last_hour": sum(row["events_last_hour"] for row in rows),
        "cart_items": cart["cart_items"],
        "cart_value": cart["cart_value"],
    }


def _latest(rows: Sequence[Mapping[str, Any]], time: str) -> Mapping[str, Any]:
    """The row with the latest ``time``; among rows with the same (or none), the first by
    identifier (codepoint order: SQLite's, and PostgreSQL's in a C collation)."""
    timed = [row for row in rows if row[time] is not None]
    if timed:
        latest = max(row[time] for row in timed)
        rows = [row for row in timed if row[time] == latest]
    return min(rows, key=lambda row: (row["id_type"], row["id_value"]))


# The Lambda merge: orders the speed layer saw at or after the serving batch's cutoff. The
# cutoff is that of the latest publish; before any publish, every order counts.
ORDER_DELTAS = """
SELECT person_id, count(*) AS orders_since_cutoff, sum(revenue) AS spend_since_cutoff,
       min(order_at) AS first_order_at, max(order_at) AS last_order_at
FROM realtime_order
WHERE person_id {match} AND order_at >= COALESCE(
    (SELECT cutoff_at FROM batch_publish ORDER BY id DESC LIMIT 1), '1970-01-01')
GROUP BY person_id
"""

ORDER_DELTAS_ALL = ORDER_DELTAS.format(match=EVERY_PERSON)
ORDER_DELTAS_FOR_PERSON = ORDER_DELTAS.format(match=ONE_PERSON)


# Where the view finds each fact of c360.speed.merge: d = order_deltas, rt = realtime_profile,
# sp = support_profile.
_FACTS = {
    "orders_since_cutoff": "d.orders_since_cutoff",
    "spend_since_cutoff": "d.spend_since_cutoff",
    "first_order_at": "d.first_order_at",
    "last_order_at": "d.last_order_at",
    "last_event_at": "rt.last_event_at",
    "open_ticket_count": "COALESCE(sp.open_ticket_count, 0)",
}
_HAS_SUPPORT_STATE = "sp.person_id IS NOT NULL"


def merged_columns(dialect: StoreDialect, profile_columns: Sequence[str]) -> dict[str, str]:
    """Each batch column's SQL in the unified view: the rules of :mod:`c360.speed.merge`."""
    exprs = {c: f'b."{c}"' for c in profile_columns if c != "person_id"}
    for rule in merge.RULES:
        if rule.feature in exprs:
            exprs[rule.feature] = _rule_sql(rule, exprs, dialect)
    return exprs


def _rule_sql(rule: merge.Merge, exprs: dict[str, str], dialect: StoreDialect) -> str:
    batch = exprs[rule.feature]
    fact = _FACTS.get(rule.fact, "")
    new_orders = _FACTS["orders_since_cutoff"]
    match rule.rule:
        case merge.Rule.ADD:
            return (
                f"CASE WHEN COALESCE({fact}, 0) = 0 THEN {batch} "
                f"ELSE COALESCE({batch}, 0) + {fact} END"
            )
        case merge.Rule.EARLIEST | merge.Rule.LATEST:
            as_date = dialect.to_date(fact)
            pick = dialect.earlier if rule.rule is merge.Rule.EARLIEST else dialect.later
            return (
                f"CASE WHEN {fact} IS NULL THEN {batch} WHEN {batch} IS NULL THEN {as_date} "
                f"ELSE {pick(batch, as_date)} END"
            )
        case merge.Rule.LATEST_TIME:
            return (
                f"CASE WHEN {fact} IS NULL THEN {batch} WHEN {batch} IS NULL THEN {fact} "
                f"ELSE {dialect.later(batch, fact)} END"
            )
        case merge.Rule.AVERAGE:
            spend, average = 'b."total_lifetime_spend"', batch
            non_refunded = f"ROUND(COALESCE({spend} / NULLIF({average}, 0), 0))"
            return (
                f"CASE WHEN COALESCE({new_orders}, 0) = 0 THEN {batch} "
                f"ELSE ({exprs[merge.SPEND]}) / ({non_refunded} + {new_orders}) END"
            )
        case merge.Rule.SHARE:
            orders = f'COALESCE(b."{merge.ORDERS}", 0)'
            return (
                f"CASE WHEN COALESCE({new_orders}, 0) = 0 THEN {batch} "
                f"ELSE ROUND(COALESCE({batch}, 0) * {orders}) / ({orders} + {new_orders}) END"
            )
        case merge.Rule.DAYS_SINCE:
            return dialect.days_to_today(exprs[rule.fact])
        case merge.Rule.LIVE:
            return f"CASE WHEN {_HAS_SUPPORT_STATE} THEN {fact} ELSE {batch} END"
        case merge.Rule.AT_LEAST:
            floor = exprs[rule.fact]
            return (
                f"CASE WHEN ({floor}) IS NULL THEN {batch} "
                f"WHEN {batch} IS NULL OR {batch} < ({floor}) THEN ({floor}) ELSE {batch} END"
            )
    raise AssertionError(f"unknown rule {rule.rule}")


def create_profile_view(
    conn: Connection, dialect: StoreDialect, profile_columns: Sequence[str]
) -> None:
    """(Re)create ``realtime_profile``, ``support_profile``, ``order_deltas`` and ``profile``
    (the unified view)."""
    merged = merged_columns(dialect, profile_columns)
    features = "".join(f', {sql} AS "{column}"' for column, sql in merged.items())
    for view in ("profile", "realtime_profile", "support_profile", "order_deltas"):
        conn.execute(text(f"DROP VIEW IF EXISTS {view}"))
    conn.execute(text(f"CREATE VIEW realtime_profile AS {realtime_profile_sql(dialect)}"))
    conn.execute(text(f"CREATE VIEW support_profile AS {SUPPORT_PROFILE}"))
    conn.execute(text(f"CREATE VIEW order_deltas AS {ORDER_DELTAS_ALL}"))
    open_tickets = merged.get("open_support_tickets", f"{_FACTS['open_ticket_count']}")
    conn.execute(
        text(
            f"""
            CREATE VIEW profile AS
            SELECT p.*{features},
                   rt.current_session_page_views, rt.current_session_product_views,
                   rt.current_session_start, rt.last_event_at, rt.last_event_type,
                   rt.events_last_hour, rt.cart_items, rt.cart_value,
                   COALESCE(sp.open_ticket_count, 0) AS open_ticket_count,
                   CASE WHEN ({open_tickets}) > 0 THEN TRUE ELSE FALSE END
                       AS has_open_support_ticket,
                   d.orders_since_cutoff, d.spend_since_cutoff
            FROM person p
            LEFT JOIN batch_profile b ON b.person_id = p.person_id
            LEFT JOIN realtime_profile rt ON rt.person_id = p.person_id
            LEFT JOIN support_profile sp ON sp.person_id = p.person_id
            LEFT JOIN order_deltas d ON d.person_id = p.person_id
            """
        )
    )


# The BI views (c360.batch.gold, docs/bi_tables.md): plain names and columns over the published
# tables, so a BI tool reads the serving batch without c360 code.
_BI_VIEWS = ("bi_profile", "bi_segment_member", "bi_segment", "bi_churn_score")


def create_bi_views(conn: Connection, profile_columns: Sequence[str]) -> None:
    """(Re)create the ``bi_`` views for a batch_profile with ``profile_columns``."""
    for view in _BI_VIEWS:
        conn.execute(text(f"DROP VIEW IF EXISTS {view}"))
    person = ", ".join(f'p."{name}"' for name in gold.PERSON_NAMES)
    features = "".join(f', b."{name}"' for name in profile_columns if name not in gold.PERSON_NAMES)
    conn.execute(
        text(
            f"CREATE VIEW bi_profile AS SELECT {person}{features} FROM person p "
            "LEFT JOIN batch_profile b ON b.person_id = p.person_id"
        )
    )
    conn.execute(
        text(
            "CREATE VIEW bi_segment_member AS SELECT segment, person_id, entered_on, exited_on, "
            "CASE WHEN exited_on IS NULL THEN TRUE ELSE FALSE END AS is_member "
            "FROM segment_member"
        )
    )
    conn.execute(
        text(
            "CREATE VIEW bi_segment AS "
            "SELECT name, definition, description, created_at FROM segment"
        )
    )
    churn = [name for name in profile_columns if name.startswith(gold.CHURN_PREFIX)]
    if churn:
        columns = ", ".join(f'"{name}"' for name in churn)
        scored = " OR ".join(f'"{name}" IS NOT NULL' for name in churn)
        dated = ", batch_date" if "batch_date" in profile_columns else ""
        conn.execute(
            text(
                f"CREATE VIEW bi_churn_score AS SELECT person_id{dated}, {columns} "
                f"FROM batch_profile WHERE {scored}"
            )
        )
