"""Support from Zendesk ticket events, through the Zendesk users identity linked to a person."""

from c360.contracts.compute import SqlStep

STEPS = (
    SqlStep(
        "ticket_events",
        """
        SELECT e.ticket_id, e.type, e.time, upper(e.status) AS status, e.payload
        FROM zendesk_events e
        WHERE e.ticket_id IS NOT NULL AND e.time < {cutoff}
        """,
    ),
    SqlStep(
        "tickets",
        """
        SELECT c.ticket_id, c.requester_id, c.created_at, s.solved_at, l.status AS last_status,
               r.rating
        FROM (SELECT ticket_id, min(requester_id) AS requester_id, min(time) AS created_at
              FROM zendesk_events
              WHERE type = 'zen:event-type:ticket.created' AND time < {cutoff}
              GROUP BY ticket_id) c
        LEFT JOIN (SELECT ticket_id, min(time) AS solved_at FROM ticket_events
                   WHERE status = 'SOLVED' GROUP BY ticket_id) s ON s.ticket_id = c.ticket_id
        LEFT JOIN (SELECT ticket_id, status FROM (
                       SELECT ticket_id, status, row_number() OVER (
                           PARTITION BY ticket_id ORDER BY time DESC, type) AS recency
                       FROM ticket_events WHERE status IS NOT NULL) latest
                   WHERE recency = 1) l ON l.ticket_id = c.ticket_id
        LEFT JOIN (SELECT ticket_id, max(CAST(nullif(regexp_extract(
                           payload, 'Satisfaction rating: ([1-5])/5', 1), '') AS INTEGER))
                       AS rating
                   FROM ticket_events WHERE type = 'zen:event-type:ticket.comment_added'
                   GROUP BY ticket_id) r ON r.ticket_id = c.ticket_id
        """,
    ),
    SqlStep(
        "support_features",
        """
        SELECT m.person_id,
               count(*) AS support_ticket_count,
               count(CASE WHEN t.created_at >= {since_90d} THEN 1 END) AS support_tickets_90d,
               count(CASE WHEN coalesce(t.last_status, 'NEW') NOT IN ('SOLVED', 'CLOSED')
                          THEN 1 END) AS open_support_tickets,
               avg(CASE WHEN t.solved_at IS NOT NULL
                        THEN date_diff('second', t.created_at, t.solved_at) / 3600.0 END)
                   AS avg_resolution_hours,
               avg(t.rating) AS csat_score,
               min(t.created_at) AS first_ticket_at
        FROM tickets t
        JOIN identity_map m ON m.id_type = 'zendesk_user_id' AND m.id_value = t.requester_id
        GROUP BY m.person_id
        """,
    ),
)
