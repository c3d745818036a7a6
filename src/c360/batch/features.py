"""Batch features (walking skeleton's first handful), as SQL steps over the lake inputs.

Inputs (views registered by the engine): customers, orders (shop snapshot), zendesk_events
(Zendesk webhook events up to the cutoff), mailchimp_members (CSV export) and
mailchimp_email_activity (API email activity). ``{cutoff}`` is the batch cutoff literal.

Definitions:
- total_lifetime_spend: sum of order totals, cancelled and refunded orders excluded;
- number_of_orders: orders placed and not cancelled (a refunded order was still an order);
- last_purchase_date: date of the latest order that was not cancelled;
- email_open_rate: campaigns opened / campaigns received (all the person's addresses);
- support_ticket_count: tickets the person requested (by any of their Zendesk users).
"""

from __future__ import annotations

import datetime as dt

from c360.batch.cutoff import cutoff
from c360.batch.inputs import LATEST_EMAIL_ACTIVITY, LATEST_ORDERS
from c360.engines.base import Step
from c360.identity import deterministic

IDENTITY_STAGING = (
    Step(
        "zendesk_users",
        """
        SELECT user_id, email, name FROM (
            SELECT user_id, email, name,
                   row_number() OVER (PARTITION BY user_id ORDER BY time DESC) AS latest
            FROM zendesk_events WHERE user_id IS NOT NULL AND type LIKE 'zen:event-type:user.%'
        ) WHERE latest = 1
        """,
    ),
)

FEATURE_STAGING = (
    Step(
        "zendesk_tickets",
        """
        SELECT ticket_id, any_value(requester_id) AS requester_id, min(time) AS created_at
        FROM zendesk_events WHERE type = 'zen:event-type:ticket.created'
        GROUP BY ticket_id
        """,
    ),
)

FEATURES = (
    Step(
        "orders_by_person",
        """
        SELECT o.*, m.person_id FROM orders o
        JOIN identity_map m
          ON m.id_type = CASE WHEN o.customer_id IS NULL THEN 'email' ELSE 'customer_id' END
         AND m.id_value = CASE WHEN o.customer_id IS NULL THEN lower(trim(o.email))
                               ELSE CAST(o.customer_id AS VARCHAR) END
        WHERE o.created_at < {cutoff}
        """,
    ),
    Step(
        "order_features",
        """
        SELECT person_id,
               coalesce(sum(total) FILTER (WHERE status NOT IN ('cancelled', 'refunded')), 0)
                   AS total_lifetime_spend,
               count(*) FILTER (WHERE status <> 'cancelled') AS number_of_orders,
               CAST(max(created_at) FILTER (WHERE status <> 'cancelled') AS DATE)
                   AS last_purchase_date
        FROM orders_by_person GROUP BY person_id
        """,
    ),
    Step(
        "email_actions",
        """
        SELECT campaign_id, lower(trim(email_address)) AS email, action.action AS action
        FROM (SELECT campaign_id, email_address, unnest(activity) AS action
              FROM mailchimp_email_activity)
        """,
    ),
    Step(
        "email_features",
        """
        SELECT m.person_id,
               count(DISTINCT a.campaign_id) AS campaigns_received,
               count(DISTINCT o.campaign_id) AS campaigns_opened
        FROM mailchimp_email_activity a
        JOIN identity_map m ON m.id_type = 'email' AND m.id_value = lower(trim(a.email_address))
        LEFT JOIN email_actions o
          ON o.campaign_id = a.campaign_id AND o.email = m.id_value AND o.action = 'open'
        GROUP BY m.person_id
        """,
    ),
    Step(
        "support_features",
        """
        SELECT m.person_id, count(DISTINCT t.ticket_id) AS support_ticket_count
        FROM zendesk_tickets t
        JOIN identity_map m ON m.id_type = 'zendesk_user_id' AND m.id_value = t.requester_id
        WHERE t.created_at < {cutoff}
        GROUP BY m.person_id
        """,
    ),
    Step(
        "person",
        """
        SELECT p.person_id, c.customer_id, coalesce(c.email, p.email) AS email,
               c.first_name, c.last_name, c.phone, c.city, c.country
        FROM (SELECT person_id, min(id_value) FILTER (WHERE id_type = 'email') AS email,
                     min(CASE WHEN id_type = 'customer_id' THEN CAST(id_value AS BIGINT) END)
                         AS customer_id
              FROM identity_map GROUP BY person_id) p
        LEFT JOIN customers c ON c.customer_id = p.customer_id
        """,
    ),
    Step(
        "batch_profile",
        """
        SELECT p.person_id,
               CAST(coalesce(o.total_lifetime_spend, 0) AS DECIMAL(18, 2))
                   AS total_lifetime_spend,
               coalesce(o.number_of_orders, 0) AS number_of_orders,
               o.last_purchase_date,
               CASE WHEN e.campaigns_received > 0
                    THEN e.campaigns_opened / e.campaigns_received END AS email_open_rate,
               coalesce(s.support_ticket_count, 0) AS support_ticket_count,
               DATE {batch_date} AS batch_date
        FROM person p
        LEFT JOIN order_features o USING (person_id)
        LEFT JOIN email_features e USING (person_id)
        LEFT JOIN support_features s USING (person_id)
        """,
    ),
)

FEATURE_OUTPUTS = ("person", "batch_profile")


def _fill(pipeline: tuple[Step, ...], batch_date: dt.date) -> list[Step]:
    literals = {
        "cutoff": f"TIMESTAMPTZ '{cutoff(batch_date).isoformat()}+00:00'",
        "batch_date": f"'{batch_date.isoformat()}'",
    }
    return [Step(step.name, step.sql.format(**literals)) for step in pipeline]


def identity_steps(batch_date: dt.date) -> list[Step]:
    """SQL producing ``identity_map`` from the raw inputs of D."""
    return _fill((LATEST_ORDERS, *IDENTITY_STAGING, *deterministic.STEPS), batch_date)


def feature_steps(batch_date: dt.date) -> list[Step]:
    """SQL producing ``person`` and ``batch_profile`` from the raw inputs and identity_map."""
    return _fill((LATEST_ORDERS, LATEST_EMAIL_ACTIVITY, *FEATURE_STAGING, *FEATURES), batch_date)
