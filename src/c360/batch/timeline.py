"""The timeline's batch events: what a person did in the last ``timeline.days`` before the cutoff.

One table, ``timeline_event`` (:data:`c360.contracts.serving.timeline_event`), from the same lake
inputs as the features, published with them (``ServingStore.publish_batch``). Each row is one
event of one *identifier*, as the source knows it — the person is resolved when the timeline is
read, through the identity map, as real-time state is (:mod:`c360.stores.timeline`):

- ``order`` (source ``orders``, the orders DB; identifier: customer_id, else the order's email;
  occurred_at: created): reference the order id, status, amount the total, currency, quantity
  the items, title the first item's product;
- ``ticket`` (``zendesk``; zendesk_user_id, the requester; the event's time): type
  ``ticket.created``, ``ticket.status_changed``, ``ticket.comment_added``…, reference the ticket
  id, status the status the event set (created, status changed, deleted);
- ``email`` (``mailchimp``; email; the action's time): type ``open``, ``click``, ``bounce``…,
  reference the campaign id, title the clicked URL;
- ``web`` (``clickstream``, the event archive; anonymous_id; the session's start): type
  ``session``, ended_at its last event, page_views, product_views, quantity the products added
  to the cart.

Page views and product events are summarised per session (30 minutes of inactivity split a
cookie's events, as the web features do); single events are not published (a row per page view
would make this the largest table by far, and the agent's question is "when did they visit and
what did they look at"). Bounds: the window ``[cutoff - timeline.days, cutoff)`` and at most
``timeline.max_events_per_identifier`` rows per identifier, newest first. ``event_id`` is 16 hex
digits of an md5 of the event's natural key: unique per identifier (a source's repeated copy of
an event is published once), the same on every engine, and without personal data (it goes into
the API's cursors).

SQL in DuckDB's dialect, run on the configured engine; literals: ``{cutoff}``,
``{timeline_since}``, ``{timeline_margin}`` (30 minutes earlier, so a session running into the
window is recognised as such) and ``{timeline_max}``.
"""

from __future__ import annotations

from c360.contracts.compute import SqlStep

OUTPUT = "timeline_event"

_COLUMNS = (
    "id_type, id_value, occurred_at, event_id, source, kind, type, reference, status, amount, "
    "currency, quantity, title, ended_at, page_views, product_views"
)

STEPS = (
    SqlStep(
        "timeline_order_items",
        """
        SELECT order_id, items, first_product FROM (
            SELECT i.order_id,
                   sum(i.quantity) OVER (PARTITION BY i.order_id) AS items,
                   p.name AS first_product,
                   row_number() OVER (PARTITION BY i.order_id ORDER BY i.order_item_id)
                       AS line_number
            FROM order_items i
            LEFT JOIN products p ON p.product_id = i.product_id
        ) lines
        WHERE line_number = 1
        """,
    ),
    SqlStep(
        "timeline_orders",
        """
        SELECT CASE WHEN o.customer_id IS NOT NULL THEN 'customer_id' ELSE 'email' END
                   AS id_type,
               CASE WHEN o.customer_id IS NOT NULL THEN CAST(o.customer_id AS VARCHAR)
                    ELSE lower(trim(o.email)) END AS id_value,
               o.created_at AS occurred_at,
               substr(md5('order:' || CAST(o.order_id AS VARCHAR)), 1, 16) AS event_id,
               'orders' AS source, 'order' AS kind, 'order' AS type,
               substr(CAST(o.order_id AS VARCHAR), 1, 64) AS reference,
               substr(lower(o.status), 1, 32) AS status,
               CAST(o.total AS DOUBLE) AS amount, substr(o.currency, 1, 3) AS currency,
               CAST(i.items AS BIGINT) AS quantity, substr(i.first_product, 1, 200) AS title,
               CAST(NULL AS TIMESTAMPTZ) AS ended_at,
               CAST(NULL AS BIGINT) AS page_views, CAST(NULL AS BIGINT) AS product_views
        FROM orders o
        LEFT JOIN timeline_order_items i ON i.order_id = o.order_id
        WHERE o.created_at >= {timeline_since} AND o.created_at < {cutoff}
          AND (o.customer_id IS NOT NULL OR o.email IS NOT NULL)
        """,
    ),
    SqlStep(
        "timeline_tickets",
        """
        SELECT 'zendesk_user_id' AS id_type, e.requester_id AS id_value, e.time AS occurred_at,
               substr(md5('ticket:' || e.event_id), 1, 16) AS event_id,
               'zendesk' AS source, 'ticket' AS kind,
               substr(replace(e.type, 'zen:event-type:', ''), 1, 64) AS type,
               substr(e.ticket_id, 1, 64) AS reference,
               CASE replace(e.type, 'zen:event-type:', '')
                   WHEN 'ticket.created' THEN substr(coalesce(upper(e.status), 'NEW'), 1, 32)
                   WHEN 'ticket.status_changed' THEN substr(upper(e.status), 1, 32)
                   WHEN 'ticket.soft_deleted' THEN 'DELETED'
                   WHEN 'ticket.permanently_deleted' THEN 'DELETED'
               END AS status,
               CAST(NULL AS DOUBLE) AS amount, CAST(NULL AS VARCHAR) AS currency,
               CAST(NULL AS BIGINT) AS quantity, CAST(NULL AS VARCHAR) AS title,
               CAST(NULL AS TIMESTAMPTZ) AS ended_at,
               CAST(NULL AS BIGINT) AS page_views, CAST(NULL AS BIGINT) AS product_views
        FROM zendesk_events e
        WHERE e.ticket_id IS NOT NULL AND e.requester_id IS NOT NULL
          AND e.event_id IS NOT NULL AND e.type LIKE 'zen:event-type:ticket.%'
          AND e.time >= {timeline_since} AND e.time < {cutoff}
        """,
    ),
    SqlStep(
        "timeline_email_actions",
        """
        SELECT campaign_id, lower(trim(email_address)) AS email, action.action AS action,
               action.timestamp AS acted, CAST(action.timestamp AS TIMESTAMPTZ) AS acted_at,
               action.url AS url
        FROM (SELECT campaign_id, email_address, unnest(activity) AS action
              FROM mailchimp_email_activity) actions
        """,
    ),
    SqlStep(
        "timeline_email",
        """
        SELECT 'email' AS id_type, a.email AS id_value, a.acted_at AS occurred_at,
               substr(md5('email:' || a.campaign_id || ':' || a.email || ':' || a.action || ':'
                          || a.acted), 1, 16) AS event_id,
               'mailchimp' AS source, 'email' AS kind, substr(a.action, 1, 64) AS type,
               substr(a.campaign_id, 1, 64) AS reference, CAST(NULL AS VARCHAR) AS status,
               CAST(NULL AS DOUBLE) AS amount, CAST(NULL AS VARCHAR) AS currency,
               CAST(NULL AS BIGINT) AS quantity, substr(a.url, 1, 200) AS title,
               CAST(NULL AS TIMESTAMPTZ) AS ended_at,
               CAST(NULL AS BIGINT) AS page_views, CAST(NULL AS BIGINT) AS product_views
        FROM timeline_email_actions a
        WHERE a.email IS NOT NULL AND a.action IS NOT NULL AND a.campaign_id IS NOT NULL
          AND a.acted_at >= {timeline_since} AND a.acted_at < {cutoff}
        """,
    ),
    SqlStep(
        "timeline_web_marks",
        """
        SELECT anonymous_id, event_time, type, event, message_id,
               CASE WHEN lag(event_time) OVER (
                        PARTITION BY anonymous_id ORDER BY event_time, message_id) IS NULL
                     OR lag(event_time) OVER (
                        PARTITION BY anonymous_id ORDER BY event_time, message_id)
                        < event_time - INTERVAL 30 MINUTE
                    THEN 1 ELSE 0 END AS starts_session
        FROM events_clickstream
        WHERE anonymous_id IS NOT NULL AND message_id IS NOT NULL
          AND event_time >= {timeline_margin} AND event_time < {cutoff}
        """,
    ),
    SqlStep(
        "timeline_web_sessions",
        """
        SELECT anonymous_id, event_time, type, event, starts_session, message_id,
               sum(starts_session) OVER (
                   PARTITION BY anonymous_id ORDER BY event_time, message_id
                   ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS session_number
        FROM timeline_web_marks
        """,
    ),
    SqlStep(
        "timeline_web",
        """
        SELECT 'anonymous_id' AS id_type, anonymous_id AS id_value, min(event_time) AS occurred_at,
               substr(md5('session:' || anonymous_id || ':'
                          || max(CASE WHEN starts_session = 1 THEN message_id END)), 1, 16)
                   AS event_id,
               'clickstream' AS source, 'web' AS kind, 'session' AS type,
               CAST(NULL AS VARCHAR) AS reference, CAST(NULL AS VARCHAR) AS status,
               CAST(NULL AS DOUBLE) AS amount, CAST(NULL AS VARCHAR) AS currency,
               CAST(count(CASE WHEN event = 'Product Added' THEN 1 END) AS BIGINT) AS quantity,
               CAST(NULL AS VARCHAR) AS title, max(event_time) AS ended_at,
               CAST(count(CASE WHEN type = 'page' THEN 1 END) AS BIGINT) AS page_views,
               CAST(count(CASE WHEN event = 'Product Viewed' THEN 1 END) AS BIGINT)
                   AS product_views
        FROM timeline_web_sessions
        GROUP BY anonymous_id, session_number
        HAVING min(event_time) >= {timeline_since}
        """,
    ),
    SqlStep(
        "timeline_events",
        f"""
        SELECT {_COLUMNS} FROM (
            SELECT *, row_number() OVER (
                       PARTITION BY id_type, id_value, event_id
                       ORDER BY occurred_at DESC, type, reference, title) AS copy
            FROM (SELECT {_COLUMNS} FROM timeline_orders
                  UNION ALL SELECT {_COLUMNS} FROM timeline_tickets
                  UNION ALL SELECT {_COLUMNS} FROM timeline_email
                  UNION ALL SELECT {_COLUMNS} FROM timeline_web) events
            WHERE length(id_value) <= 320
        ) copies
        WHERE copy = 1
        """,
    ),
    SqlStep(
        OUTPUT,
        f"""
        SELECT {_COLUMNS} FROM (
            SELECT *, row_number() OVER (
                       PARTITION BY id_type, id_value ORDER BY occurred_at DESC, event_id DESC)
                       AS recency
            FROM timeline_events
        ) ranked
        WHERE recency <= {{timeline_max}}
        """,
    ),
)
