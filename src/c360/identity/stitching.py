"""Real-time identity stitching: a cookie's link to a customer account, before the batch knows it.

When an identify, login or alias event ties an ``anonymous_id`` to a customer account, the speed
layer records the link in the transaction that writes the cookie's state (its micro-batch commit;
:meth:`c360.stores.ServingStore.stitch` writes links the same way, with the same statement,
:func:`c360.stores.stitching.newest_link_wins`). The link is a row of ``identity_stitch``
(anonymous_id → customer_id, linked_at); the serving reads (:mod:`c360.stores.views`,
:meth:`c360.stores.ServingStore.find_person`) resolve a cookie through its link first — to the
person of ``identity_map``'s ``customer_id`` — then through the cookie's own
``realtime_state.user_id``, then through the batch's ``identity_map`` entry for the cookie (an
order placed while logged in keeps the customer of its own ``user_id`` first). So the cookie's
session, cart and anonymous orders show on the customer's profile the moment the event is
committed, and a lookup by the cookie answers the customer's person.

Rules:

- **Newest wins.** A cookie has one link: the account of its newest identifying event (event
  time; a tie goes to the later write). An older link arriving late never replaces a newer one,
  so re-sending links is harmless.
- **Reconcile at publish** (:func:`c360.stores.stitching.reconcile`, run by
  ``ServingStore.publish_batch`` in the publish transaction, after ``identity_map`` is
  replaced). With ``cutoff`` the batch's cutoff:

  * a link older than the cutoff whose cookie and customer are one person in the new
    ``identity_map`` is *covered*: the batch saw the event and agrees, so the row is deleted;
  * a link whose cookie the batch puts in another person than the customer's is *contradicted*
    (a shared device the batch would not merge, or a matching error): it stays in force — it
    is the newest evidence of who is on that cookie now — and is flagged ``contradicted``
    with the batch's person (``batch_person_id``) for review;
  * anything else (the batch does not know the cookie or the customer yet, or the link is
    newer than the cutoff) stays ``provisional``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from c360.contracts.times import naive_utc

PROVISIONAL = "provisional"
CONTRADICTED = "contradicted"


class StitchLink(NamedTuple):
    """A cookie identified as a customer at ``linked_at`` (an aware datetime or naive UTC)."""

    anonymous_id: str
    customer_id: str
    linked_at: dt.datetime


@dataclass(frozen=True)
class Reconciled:
    """What a batch publish did to the real-time links."""

    dropped: int  # covered by the batch: deleted
    contradicted: int  # in force, the batch puts the cookie in another person
    provisional: int  # in force, the batch has no opinion yet

    def as_dict(self) -> dict[str, int]:
        return {
            "dropped": self.dropped,
            "contradicted": self.contradicted,
            "provisional": self.provisional,
        }


def newest_per_cookie(links: Iterable[StitchLink]) -> list[StitchLink]:
    """One link per cookie, its newest (the later one on a tie), sorted by cookie; times as
    naive UTC. A link without a cookie or a customer is a ValueError."""
    newest: dict[str, StitchLink] = {}
    for anonymous_id, customer_id, linked_at in links:
        if not anonymous_id or not customer_id:
            raise ValueError(
                f"stitch: a link needs an anonymous_id and a customer_id, got "
                f"({anonymous_id!r}, {customer_id!r})"
            )
        link = StitchLink(anonymous_id, str(customer_id), naive_utc(linked_at))
        found = newest.get(anonymous_id)
        if found is None or link.linked_at >= found.linked_at:
            newest[anonymous_id] = link
    return [newest[key] for key in sorted(newest)]
