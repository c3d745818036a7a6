"""Web behaviour from the archived clickstream, through the cookies identity linked to a person.

Sessions: a cookie's events split where 30 minutes pass without one (event time). Only the
30-day window (plus a 30-minute margin, so a session running into the window is recognised as
such) goes through the window functions; all-time facts are plain aggregates.
"""

from c360.contracts.compute import SqlStep

STEPS = (
    SqlStep(
        "web_events",
        """
        SELECT m.person_id, e.anonymous_id, e.event_time, e.type, e.event,
               CASE WHEN lag(e.event_time) OVER (
                        PARTITION BY e.anonymous_id ORDER BY e.event_time, e.message_id)
                        IS NULL
                     OR lag(e.event_time) OVER (
                        PARTITION BY e.anonymous_id ORDER BY e.event_time, e.message_id)
                        < e.event_time - INTERVAL 30 MINUTE
                    THEN 1 ELSE 0 END AS starts_session
        FROM events_clickstream e
        JOIN identity_map m ON m.id_type = 'anonymous_id' AND m.id_value = e.anonymous_id
        WHERE e.event_time < {cutoff} AND e.event_time >= {session_margin}
        """,
    ),
    SqlStep(
        "web_history",
        """
        SELECT m.person_id, max(e.event_time) AS last_visit_at, min(e.event_time) AS first_visit_at
        FROM events_clickstream e
        JOIN identity_map m ON m.id_type = 'anonymous_id' AND m.id_value = e.anonymous_id
        WHERE e.event_time < {cutoff}
        GROUP BY m.person_id
        """,
    ),
    SqlStep(
        "web_sessions",
        """
        SELECT person_id, anonymous_id, event_time, type, event, starts_session,
               sum(starts_session) OVER (
                   PARTITION BY anonymous_id ORDER BY event_time
                   ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS session_number
        FROM web_events
        """,
    ),
    SqlStep(
        "session_outcomes",
        """
        SELECT person_id, anonymous_id, session_number, min(event_time) AS started_at,
               max(CASE WHEN event = 'Order Completed' THEN 1 ELSE 0 END) AS converted
        FROM web_sessions GROUP BY person_id, anonymous_id, session_number
        """,
    ),
    SqlStep(
        "web_features",
        """
        SELECT e.person_id,
               count(CASE WHEN e.type = 'page' AND e.event_time >= {since_30d} THEN 1 END)
                   AS page_views_30d,
               count(CASE WHEN e.event = 'Product Viewed' AND e.event_time >= {since_30d}
                          THEN 1 END) AS product_views_30d,
               count(CASE WHEN e.event = 'Product Added' AND e.event_time >= {since_30d}
                          THEN 1 END) AS cart_adds_30d
        FROM web_events e GROUP BY e.person_id
        """,
    ),
    SqlStep(
        "session_features",
        """
        SELECT person_id, count(*) AS sessions_30d, sum(converted) AS converted_sessions_30d
        FROM session_outcomes WHERE started_at >= {since_30d}
        GROUP BY person_id
        """,
    ),
)
