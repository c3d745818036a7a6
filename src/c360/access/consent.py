"""Marketing consent at the exits: which decision wins, and what a profile read may show.

**Newest decision wins.** A person's consent is decided by the batch (``marketing_consent``
as of ``marketing_consent_at``: the orders DB's opt-in, Mailchimp's member status) and by
decisions that arrived since (an admin's ``PUT /v1/persons/{id}/consent``, a Mailchimp
unsubscribe webhook, a Segment identify's consent trait), stored at once in
``consent_decision``. At every exit — exports, syncs, webhooks, the Profile API — the newest
of them by the time it was decided wins; on a tie the refusal wins; no decision at all is no
consent. So a withdrawal takes effect before the next batch, and a later opt-in in a source
(a re-subscribe in Mailchimp) wins over an older withdrawal.

**Marketing fields** of the Profile API (:data:`MARKETING_FIELDS`): what a marketer would
target on — engagement with email, the RFM scores and the churn model's risk and reasons. For
a person without consent they are answered as null, unless the key has the scope
``profiles:service`` (customer service reading a profile to help the person, not to market to
them). Transactions, support and web activity are not marketing fields: a service needs them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from c360.contracts.times import naive_utc

MARKETING_FIELDS: frozenset[str] = frozenset(
    {
        "email_subscription_status",
        "email_open_rate",
        "email_click_rate",
        "last_email_open_at",
        "rfm_recency",
        "rfm_frequency",
        "rfm_monetary",
        "churn_risk",
        "churn_risk_band",
        "churn_reason_1",
        "churn_reason_2",
        "churn_reason_3",
    }
)
SOURCES = ("api", "mailchimp", "segment")


@dataclass(frozen=True)
class Decision:
    """A consent decision: given or refused, as of a time (naive or aware; compared as UTC)."""

    consent: bool
    decided_at: dt.datetime
    source: str


def newest(decisions: Iterable[Decision | None]) -> Decision | None:
    """The decision that wins: the newest, a refusal on a tie; None if there is none."""
    found = [d for d in decisions if d is not None]
    if not found:
        return None
    return max(found, key=lambda d: (naive_utc(d.decided_at), not d.consent))


def batch_decision(
    consent: bool | None, decided_at: dt.datetime | None, source: str | None = None
) -> Decision | None:
    """The batch profile's consent as a decision (None when the batch knows none)."""
    if consent is None:
        return None
    at = decided_at if decided_at is not None else dt.datetime.min
    return Decision(bool(consent), at, source or "batch")


def consents(batch: Decision | None, since: Decision | None) -> bool:
    """Whether a person may be marketed to: the newest of the batch's and the later decision."""
    winner = newest([batch, since])
    return winner is not None and winner.consent


def redact(profile: dict[str, Any]) -> None:
    """Set ``profile``'s marketing fields null in place (an answer built for this request)."""
    for name in MARKETING_FIELDS.intersection(profile):
        profile[name] = None
