"""Searching the published persons: by name, by email prefix, or by an identifier exactly.

**What matches** a query ``q`` (trimmed):

- *an identifier, exactly*: ``q`` in the lookup form of each identifier type, as identity stores
  them (:func:`c360.identity.normalise.normalise`: an email lower-cased, a phone in E.164 — a
  national number read in ``identity.default_phone_region``), or a person id;
- *a name*: every word of ``q`` begins a word of the person's first or last name (the golden
  record), both Unicode-folded as identity folds names (:func:`~c360.identity.normalise.fold_text`:
  case and accents ignored, punctuation splits words): ``mar`` finds Maria and Martín, ``anna mü``
  finds Anna Müller, ``o'bri`` finds O'Brien. Prefixes of words, not substrings;
- *an email prefix*, when ``q`` is one word: the beginning of one of the person's emails
  (``identity_map``, lookup form): ``anna.m`` finds ``anna.mueller@example.com``.

**An identifier several persons share** (a family mailbox, a household phone) is in no
person's ``identity_map``, so it matches no one exactly (nor, for an email, as a prefix: the
email terms come from ``identity_map``). The page says so instead: ``ambiguous`` lists each
identifier type under which ``q`` is such a shared value (``ambiguous_identifier``) with how
many persons hold it — never the value — on every page, as a lookup by it answers 409
``ambiguous_identifier`` (:mod:`c360.api.profiles`). The results are still those of ``q`` as a
name or an email prefix.

**Order** (stable: it is the pagination's key): exact matches first, by person id; then the
others by the term they matched — the name word that the query's longest word begins, or the
email — then by person id. A person matching through several terms is listed once, at the first.

**How**: ``search_term`` (:data:`c360.contracts.serving.search_term`) holds each person's folded
name words and emails, replaced at each publish (:func:`replace_terms`, in the publish's
transaction). A page is **one statement**: every branch is a range scan of the primary key
``(kind, term, person_id)`` from the cursor on, in index order, stopped after ``limit + 1`` rows,
with correlated probes of ``(person_id, kind, term)`` for the other query words and for a
person's smaller matching term; the exact branch, and the shared identifiers' rows beside
the results, are a handful of primary-key lookups. The
branches (at most ``limit + 1`` rows each) are merged here, in code-point order — the byte order
both databases compare ``term`` in (PostgreSQL's ``term`` has the "C" collation).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, text

from c360.contracts import serving
from c360.identity.normalise import fold_text, map_distinct, normalise
from c360.stores.profiles import Ambiguous

if TYPE_CHECKING:
    from c360.stores.base import ServingStore, StoreDialect

NAME, EMAIL = "name", "email"
IDENTIFIER_TYPES = (
    "customer_id",
    "email",
    "anonymous_id",
    "zendesk_user_id",
    "mailchimp_id",
    "phone",
)
MAX_QUERY = 200  # characters of a query
MAX_WORDS = 6  # name words of a query
MAX_TERM = 320  # search_term.term
_SHARED = -1  # the rank of a row that is a shared identifier, not a result
PERSON_FIELDS = ("first_name", "last_name", "email", "phone", "city", "country", "customer_id")


class SearchKey(NamedTuple):
    """The last result of a page, where the next starts: rank 0 for an exact match (kind
    empty), 1 for a name or email term. The term it was listed at is not carried (it can be a
    person's email, and keys travel in URLs): the next page's statement finds it again — the
    person's smallest term of that kind in the query's range."""

    rank: int
    kind: str
    person_id: str


@dataclass(frozen=True)
class SearchPage:
    """One page of results (person rows with ``matched``: identifier, name or email), the key
    after which the next page starts (None on the last page), and the identifier types under
    which the query is a value several persons share (by type; the same on every page)."""

    rows: list[dict[str, Any]]
    next_key: SearchKey | None
    ambiguous: tuple[Ambiguous, ...] = ()


# -- the terms, at publish ----------------------------------------------------------------------


def terms(person: pa.Table, identity_map: pa.Table) -> pa.Table:
    """The search terms of a publish: the folded words of each person's first and last name
    (kind ``name``) and each email identity_map gives the person (kind ``email``), distinct."""
    parts = []
    ids = person["person_id"]
    for column in ("first_name", "last_name"):
        if column not in person.column_names:
            continue
        words = pc.split_pattern(map_distinct(person[column], fold_text), " ")
        owners = pc.take(ids, pc.list_parent_indices(words))
        parts.append(_kind_table(NAME, pc.list_flatten(words), owners))
    emails = identity_map.filter(pc.equal(identity_map["id_type"], EMAIL))
    parts.append(_kind_table(EMAIL, emails["id_value"], emails["person_id"]))
    combined = pa.concat_tables(parts)
    usable = pc.and_(
        pc.greater(pc.utf8_length(combined["term"]), 0),
        pc.less_equal(pc.utf8_length(combined["term"]), MAX_TERM),
    )
    distinct = combined.filter(usable).group_by(["kind", "term", "person_id"]).aggregate([])
    # In key order: the primary key's B-tree is appended to, not split at random (a third of
    # the time to insert them into SQLite).
    return distinct.select(["kind", "term", "person_id"]).sort_by(
        [("kind", "ascending"), ("term", "ascending"), ("person_id", "ascending")]
    )


def _kind_table(kind: str, term: pa.Array | pa.ChunkedArray, person_id: Any) -> pa.Table:
    return pa.table(
        {
            "kind": pa.array([kind] * len(term), pa.string()),
            "term": pc.cast(term, pa.string()),
            "person_id": pc.cast(person_id, pa.string()),
        }
    )


def replace_terms(
    store: ServingStore, conn: Connection, person: pa.Table, identity_map: pa.Table
) -> int:
    """Replace ``search_term`` with the terms of a publish, in the caller's transaction."""
    table = serving.search_term
    conn.execute(table.delete())
    rows = terms(person, identity_map)
    columns = [rows[column.name].to_pylist() for column in table.columns]
    store.dialect.bulk_insert(conn, table, zip(*columns, strict=True))
    return int(rows.num_rows)


# -- the query ----------------------------------------------------------------------------------


def _after(prefix: str) -> str:
    """The smallest string greater than every string that starts with ``prefix``."""
    while prefix:
        last = ord(prefix[-1]) + 1
        if last == 0xD800:  # skip the surrogates: not storable
            last = 0xE000
        if last <= 0x10FFFF:
            return prefix[:-1] + chr(last)
        prefix = prefix[:-1]
    return "\U0010ffff"


@dataclass(frozen=True)
class _Arm:
    """One prefix branch: a range of one kind's terms, and the other words' ranges."""

    kind: str
    low: str
    others: tuple[str, ...] = ()


def plan(q: str, phone_region: str | None = None) -> tuple[dict[str, str], list[_Arm]]:
    """The exact values per identifier type and the prefix branches of a query."""
    text_ = q.strip()[:MAX_QUERY]
    exact = {id_type: normalise(id_type, text_, phone_region) for id_type in IDENTIFIER_TYPES}
    arms: list[_Arm] = []
    words = (fold_text(text_) or "").split()[:MAX_WORDS]
    if words:
        driving = max(words, key=len)  # the most selective range drives; ties: the first
        others = list(words)
        others.remove(driving)
        arms.append(_Arm(NAME, driving, tuple(others)))
    email = text_.lower()
    if email and not any(c.isspace() for c in email):
        arms.append(_Arm(EMAIL, email))
    return exact, arms


def _range(column: str, low: str, name: str, params: dict[str, Any]) -> str:
    params[f"{name}_lo"], params[f"{name}_hi"] = low, _after(low)
    return f"{column} >= :{name}_lo AND {column} < :{name}_hi"


def _after_key(
    arm: _Arm, arms: Sequence[_Arm], key: SearchKey | None, params: dict[str, Any]
) -> str:
    """The condition on an arm's rows for coming after ``key`` in (rank, term, kind, person).

    The key's term is looked up in the same statement (a scalar subquery, evaluated once): the
    key person's smallest term of the key's kind in that kind's range. If that person is gone
    (a publish in between), the term is null and the listing ends.
    """
    if key is None or key.rank < 1:
        return ""
    params["after_person"], params["after_kind"] = key.person_id, key.kind
    term = "NULL"
    if any(other.kind == key.kind for other in arms):
        term = (
            "(SELECT min(a.term) FROM search_term a WHERE a.person_id = :after_person "
            "AND a.kind = :after_kind "
            f"AND a.term >= :arm_{key.kind}_lo AND a.term < :arm_{key.kind}_hi)"
        )
    if arm.kind > key.kind:
        return f" AND t.term >= {term}"
    if arm.kind < key.kind:
        return f" AND t.term > {term}"
    return f" AND t.term >= {term} AND (t.term > {term} OR t.person_id > :after_person)"


def _words_sql(arm: _Arm, params: dict[str, Any]) -> list[str]:
    """Conditions: each of the arm's other words begins one of the person's name words."""
    conditions = []
    for i, word in enumerate(arm.others):
        condition = _range("w.term", word, f"{arm.kind}_word_{i}", params)
        conditions.append(
            "EXISTS (SELECT 1 FROM search_term w WHERE w.person_id = t.person_id "
            f"AND w.kind = '{NAME}' AND {condition})"
        )
    return conditions


def _arm_sql(arm: _Arm, arms: Sequence[_Arm], key: SearchKey | None, params: dict[str, Any]) -> str:
    name = f"arm_{arm.kind}"
    where = [f"t.kind = '{arm.kind}'", _range("t.term", arm.low, name, params)]
    where += _words_sql(arm, params)
    # Listed once: at the person's smallest (term, kind) that any branch matches.
    for other in arms:
        smaller = "o.term < t.term" if other.kind >= arm.kind else "o.term <= t.term"
        in_range = f"o.term >= :arm_{other.kind}_lo AND o.term < :arm_{other.kind}_hi"
        earlier = (
            "EXISTS (SELECT 1 FROM search_term o WHERE o.person_id = t.person_id "
            f"AND o.kind = '{other.kind}' AND {in_range} AND {smaller})"
        )
        where.append(f"NOT ({' AND '.join([earlier, *_words_sql(other, params)])})")
    where.append("t.person_id NOT IN (SELECT person_id FROM exact)")
    return (
        f"SELECT * FROM (SELECT 1 AS rank, t.kind, t.term, t.person_id FROM search_term t "
        f"WHERE {' AND '.join(where)}{_after_key(arm, arms, key, params)} "
        "ORDER BY t.term, t.person_id LIMIT :fetch) AS "
        f"{name}"
    )


def search(
    conn: Connection,
    dialect: StoreDialect,
    q: str,
    limit: int,
    after: SearchKey | None = None,
    phone_region: str | None = None,
) -> SearchPage:
    """One page of persons matching ``q`` after ``after`` (see the module docstring)."""
    exact, arms = plan(q, phone_region)
    params: dict[str, Any] = {"fetch": limit + 1, "q_person": q.strip()[:40]}
    for i, (id_type, value) in enumerate(exact.items()):
        params[f"t{i}"], params[f"v{i}"] = id_type, value[:MAX_TERM]

    def pairs(alias: str) -> str:
        """``(id_type, id_value)`` is one of the query's exact values, in the lookup form."""
        return " OR ".join(
            f"({alias}.id_type = :t{i} AND {alias}.id_value = :v{i})" for i in range(len(exact))
        )

    exact_sql = (
        f"SELECT m.person_id FROM identity_map m WHERE {pairs('m')} "
        "UNION SELECT p.person_id FROM person p WHERE p.person_id = :q_person"
    )
    # The query as an identifier several persons share: a row of its own for each type, beside
    # the results, in the same statement.
    no_fields = ", ".join(f"NULL AS {field}" for field in PERSON_FIELDS)
    shared_sql = (
        f"SELECT {_SHARED} AS rank, a.id_type AS kind, '' AS term, '' AS person_id, "
        f"{no_fields}, a.persons FROM ambiguous_identifier a WHERE {pairs('a')}"
    )
    branches = [
        # A handful at most (one per identifier type): all of them, the cursor applied below.
        "SELECT 0 AS rank, '' AS kind, '' AS term, person_id FROM exact",
        *(_arm_sql(arm, arms, after, params) for arm in arms),
    ]
    fields = ", ".join(f"p.{field}" for field in PERSON_FIELDS)
    sql = (
        f"WITH exact AS ({exact_sql}) "
        f"SELECT hits.rank, hits.kind, hits.term, hits.person_id, {fields}, NULL AS persons "
        f"FROM ({' UNION ALL '.join(branches)}) hits "
        # In person's collation: the hits mix search_term's "C" with identity_map's, and
        # PostgreSQL then cannot probe person's key (a scan of every person a page: 16 ms).
        f"JOIN person p ON p.person_id = hits.person_id COLLATE {dialect.default_collation} "
        f"UNION ALL {shared_sql}"
    )
    found, shared = [], []
    for row in conn.execute(text(sql), params):
        if row.rank == _SHARED:
            shared.append(Ambiguous(str(row.kind), int(row.persons)))
        else:
            found.append(dict(row._mapping))
    if after is not None and after.rank == 0:
        found = [row for row in found if row["rank"] > 0 or row["person_id"] > after.person_id]
    elif after is not None:
        found = [row for row in found if row["rank"] > 0]
    found.sort(key=_order)
    rows = found[:limit]
    next_key = None
    if len(found) > limit:
        last = rows[-1]
        next_key = SearchKey(int(last["rank"]), str(last["kind"]), str(last["person_id"]))
    return SearchPage([_result(row) for row in rows], next_key, tuple(sorted(shared)))


def _order(row: Mapping[str, Any]) -> tuple[int, str, str, str]:
    return int(row["rank"]), str(row["term"]), str(row["kind"]), str(row["person_id"])


def _result(row: Mapping[str, Any]) -> dict[str, Any]:
    result = {"person_id": row["person_id"], **{field: row[field] for field in PERSON_FIELDS}}
    result["matched"] = "identifier" if row["rank"] == 0 else row["kind"]
    return result
