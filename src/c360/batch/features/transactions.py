"""Transactions from the orders DB: each order's latest version, placed before the cutoff."""

from c360.contracts.compute import SqlStep

STEPS = (
    SqlStep(
        "orders_by_person",
        """
        SELECT o.*, m.person_id,
               o.status <> 'cancelled' AS counts,
               o.status NOT IN ('cancelled', 'refunded') AS pays
        FROM orders o
        JOIN identity_map m
          ON m.id_type = CASE WHEN o.customer_id IS NULL THEN 'email' ELSE 'customer_id' END
         AND m.id_value = CASE WHEN o.customer_id IS NULL THEN lower(trim(o.email))
                               ELSE CAST(o.customer_id AS VARCHAR) END
        WHERE o.created_at < {cutoff}
        """,
    ),
    SqlStep(
        "order_features",
        """
        SELECT person_id,
               coalesce(sum(CASE WHEN pays THEN total END), 0) AS total_lifetime_spend,
               count(CASE WHEN counts THEN 1 END) AS number_of_orders,
               count(CASE WHEN pays THEN 1 END) AS paid_orders,
               count(CASE WHEN status = 'refunded' THEN 1 END) AS refunded_orders,
               min(CASE WHEN counts THEN created_at END) AS first_order_at,
               CAST(min(CASE WHEN counts THEN created_at END) AS DATE) AS first_purchase_date,
               CAST(max(CASE WHEN counts THEN created_at END) AS DATE) AS last_purchase_date,
               count(CASE WHEN counts AND created_at >= {since_30d} THEN 1 END) AS orders_30d,
               count(CASE WHEN counts AND created_at >= {since_90d} THEN 1 END) AS orders_90d,
               count(CASE WHEN counts AND created_at >= {since_365d} THEN 1 END) AS orders_365d,
               coalesce(sum(CASE WHEN pays AND created_at >= {since_30d} THEN total END), 0)
                   AS spend_30d,
               coalesce(sum(CASE WHEN pays AND created_at >= {since_90d} THEN total END), 0)
                   AS spend_90d,
               coalesce(sum(CASE WHEN pays AND created_at >= {since_365d} THEN total END), 0)
                   AS spend_365d
        FROM orders_by_person GROUP BY person_id
        """,
    ),
    SqlStep(
        "category_units",
        """
        SELECT o.person_id, p.category, sum(i.quantity) AS units
        FROM orders_by_person o
        JOIN order_items i ON i.order_id = o.order_id
        JOIN products p ON p.product_id = i.product_id
        WHERE o.counts
        GROUP BY o.person_id, p.category
        """,
    ),
    SqlStep(
        "favourite_category",
        """
        SELECT person_id, category AS favourite_category FROM (
            SELECT person_id, category,
                   row_number() OVER (PARTITION BY person_id ORDER BY units DESC, category)
                       AS preference
            FROM category_units
        ) ranked WHERE preference = 1
        """,
    ),
    SqlStep(
        "rfm",
        """
        SELECT person_id,
               ntile(5) OVER (ORDER BY last_purchase_date, person_id) AS rfm_recency,
               ntile(5) OVER (ORDER BY number_of_orders, person_id) AS rfm_frequency,
               ntile(5) OVER (ORDER BY total_lifetime_spend, person_id) AS rfm_monetary
        FROM order_features WHERE number_of_orders > 0
        """,
    ),
)
