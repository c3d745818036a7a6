"""The golden record (``person``) and the wide ``batch_profile``, columns in catalogue order."""

from c360.batch.catalogue import CATALOGUE
from c360.contracts.compute import SqlStep

STEPS = (
    SqlStep(
        "person",
        """
        SELECT p.person_id, c.customer_id, coalesce(c.email, p.email) AS email,
               c.first_name, c.last_name, c.phone, c.city, c.country
        FROM (SELECT person_id, count(*) AS identifier_count,
                     min(CASE WHEN id_type = 'email' THEN id_value END) AS email,
                     min(CASE WHEN id_type = 'customer_id' THEN CAST(id_value AS BIGINT) END)
                         AS customer_id
              FROM identity_map GROUP BY person_id) p
        LEFT JOIN customers c ON c.customer_id = p.customer_id
        """,
    ),
    SqlStep(
        "identity_features",
        """
        SELECT person_id, count(*) AS identifier_count FROM identity_map GROUP BY person_id
        """,
    ),
    SqlStep(
        "profile_columns",
        """
        SELECT p.person_id,
               i.identifier_count,
               least(c.created_at, o.first_order_at, h.first_visit_at, t.first_ticket_at)
                   AS first_seen_at,
               CASE WHEN c.birth_date IS NULL THEN NULL
                    ELSE year(DATE {batch_date}) - year(c.birth_date)
                         - CASE WHEN month(DATE {batch_date}) * 100 + day(DATE {batch_date})
                                     < month(c.birth_date) * 100 + day(c.birth_date)
                                THEN 1 ELSE 0 END END AS age,
               CAST(c.created_at AS DATE) AS signup_date,
               c.marketing_opt_in,
               CAST(coalesce(o.total_lifetime_spend, 0) AS DECIMAL(18, 2)) AS total_lifetime_spend,
               coalesce(o.number_of_orders, 0) AS number_of_orders,
               CASE WHEN o.paid_orders > 0
                    THEN CAST(o.total_lifetime_spend AS DOUBLE) / o.paid_orders END
                   AS avg_order_value,
               o.first_purchase_date,
               o.last_purchase_date,
               date_diff('day', o.last_purchase_date, DATE {batch_date})
                   AS days_since_last_purchase,
               coalesce(o.orders_30d, 0) AS orders_30d,
               coalesce(o.orders_90d, 0) AS orders_90d,
               coalesce(o.orders_365d, 0) AS orders_365d,
               CAST(coalesce(o.spend_30d, 0) AS DECIMAL(18, 2)) AS spend_30d,
               CAST(coalesce(o.spend_90d, 0) AS DECIMAL(18, 2)) AS spend_90d,
               CAST(coalesce(o.spend_365d, 0) AS DECIMAL(18, 2)) AS spend_365d,
               f.favourite_category,
               CASE WHEN o.number_of_orders > 0
                    THEN CAST(o.refunded_orders AS DOUBLE) / o.number_of_orders END
                   AS refund_rate,
               r.rfm_recency, r.rfm_frequency, r.rfm_monetary,
               coalesce(s.sessions_30d, 0) AS sessions_30d,
               coalesce(w.page_views_30d, 0) AS page_views_30d,
               coalesce(w.product_views_30d, 0) AS product_views_30d,
               coalesce(w.cart_adds_30d, 0) AS cart_adds_30d,
               CASE WHEN s.sessions_30d > 0
                    THEN CAST(s.converted_sessions_30d AS DOUBLE) / s.sessions_30d END
                   AS conversion_rate_30d,
               h.last_visit_at,
               sub.email_subscription_status,
               CASE WHEN e.campaigns_received > 0
                    THEN CAST(e.campaigns_opened AS DOUBLE) / e.campaigns_received END
                   AS email_open_rate,
               CASE WHEN e.campaigns_received > 0
                    THEN CAST(e.campaigns_clicked AS DOUBLE) / e.campaigns_received END
                   AS email_click_rate,
               e.last_email_open_at,
               mc.marketing_consent, mc.marketing_consent_source, mc.marketing_consent_at,
               coalesce(t.support_ticket_count, 0) AS support_ticket_count,
               coalesce(t.support_tickets_90d, 0) AS support_tickets_90d,
               coalesce(t.open_support_tickets, 0) AS open_support_tickets,
               t.avg_resolution_hours,
               t.csat_score,
               CAST(NULL AS DOUBLE) AS churn_risk,
               CAST(NULL AS VARCHAR) AS churn_risk_band,
               CAST(NULL AS VARCHAR) AS model_version,
               CAST(NULL AS VARCHAR) AS churn_reason_1,
               CAST(NULL AS VARCHAR) AS churn_reason_2,
               CAST(NULL AS VARCHAR) AS churn_reason_3,
               DATE {batch_date} AS batch_date
        FROM person p
        LEFT JOIN identity_features i ON i.person_id = p.person_id
        -- an account opened after the cutoff is not yet there (a guest who signs up later)
        LEFT JOIN customers c ON c.customer_id = p.customer_id AND c.created_at < {cutoff}
        LEFT JOIN order_features o ON o.person_id = p.person_id
        LEFT JOIN favourite_category f ON f.person_id = p.person_id
        LEFT JOIN rfm r ON r.person_id = p.person_id
        LEFT JOIN web_features w ON w.person_id = p.person_id
        LEFT JOIN web_history h ON h.person_id = p.person_id
        LEFT JOIN session_features s ON s.person_id = p.person_id
        LEFT JOIN email_features e ON e.person_id = p.person_id
        LEFT JOIN subscription sub ON sub.person_id = p.person_id
        LEFT JOIN consent mc ON mc.person_id = p.person_id
        LEFT JOIN support_features t ON t.person_id = p.person_id
        """,
    ),
    # The catalogue's order and nothing else: the catalogue test keeps the two in step.
    SqlStep("batch_profile", f"SELECT {', '.join(f.name for f in CATALOGUE)} FROM profile_columns"),
)
