"""Marketing consent: each person's newest consent fact, with its source and time.

Facts (per person, through the identity map):

- the customer's opt-in in the orders DB (``customers.marketing_opt_in``), as of the row's last
  change (``updated_at``) — the shop has no separate opt-in time;
- each of the person's Mailchimp members: ``subscribed`` is consent as of its opt-in time
  (``optin_time``; the snapshot date when it has none); any other status — ``unsubscribed``,
  ``cleaned``, ``pending``, ``transactional``, ``archived`` — is *no* consent, as of the date of
  the snapshot that shows it (an unsubscribe seen later than an opt-in wins).

The newest fact decides; on a tie, *no* wins. A person without any fact has no consent
(``marketing_consent`` null, which exports and syncs read as no).
"""

from c360.contracts.compute import SqlStep

STEPS = (
    SqlStep(
        "consent_facts",
        """
        SELECT p.person_id, c.marketing_opt_in AS consent,
               'orders DB opt-in' AS source,
               CAST(c.updated_at AS TIMESTAMPTZ) AS decided_at
        FROM person p
        JOIN customers c ON c.customer_id = p.customer_id
        WHERE c.marketing_opt_in IS NOT NULL
        UNION ALL
        SELECT m.person_id, lower(s.status) = 'subscribed' AS consent,
               'Mailchimp ' || lower(s.status) AS source,
               CAST(CASE WHEN lower(s.status) = 'subscribed'
                         THEN coalesce(TRY_CAST(s.optin_time AS TIMESTAMP),
                                       CAST(s.dt AS TIMESTAMP))
                         ELSE CAST(s.dt AS TIMESTAMP) END AS TIMESTAMPTZ) AS decided_at
        FROM mailchimp_members s
        JOIN identity_map m ON m.id_type = 'email' AND m.id_value = lower(trim(s.email_address))
        WHERE s.status IS NOT NULL
        """,
    ),
    SqlStep(
        "consent",
        """
        SELECT person_id, consent AS marketing_consent, source AS marketing_consent_source,
               decided_at AS marketing_consent_at
        FROM (SELECT f.*,
                     row_number() OVER (
                         PARTITION BY person_id
                         ORDER BY decided_at DESC, CASE WHEN consent THEN 1 ELSE 0 END, source
                     ) AS newest
              FROM consent_facts f) ranked
        WHERE newest = 1
        """,
    ),
)
