"""Deterministic identity (walking skeleton): shared normalised email and customer_id.

Every identifier a source carries becomes a row of ``identity_map`` (id_type, id_value,
person_id). A person is anchored on a customer account when any of its emails belongs to one
(the account's own email or an email the customer ordered under), else on the email itself
(a guest or newsletter-only person). person_id = "p_" + the first 16 hex digits of
md5(anchor): deterministic, engine-independent (DuckDB and Spark compute md5 alike).
"""

from __future__ import annotations

from c360.engines.base import Step

NORMALISE_EMAIL = "lower(trim({}))"


def _email(column: str) -> str:
    return NORMALISE_EMAIL.format(column)


STEPS = (
    # A cookie that identified (identify, alias, or any message with a userId) belongs to that
    # customer; one seen with several customers (a shared device) goes to the first one
    # (over-merge guards come with the identity issue). Anonymous-only cookies make no person.
    Step(
        "cookie_owner",
        """
        SELECT anonymous_id, min(TRY_CAST(user_id AS BIGINT)) AS customer_id
        FROM events_clickstream
        WHERE anonymous_id IS NOT NULL AND TRY_CAST(user_id AS BIGINT) IS NOT NULL
        GROUP BY anonymous_id
        """,
    ),
    Step(
        "email_links",
        f"""
        SELECT DISTINCT {_email("email")} AS email, customer_id FROM customers
        WHERE email IS NOT NULL
        UNION
        SELECT DISTINCT {_email("email")} AS email, customer_id FROM orders
        WHERE customer_id IS NOT NULL AND email IS NOT NULL
        """,
    ),
    # An email used by several accounts goes to the oldest account (over-merge guards: later).
    Step(
        "email_owner",
        "SELECT email, min(customer_id) AS customer_id FROM email_links GROUP BY email",
    ),
    Step(
        "identifier_emails",
        f"""
        SELECT 'customer_id' AS id_type, CAST(customer_id AS VARCHAR) AS id_value,
               NULL AS email, customer_id FROM customers
        UNION ALL
        SELECT DISTINCT 'email', {_email("email")}, {_email("email")}, NULL FROM orders
        WHERE email IS NOT NULL
        UNION ALL
        SELECT DISTINCT 'email', {_email("email")}, {_email("email")}, NULL FROM customers
        WHERE email IS NOT NULL
        UNION ALL
        SELECT DISTINCT 'email', {_email("email")}, {_email("email")}, NULL FROM zendesk_users
        WHERE email IS NOT NULL
        UNION ALL
        SELECT DISTINCT 'email', {_email("email_address")}, {_email("email_address")}, NULL
        FROM mailchimp_members WHERE email_address IS NOT NULL
        UNION ALL
        SELECT DISTINCT 'zendesk_user_id', user_id, {_email("email")}, NULL FROM zendesk_users
        WHERE email IS NOT NULL
        UNION ALL
        SELECT DISTINCT 'mailchimp_id', euid, {_email("email_address")}, NULL
        FROM mailchimp_members WHERE euid IS NOT NULL AND email_address IS NOT NULL
        UNION ALL
        SELECT 'anonymous_id', anonymous_id, NULL, customer_id FROM cookie_owner
        """,
    ),
    Step(
        "identity_map",
        """
        SELECT DISTINCT i.id_type, i.id_value,
               'p_' || substr(md5(CASE
                   WHEN coalesce(i.customer_id, o.customer_id) IS NOT NULL
                   THEN 'customer_id:' || CAST(coalesce(i.customer_id, o.customer_id) AS VARCHAR)
                   ELSE 'email:' || i.email END), 1, 16) AS person_id
        FROM identifier_emails i LEFT JOIN email_owner o ON o.email = i.email
        """,
    ),
)
