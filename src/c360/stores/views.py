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
PERSON_FILTER = """
WHERE (r.id_type, r.id_value) IN (
        SELECT id_type, id_value FROM identity_map WHERE person_id = :person_id)
   OR r.user_id IN (
        SELECT id_value FROM identity_map
        WHERE person_id = :person_id AND id_type = 'customer_id')
"""

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

REALTIME_PROFILE = REALTIME_BY_PERSON.format(rows=REALTIME_ROWS.format(where=""))
REALTIME_FOR_PERSON = (
    REALTIME_BY_PERSON.format(rows=REALTIME_ROWS.format(where=PERSON_FILTER))
    + " AND person_id = :person_id"
)


def create_profile_view(conn: Connection, profile_columns: Sequence[str]) -> None:
    """(Re)create ``realtime_profile`` and ``profile`` for the current batch_profile columns."""
    features = "".join(f', b."{c}"' for c in profile_columns if c != "person_id")
    conn.execute(text("DROP VIEW IF EXISTS profile"))
    conn.execute(text("DROP VIEW IF EXISTS realtime_profile"))
    conn.execute(text(f"CREATE VIEW realtime_profile AS {REALTIME_PROFILE}"))
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
            """
        )
    )
