"""The serving layer's unified view: the golden record, the batch profile and real-time state.

Real-time state is kept per source identifier and resolved to a person here, at read time (the
stitching): a cookie's row belongs to the person of the customer its ``identity_stitch`` link
names (:mod:`c360.identity.stitching`), else to the person of its ``user_id`` (the customer id
it last identified as), else to the person of its own identifier in ``identity_map``. Orders the
speed layer saw resolve the same way, except that an order's own ``user_id`` (who was logged in
when it was placed) comes before the cookie's link. Support state (``realtime_support``, per
Zendesk user) resolves through its own identifier.
The same SQL backs the ``profile`` view (for BI tools) and the API's by-key lookup, which only
adds an indexed filter on the person's identifiers.

Read time: ``events_last_hour`` counts the stored event times after *now* - 1 h, where now is
the database clock for the view and the caller's ``now`` (``:now_ms``) for the API.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import Connection, text

from c360.batch import gold
from c360.speed import merge

if TYPE_CHECKING:
    from c360.stores.base import StoreDialect

# The person of a real-time state row ``r`` (id_type, id_value, user_id): its cookie's stitch
# link, else the customer it last identified as, else its own identifier.
RESOLVE_PERSON = "COALESCE(by_link.person_id, by_user.person_id, by_id.person_id)"
# An order row's user_id is who was logged in when it was placed: that comes first, then the
# cookie's link (an anonymous order of a cookie that identified later), then the identifier.
ORDER_PERSON = "COALESCE(by_user.person_id, by_link.person_id, by_id.person_id)"
RESOLVE_JOINS = """
LEFT JOIN identity_stitch link ON r.id_type = 'anonymous_id' AND link.anonymous_id = r.id_value
LEFT JOIN identity_map by_link
       ON by_link.id_type = 'customer_id' AND by_link.id_value = link.customer_id
LEFT JOIN identity_map by_user ON by_user.id_type = 'customer_id' AND by_user.id_value = r.user_id
LEFT JOIN identity_map by_id ON by_id.id_type = r.id_type AND by_id.id_value = r.id_value"""

# One row per (person, real-time identifier row) of {source} (realtime_state for the view, the
# rows reachable from one person for the API: person_rows). {recent} counts the row's events in
# the last hour (see events_last_hour_sql).
REALTIME_ROWS = f"""
SELECT {RESOLVE_PERSON} AS person_id, r.*,
       {{recent}} AS events_last_hour
FROM {{source}} r{RESOLVE_JOINS}
"""


def person_rows(table: str, key: tuple[str, ...], match: str = "= :person_id") -> str:
    """The rows of a real-time ``table`` (with id_type, id_value, user_id) reachable from one
    person (``:person_id``): by one of the person's identifiers, by the customer id they were
    logged in as, or as a cookie stitched to one of the person's customers. Each way is one
    indexed lookup driven by the person's few identifiers (``IN (subquery)``, which both
    planners probe the index with), kept as separate branches of a union: PostgreSQL plans an
    ``OR`` of them as a scan. Their keys (``key``: the table's primary key) are joined back;
    which rows the person really owns is decided after, by the resolution joins. ``match``
    is the condition on the person id (``IN (…)`` for several persons)."""
    columns = ", ".join(f"t.{name}" for name in key)
    reachable = f"""
        SELECT {columns} FROM {table} t WHERE (t.id_type, t.id_value) IN (
            SELECT id_type, id_value FROM identity_map WHERE person_id {match})
        UNION
        SELECT {columns} FROM {table} t WHERE t.user_id IN (
            SELECT id_value FROM identity_map
            WHERE person_id {match} AND id_type = 'customer_id')
        UNION
        SELECT {columns} FROM {table} t WHERE t.id_type = 'anonymous_id' AND t.id_value IN (
            SELECT s.anonymous_id FROM identity_stitch s
            JOIN identity_map m ON m.id_type = 'customer_id' AND m.id_value = s.customer_id
            WHERE m.person_id {match})"""
    on = " AND ".join(f"x.{name} = k.{name}" for name in key)
    return f"(SELECT x.* FROM {table} x JOIN ({reachable}) k ON {on})"


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

# Support state per person, through the Zendesk user ids the identity map gives them.
SUPPORT_BY_PERSON = """
SELECT m.person_id, CAST(SUM(s.open_ticket_count) AS BIGINT) AS open_ticket_count,
       MAX(s.last_event_at) AS last_support_event_at
FROM realtime_support s
JOIN identity_map m ON m.id_type = s.id_type AND m.id_value = s.id_value
{where}
GROUP BY m.person_id
"""
SUPPORT_PROFILE = SUPPORT_BY_PERSON.format(where="")
SUPPORT_FOR_PERSON = SUPPORT_BY_PERSON.format(where="WHERE m.person_id = :person_id")

# c360.speed.features.HOUR_MS: the window of "events in the last hour".
LAST_HOUR_MS = 3_600_000


def events_last_hour_sql(dialect: StoreDialect, now_ms: str) -> str:
    """How many of a realtime_state row's ``recent_event_times`` (a JSON list of epoch ms) fall
    after ``now_ms`` - 1 h, for an SQL expression ``now_ms``."""
    return dialect.count_json_greater("r.recent_event_times", f"({now_ms}) - {LAST_HOUR_MS}")


def realtime_profile_sql(dialect: StoreDialect) -> str:
    """Real-time features of every person, as of the database clock (the view's query)."""
    recent = events_last_hour_sql(dialect, dialect.now_ms())
    rows = REALTIME_ROWS.format(recent=recent, source="realtime_state")
    return REALTIME_BY_PERSON.format(rows=rows)


def realtime_for_persons_sql(dialect: StoreDialect, match: str) -> str:
    """Real-time features of the persons whose id meets ``match`` (``IN (…)``), as of
    ``:now_ms``."""
    recent = events_last_hour_sql(dialect, ":now_ms")
    rows = REALTIME_ROWS.format(
        recent=recent, source=person_rows("realtime_state", ("id_type", "id_value"), match)
    )
    return REALTIME_BY_PERSON.format(rows=rows) + f" AND person_id {match}"


def realtime_for_person_sql(dialect: StoreDialect) -> str:
    """Real-time features of one person (``:person_id``) as of ``:now_ms`` (the API's query)."""
    recent = events_last_hour_sql(dialect, ":now_ms")
    rows = REALTIME_ROWS.format(
        recent=recent, source=person_rows("realtime_state", ("id_type", "id_value"))
    )
    return REALTIME_BY_PERSON.format(rows=rows) + " AND person_id = :person_id"


# The Lambda merge: orders the speed layer saw at or after the serving batch's cutoff. The
# cutoff is that of the latest publish; before any publish, every order counts.
ORDER_DELTAS = f"""
SELECT person_id, count(*) AS orders_since_cutoff, sum(revenue) AS spend_since_cutoff,
       min(order_at) AS first_order_at, max(order_at) AS last_order_at
FROM (
  SELECT {ORDER_PERSON} AS person_id, r.order_at, r.revenue
  FROM {{source}} r{RESOLVE_JOINS}
  WHERE r.order_at >= COALESCE(
      (SELECT cutoff_at FROM batch_publish ORDER BY id DESC LIMIT 1), '1970-01-01')
) orders
WHERE person_id IS NOT NULL {{person}}
GROUP BY person_id
"""

ORDER_DELTAS_ALL = ORDER_DELTAS.format(source="realtime_order", person="")
ORDER_DELTAS_FOR_PERSON = ORDER_DELTAS.format(
    source=person_rows("realtime_order", ("order_id",)), person="AND person_id = :person_id"
)


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
