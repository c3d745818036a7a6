"""The real-time identity links in the serving store (``identity_stitch``): write and reconcile.

The rules — one link per cookie, the newest wins, the batch publish reconciles — are
:mod:`c360.identity.stitching`'s; this module is their SQL. The speed layer's micro-batch commit
and :meth:`~c360.stores.ServingStore.stitch` write links with the same statement
(:func:`newest_link_wins`), so what the tests check of one is what the other runs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, case, func, literal_column, select, text
from sqlalchemy.dialects.postgresql import Insert as PostgresInsert
from sqlalchemy.dialects.sqlite import Insert as SQLiteInsert

from c360.contracts.serving import identity_stitch
from c360.contracts.times import naive_utc
from c360.identity.stitching import (
    CONTRADICTED,
    PROVISIONAL,
    Reconciled,
    StitchLink,
    newest_per_cookie,
)


def newest_link_wins(statement: PostgresInsert | SQLiteInsert) -> PostgresInsert | SQLiteInsert:
    """``statement`` (an insert of ``identity_stitch`` rows) as the links' upsert: a cookie's
    stored link is replaced only by one at least as new; a link to the same customer keeps its
    reconcile flag, a new customer resets it. Binds nothing but the inserted values, so the
    speed layer can repeat its VALUES group for many rows."""
    t = identity_stitch
    new = statement.excluded
    same = t.c.customer_id == new.customer_id
    return statement.on_conflict_do_update(
        index_elements=[t.c.anonymous_id],
        set_={
            "customer_id": new.customer_id,
            "linked_at": new.linked_at,
            "status": case((same, t.c.status), else_=literal_column(f"'{PROVISIONAL}'")),
            "batch_person_id": case((same, t.c.batch_person_id)),
            "flagged_at": case((same, t.c.flagged_at)),
        },
        where=t.c.linked_at <= new.linked_at,
    )


def link_row(link: StitchLink) -> dict[str, Any]:
    """The ``identity_stitch`` row of a fresh link (provisional, no batch opinion yet)."""
    return {
        "anonymous_id": link.anonymous_id,
        "customer_id": str(link.customer_id),
        "linked_at": naive_utc(link.linked_at),
        "status": PROVISIONAL,
        "batch_person_id": None,
        "flagged_at": None,
    }


def link_rows(links: Iterable[StitchLink]) -> list[dict[str, Any]]:
    """One row per cookie (its newest link), ready for :func:`newest_link_wins`."""
    return [link_row(link) for link in newest_per_cookie(links)]


# The person the batch gives the link's customer and its cookie.
_CUSTOMER_PERSON = """(SELECT c.person_id FROM identity_map c
    WHERE c.id_type = 'customer_id' AND c.id_value = identity_stitch.customer_id)"""
_COOKIE_PERSON = """(SELECT a.person_id FROM identity_map a
    WHERE a.id_type = 'anonymous_id' AND a.id_value = identity_stitch.anonymous_id)"""


def reconcile(conn: Connection, cutoff: dt.datetime) -> Reconciled:
    """Settle the links against the ``identity_map`` just published (the rules are in
    :mod:`c360.identity.stitching`).

    Runs in the caller's transaction (the batch publish), so readers see the new map and the
    settled links together. ``cutoff`` is the published batch's cutoff.
    """
    cutoff = naive_utc(cutoff)
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
