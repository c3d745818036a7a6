"""Consent decisions since the batch (``consent_decision``): the SQL behind
``ServingStore.record_consent`` and the reads every exit makes (:mod:`c360.access.consent`
says which decision wins).

A decision is stored per identifier — the person's every identifier in the identity map and
their person id — so it follows the person through the next batch's merges and splits (a
decision made on a person id alone would be lost when the id is retired). A stored decision is
replaced only by one at least as new (a refusal wins a tie), so a late, older webhook cannot
undo a newer decision. Reads resolve decisions to persons through ``identity_map`` (and by
person id) and keep the newest per person.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Connection, TextClause, and_, or_, text
from sqlalchemy import types as sqltypes

from c360.access.consent import Decision, newest
from c360.contracts.serving import consent_decision
from c360.contracts.times import naive_utc, naive_utc_now

if TYPE_CHECKING:
    from c360.stores.base import StoreDialect

PERSON_ID = "person_id"  # the id_type of a decision stored under a person id

_RESOLVED = """
SELECT m.person_id, d.consent, d.decided_at, d.source
FROM consent_decision d
JOIN identity_map m ON m.id_type = d.id_type AND m.id_value = d.id_value
{where_mapped}
UNION ALL
SELECT d.id_value AS person_id, d.consent, d.decided_at, d.source
FROM consent_decision d
WHERE d.id_type = 'person_id' {and_direct}
"""
FOR_ONE = _RESOLVED.format(
    where_mapped="WHERE m.person_id = :person_id", and_direct="AND d.id_value = :person_id"
)


def record(
    conn: Connection,
    dialect: StoreDialect,
    identifiers: Sequence[tuple[str, str]],
    decision: Decision,
) -> int:
    """Store ``decision`` under each identifier unless a newer one is stored there; how many
    identifiers it now decides."""
    if not identifiers:
        return 0
    t = consent_decision
    statement = dialect.insert(t)
    new = statement.excluded
    upsert = statement.on_conflict_do_update(
        index_elements=[t.c.id_type, t.c.id_value],
        set_={
            "consent": new.consent,
            "decided_at": new.decided_at,
            "source": new.source,
            "recorded_at": new.recorded_at,
        },
        where=or_(
            t.c.decided_at < new.decided_at,
            and_(t.c.decided_at == new.decided_at, new.consent.is_(False)),
        ),
    )
    now = naive_utc_now()
    rows = [
        {
            "id_type": id_type,
            "id_value": id_value,
            "consent": decision.consent,
            "decided_at": naive_utc(decision.decided_at),
            "source": decision.source,
            "recorded_at": now,
        }
        for id_type, id_value in identifiers
    ]
    return int(conn.execute(upsert, rows).rowcount or 0)


def decisions(rows: Any) -> dict[str, Decision]:
    """The newest decision per person of rows (person id, consent, decided at, source)."""
    found: dict[str, Decision] = {}
    for person_id, consent, decided_at, source in rows:
        decision = Decision(bool(consent), _datetime(decided_at), source)
        found[person_id] = newest([found.get(person_id), decision]) or decision
    return found


def _datetime(value: Any) -> dt.datetime:
    return dt.datetime.fromisoformat(value) if isinstance(value, str) else value


def for_everyone(conn: Connection) -> dict[str, Decision]:
    """The newest decision since the batch of every person who has one."""
    return _resolved(conn, text(_RESOLVED.format(where_mapped="", and_direct="")), {})


def for_persons(
    conn: Connection, dialect: StoreDialect, person_ids: Collection[str]
) -> dict[str, Decision]:
    """The newest decision since the batch of each of these persons. They go as one JSON
    array: one bound parameter each fails past PostgreSQL's 65,535."""
    if not person_ids:
        return {}
    persons = dialect.json_values(":persons")
    clause = text(
        _RESOLVED.format(
            where_mapped=f"WHERE m.person_id IN {persons}",
            and_direct=f"AND d.id_value IN {persons}",
        )
    )
    return _resolved(conn, clause, {"persons": orjson.dumps(list(person_ids)).decode()})


def _resolved(conn: Connection, clause: TextClause, params: dict[str, str]) -> dict[str, Decision]:
    query = clause.columns(decided_at=sqltypes.DateTime(), consent=sqltypes.Boolean())
    return decisions(conn.execute(query, params).all())


def identifiers_of(conn: Connection, person_id: str) -> list[tuple[str, str]]:
    """The person's identifiers in the identity map, and their person id."""
    rows = conn.execute(
        text("SELECT id_type, id_value FROM identity_map WHERE person_id = :p"), {"p": person_id}
    )
    return [(r.id_type, r.id_value) for r in rows] + [(PERSON_ID, person_id)]


def known_person(conn: Connection, person_id: str) -> str | None:
    """``person_id`` if the batch knows the person, its survivor if it was retired, else None."""
    row = conn.execute(
        text(
            "SELECT person_id FROM person WHERE person_id = :p "
            "UNION ALL SELECT person_id FROM person_redirect WHERE retired_id = :p"
        ),
        {"p": person_id},
    ).first()
    return None if row is None else str(row.person_id)


def erase(conn: Connection, identifiers: Collection[tuple[str, str]]) -> int:
    """Delete the decisions stored under these identifiers (``("person_id", id)`` included);
    how many rows went. For the erasure: a decision holds the identifier it was made for."""
    t = consent_decision
    removed = 0
    for id_type, id_value in identifiers:
        done = conn.execute(t.delete().where(t.c.id_type == id_type, t.c.id_value == id_value))
        removed += int(done.rowcount or 0)
    return removed
