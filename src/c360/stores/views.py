"""The serving layer's unified view: the golden record, the batch profile and real-time state.

Real-time state is kept per source identifier and resolved to a person here, at read time: a row
belongs to the person of its own identifier (an anonymous_id) or, once the cookie identified, to
the person of its ``user_id`` (a customer_id) — that is what stitches anonymous activity.
The same SQL backs the ``profile`` view (for BI tools) and the API's by-key lookup, which only
adds an indexed filter on the person's identifiers.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, text

# One row per (person, real-time identifier row); {where} narrows it (empty for the view).
REALTIME_ROWS = """
SELECT COALESCE(by_user.person_id, by_id.person_id) AS person_id, r.*
FROM realtime_state r
LEFT JOIN identity_map by_user ON by_user.id_type = 'customer_id' AND by_user.id_value = r.user_id
LEFT JOIN identity_map by_id ON by_id.id_type = r.id_type AND by_id.id_value = r.id_value
{where}
"""

# Rows reachable from one person (:person_id) through indexed keys only.
PERSON_CONDITION = """(
    (r.id_type, r.id_value) IN (
        SELECT id_type, id_value FROM identity_map WHERE person_id = :person_id)
    OR r.user_id IN (
        SELECT id_value FROM identity_map
        WHERE person_id = :person_id AND id_type = 'customer_id'))"""
PERSON_FILTER = f"WHERE {PERSON_CONDITION}"

# The latest session wins for session features; counters add up.
REALTIME_BY_PERSON = """
SELECT person_id, current_session_page_views, session_start AS current_session_start,
       last_event_at, last_event_type, person_events_total AS events_total
FROM (
  SELECT rows.*,
         SUM(rows.events_total) OVER (PARTITION BY rows.person_id) AS person_events_total,
         ROW_NUMBER() OVER (PARTITION BY rows.person_id ORDER BY rows.last_event_at DESC)
             AS recency
  FROM ({rows}) rows
  WHERE rows.person_id IS NOT NULL
) ranked
WHERE recency = 1
"""

# The Lambda merge: orders the speed layer saw at or after the serving batch's cutoff. The
# cutoff is that of the latest publish; before any publish, every order counts.
ORDER_DELTAS = """
SELECT person_id, count(*) AS orders_since_cutoff, sum(revenue) AS spend_since_cutoff,
       max(order_at) AS last_order_at
FROM (
  SELECT COALESCE(by_user.person_id, by_id.person_id) AS person_id, r.order_at, r.revenue
  FROM realtime_order r
  LEFT JOIN identity_map by_user
         ON by_user.id_type = 'customer_id' AND by_user.id_value = r.user_id
  LEFT JOIN identity_map by_id ON by_id.id_type = r.id_type AND by_id.id_value = r.id_value
  WHERE r.order_at >= COALESCE(
      (SELECT cutoff_at FROM batch_publish ORDER BY id DESC LIMIT 1), '1970-01-01')
  {where}
) orders
WHERE person_id IS NOT NULL {person}
GROUP BY person_id
"""

# Additive batch features and the delta that completes each: (delta column, how to combine).
LAMBDA_MERGES = {
    "total_lifetime_spend": ("spend_since_cutoff", "add"),
    "number_of_orders": ("orders_since_cutoff", "add"),
    "last_purchase_date": ("last_order_at", "latest_date"),
}

REALTIME_PROFILE = REALTIME_BY_PERSON.format(rows=REALTIME_ROWS.format(where=""))
ORDER_DELTAS_ALL = ORDER_DELTAS.format(where="", person="")
ORDER_DELTAS_FOR_PERSON = ORDER_DELTAS.format(
    where=f"AND {PERSON_CONDITION}", person="AND person_id = :person_id"
)
REALTIME_FOR_PERSON = (
    REALTIME_BY_PERSON.format(rows=REALTIME_ROWS.format(where=PERSON_FILTER))
    + " AND person_id = :person_id"
)


def _merged(column: str, dialect: str) -> str:
    """The unified value of a batch feature: batch + the speed layer's delta after cutoff."""
    if column not in LAMBDA_MERGES:
        return f'b."{column}"'
    delta, how = LAMBDA_MERGES[column]
    if how == "add":
        return f'COALESCE(b."{column}", 0) + COALESCE(d.{delta}, 0) AS "{column}"'
    as_date = f"date(d.{delta})" if dialect == "sqlite" else f"CAST(d.{delta} AS DATE)"
    latest = "max" if dialect == "sqlite" else "GREATEST"
    return (
        f'CASE WHEN d.{delta} IS NULL THEN b."{column}" WHEN b."{column}" IS NULL THEN {as_date} '
        f'ELSE {latest}(b."{column}", {as_date}) END AS "{column}"'
    )


def create_profile_view(conn: Connection, profile_columns: Sequence[str]) -> None:
    """(Re)create ``realtime_profile``, ``order_deltas`` and ``profile`` (the unified view)."""
    dialect = conn.dialect.name
    features = "".join(", " + _merged(c, dialect) for c in profile_columns if c != "person_id")
    for view in ("profile", "realtime_profile", "order_deltas"):
        conn.execute(text(f"DROP VIEW IF EXISTS {view}"))
    conn.execute(text(f"CREATE VIEW realtime_profile AS {REALTIME_PROFILE}"))
    conn.execute(text(f"CREATE VIEW order_deltas AS {ORDER_DELTAS_ALL}"))
    conn.execute(
        text(
            f"""
            CREATE VIEW profile AS
            SELECT p.*{features},
                   rt.current_session_page_views, rt.current_session_start,
                   rt.last_event_at, rt.last_event_type
            FROM person p
            LEFT JOIN batch_profile b ON b.person_id = p.person_id
            LEFT JOIN realtime_profile rt ON rt.person_id = p.person_id
            LEFT JOIN order_deltas d ON d.person_id = p.person_id
            """
        )
    )
