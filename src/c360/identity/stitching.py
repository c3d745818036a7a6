"""Real-time identity stitching: a cookie's link to a customer account, before the batch knows it.

When an identify, login or alias event ties an ``anonymous_id`` to a customer account, the speed
layer calls :func:`stitch` inside the transaction that writes the cookie's state. The link is a
row of ``identity_stitch`` (anonymous_id → customer_id, linked_at); the serving reads
(:mod:`c360.stores.views`, :func:`c360.stores.profiles.find_person`) resolve a cookie through its
link first — to the person of ``identity_map``'s ``customer_id`` — then through the cookie's own
``realtime_state.user_id``, then through the batch's ``identity_map`` entry for the cookie
(an order placed while logged in keeps the customer of its own ``user_id`` first). So the
cookie's session, cart and anonymous orders show on the customer's profile the moment the event
is committed, and a lookup by the cookie answers the customer's person.

Rules:

- **Newest wins.** A cookie has one link: the account of its newest identifying event (event
  time; a tie goes to the later write). An older link arriving late never replaces a newer one,
  so re-sending links is harmless.
- **Reconcile at publish** (:func:`reconcile`, called by ``ServingStore.publish_batch`` in the
  publish transaction, after ``identity_map`` is replaced). With ``cutoff`` the batch's cutoff:

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
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import Connection, case, func, literal, select, text

from c360.contracts.serving import identity_stitch

if TYPE_CHECKING:
    from c360.stores.base import ServingStore

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


def _naive_utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        return value
    return value.astimezone(dt.UTC).replace(tzinfo=None)


def _newest(links: Iterable[StitchLink]) -> list[dict[str, Any]]:
    """One row per cookie: its newest link (the later one on a tie)."""
    newest: dict[str, dict[str, Any]] = {}
    for anonymous_id, customer_id, linked_at in links:
        if not anonymous_id or not customer_id:
            raise ValueError(
                f"stitch: a link needs an anonymous_id and a customer_id, got "
                f"({anonymous_id!r}, {customer_id!r})"
            )
        at = _naive_utc(linked_at)
        found = newest.get(anonymous_id)
        if found is None or at >= found["linked_at"]:
            newest[anonymous_id] = {
                "anonymous_id": anonymous_id,
                "customer_id": str(customer_id),
                "linked_at": at,
                "status": PROVISIONAL,
                "batch_person_id": None,
                "flagged_at": None,
            }
    return [newest[key] for key in sorted(newest)]


def stitch(store: ServingStore, conn: Connection, links: Iterable[StitchLink]) -> int:
    """Record links in the caller's transaction (``conn``); return how many cookies were given.

    Each cookie keeps its newest link; a link older than the stored one is ignored. Passing the
    current ``(user_id, user_id_at)`` of every cookie state a micro-batch changed is correct and
    idempotent. A link to the same customer keeps its reconcile flag; a new customer resets it.
    """
    rows = _newest(links)
    if not rows:
        return 0
    t = identity_stitch
    statement = store.dialect_insert(t)
    new = statement.excluded
    same = t.c.customer_id == new.customer_id
    upsert = statement.on_conflict_do_update(
        index_elements=[t.c.anonymous_id],
        set_={
            "customer_id": new.customer_id,
            "linked_at": new.linked_at,
            "status": case((same, t.c.status), else_=literal(PROVISIONAL)),
            "batch_person_id": case((same, t.c.batch_person_id), else_=None),
            "flagged_at": case((same, t.c.flagged_at), else_=None),
        },
        where=t.c.linked_at <= new.linked_at,
    )
    conn.execute(upsert, rows)
    return len(rows)


# The person the batch gives the link's customer and its cookie.
_CUSTOMER_PERSON = """(SELECT c.person_id FROM identity_map c
    WHERE c.id_type = 'customer_id' AND c.id_value = identity_stitch.customer_id)"""
_COOKIE_PERSON = """(SELECT a.person_id FROM identity_map a
    WHERE a.id_type = 'anonymous_id' AND a.id_value = identity_stitch.anonymous_id)"""


def reconcile(conn: Connection, cutoff: dt.datetime) -> Reconciled:
    """Settle the links against the ``identity_map`` just published (see the module docstring).

    Runs in the caller's transaction (the batch publish), so readers see the new map and the
    settled links together. ``cutoff`` (naive UTC) is the published batch's cutoff.
    """
    cutoff = _naive_utc(cutoff)
    dropped = conn.execute(
        text(
            f"""
            DELETE FROM identity_stitch
            WHERE linked_at < :cutoff AND {_COOKIE_PERSON} = {_CUSTOMER_PERSON}
            """
        ),
        {"cutoff": cutoff},
    ).rowcount
    conn.execute(
        text(
            f"""
            UPDATE identity_stitch
            SET status = '{CONTRADICTED}', batch_person_id = {_COOKIE_PERSON},
                flagged_at = :cutoff
            WHERE {_COOKIE_PERSON} <> {_CUSTOMER_PERSON}
            """
        ),
        {"cutoff": cutoff},
    )
    conn.execute(
        text(
            f"""
            UPDATE identity_stitch
            SET status = '{PROVISIONAL}', batch_person_id = NULL, flagged_at = NULL
            WHERE status <> '{PROVISIONAL}'
              AND CASE WHEN {_COOKIE_PERSON} <> {_CUSTOMER_PERSON} THEN 1 ELSE 0 END = 0
            """
        )
    )
    counts: dict[str, int] = dict(
        conn.execute(
            select(identity_stitch.c.status, func.count()).group_by(identity_stitch.c.status)
        ).all()
    )
    return Reconciled(
        dropped=max(dropped, 0),
        contradicted=int(counts.get(CONTRADICTED, 0)),
        provisional=int(counts.get(PROVISIONAL, 0)),
    )
