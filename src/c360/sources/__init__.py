"""Source connectors: the orders DB, Mailchimp, Zendesk and the Segment collector's parsing."""
