"""The knobs of the ShopSmart world, with the values the defaults are calibrated on.

At 100,000 customers over 730 days the defaults give about 1M orders and 15M clickstream events
(see docs/simulator.md). Rates are per person and day at engagement 1.0 (engagement is a latent
log-normal with mean 1).
"""

from __future__ import annotations

from dataclasses import dataclass

SITE = "https://www.shopsmart.example"
CURRENCY = "EUR"
SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class WorldParams:
    # population
    guest_only_per_customer: float = 0.10  # persons who only ever check out as guests
    newsletter_only_per_customer: float = 0.04  # persons who only subscribe to the newsletter
    # households (simulator/households.py): people sharing one mailbox or one home phone
    shared_email_share: float = 0.02  # of the email keys the sources show: used by 2+ people
    shared_phone_share: float = 0.02  # of the phone numbers: a household's home phone
    preexisting_share: float = 0.55  # customers who signed up before the first simulated day
    history_days: int = 3 * 365  # how far back those sign-ups go
    engagement_sigma: float = 0.8
    # churn: a latent date after which a person stops; rates decay linearly before it
    churn_share: float = 0.35  # share whose churn date falls inside the simulated window
    late_churn_share: float = 0.08  # share churning within 90 days after the window
    min_tenure_days: int = 30
    decay_days: int = 56
    # visits and orders
    browse_rate: float = 0.012
    order_rate: float = 0.019
    guest_only_order_rate: float = 0.009
    newsletter_browse_rate: float = 0.006
    pre_signup_days: int = 21  # new customers browse anonymously up to this long before signing up
    max_devices: int = 4
    tracking_blocked_share: float = (
        0.12  # devices with an ad blocker: their sessions leave no events
    )
    cookie_reset_rate: float = 0.012  # per session: cookies cleared, a new anonymousId
    login_on_purchase: float = 0.85  # registered person on a logged-out device logs in to buy
    login_on_browse: float = 0.25
    weekend_boost: float = 1.12
    holiday_boost: float = 0.35  # extra traffic around late November / December
    # orders
    cancel_share: float = 0.04
    refund_share: float = 0.05
    # customers
    marketing_opt_in_share: float = 0.55
    profile_update_share: float = 0.3
    # support
    ticket_per_order: float = 0.05
    ticket_per_refund: float = 0.5
    ticket_background_rate: float = 0.0006  # per active person-day, tripled at churn
    csat_answer_share: float = 0.4
    # Zendesk users whose profile carries a phone (of persons who have one). Email requesters
    # leave it empty; it is there when the web form's optional phone field was filled or the
    # person called in: a minority of a web shop's support contacts.
    zendesk_phone_share: float = 0.3
    # email marketing
    campaign_every_days: int = 7
    open_rate: float = 0.3
    click_given_open: float = 0.25
    bounce_rate: float = 0.0015
    unsubscribe_rate: float = 0.002
    churn_unsubscribe_rate: float = 0.05  # added near churn (scaled by the decay)
    newsletter_alt_email_share: float = 0.08  # subscribes with another address than the account's
    # Members whose ADDRESS merge field is filled. Every audience has the field, but Mailchimp
    # hides it on signup forms by default: it holds what the shop's store sync or a form that
    # asks for it put there, so well under half of a newsletter's members.
    newsletter_address_share: float = 0.4

    def products_for(self, customers: int) -> int:
        """A few hundred to a few thousand products, growing with the customer base."""
        return int(min(3000, max(200, customers // 40)))
