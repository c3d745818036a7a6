"""Email engagement from Mailchimp: the audience and campaign activity, over all addresses."""

from c360.contracts.compute import SqlStep

STEPS = (
    SqlStep(
        "email_actions",
        """
        SELECT campaign_id, lower(trim(email_address)) AS email, action.action AS action,
               CAST(action.timestamp AS TIMESTAMPTZ) AS acted_at
        FROM (SELECT campaign_id, email_address, unnest(activity) AS action
              FROM mailchimp_email_activity) actions
        """,
    ),
    # Mailchimp's activity has no send time: a campaign counts from its first action (anyone's),
    # so a campaign sent after the cutoff is not yet received (a training snapshot at T does not
    # count later campaigns); one with no action at all counts, its time unknown.
    SqlStep(
        "campaign_first_action",
        """
        SELECT campaign_id, min(acted_at) AS first_action_at FROM email_actions GROUP BY campaign_id
        """,
    ),
    SqlStep(
        "email_features",
        """
        SELECT m.person_id,
               count(DISTINCT a.campaign_id) AS campaigns_received,
               count(DISTINCT CASE WHEN o.action = 'open' THEN o.campaign_id END)
                   AS campaigns_opened,
               count(DISTINCT CASE WHEN o.action = 'click' THEN o.campaign_id END)
                   AS campaigns_clicked,
               max(CASE WHEN o.action = 'open' THEN o.acted_at END) AS last_email_open_at
        FROM mailchimp_email_activity a
        LEFT JOIN campaign_first_action f ON f.campaign_id = a.campaign_id
        JOIN identity_map m ON m.id_type = 'email' AND m.id_value = lower(trim(a.email_address))
        LEFT JOIN email_actions o
          ON o.campaign_id = a.campaign_id AND o.email = m.id_value AND o.acted_at < {cutoff}
        WHERE f.first_action_at IS NULL OR f.first_action_at < {cutoff}
        GROUP BY m.person_id
        """,
    ),
    SqlStep(
        "subscription",
        """
        SELECT m.person_id,
               CASE max(CASE lower(s.status) WHEN 'subscribed' THEN 3 WHEN 'unsubscribed' THEN 2
                                             WHEN 'cleaned' THEN 1 ELSE 0 END)
                    WHEN 3 THEN 'subscribed' WHEN 2 THEN 'unsubscribed' WHEN 1 THEN 'cleaned'
               END AS email_subscription_status
        FROM mailchimp_members s
        JOIN identity_map m ON m.id_type = 'email' AND m.id_value = lower(trim(s.email_address))
        GROUP BY m.person_id
        """,
    ),
)
