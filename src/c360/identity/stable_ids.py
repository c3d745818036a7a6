"""Stable person ids: today's clusters get yesterday's ids wherever they can.

Each day clustering produces fresh clusters (``CLUSTERS``); this stage names them so that a
person id, once issued, keeps meaning the same person (``ASSIGNMENT``), and records what changed
(``PERSON_HISTORY``) and where retired ids now point (``REDIRECTS``). The rules, applied to
yesterday's assignment (a *previous person* is an id with its records as of yesterday):

1. **Home.** A previous person's *home* is the cluster holding most of its records today; ties
   go to the cluster holding its oldest record (``first_seen``), then to the smallest
   ``cluster_key``.
2. **Keep / merge.** A cluster that is the home of one previous person keeps that id. A cluster
   that is the home of several keeps the **oldest** (earliest ``created_on``, the day the id was
   issued, then earliest ``first_seen`` of its records, then the smallest id); each other one is
   *absorbed*: its id retires, redirects to the survivor and a ``merge`` row is written.
3. **Split.** A cluster holding records of previous persons but the home of none (a piece split
   off) gets a new id derived from the oldest of those persons and the cluster:
   ``md5("split:<old id>:<cluster_key>")``. Every previous person with records in a cluster
   other than its home gets a ``split`` row (``person_id`` = the id those records now have,
   ``other_person_id`` = the original, reason "n of m records").
4. **New.** A cluster with no previous records gets ``md5("customer_id:<id>")`` when it holds a
   customer account (``mysql/customer``; the smallest id if several), else
   ``md5("record:<cluster_key>")`` — the same ids the deterministic skeleton gave customers.
   Every id is ``"p_"`` + the first 16 hex digits of the md5: the same on every engine, never
   Python's ``hash()``.
5. **Collisions.** An id already taken — live yesterday, retired (in the redirects) or issued to
   another cluster today — is re-derived as ``md5(seed + "#<k>")`` for k = 1, 2, … (the
   cluster with the smaller ``cluster_key`` keeps the plain id): an id never names two persons,
   and a retired id is never reissued while it redirects.
6. **Retire.** A previous person none of whose records is in today's clusters (every record
   deleted or erased at source) is dropped without a redirect — there is no one to answer
   with — and gets a ``retire`` history row. Redirects that pointed to it are dropped too.
   Its id stays reserved only while it is in the previous state; if its customer account
   or cluster comes back later, the anchor gives it the same id again.
7. **Redirects** are cumulative and compressed: yesterday's redirects are re-pointed through
   today's merges (A→B and B absorbed into C gives A→C), so a lookup is always one hop to a
   live id; ``since`` is the day the id retired.

Known limit: a redirect follows its survivor, not its records. If a merge is later undone (the
survivor splits and the absorbed person's records leave), the retired id still answers as the
survivor; reviving it would need each record's original id kept beside the assignment.

The result depends only on the inputs (every ordering is total), so re-running a day gives
identical tables. Previous state is what an earlier day kept (:meth:`Assignment.state_tables`;
the pipeline writes it to the lake and reads it back, :func:`c360.pipeline.identity.previous`).

The stage is named SQL steps over the Arrow inputs, run in an in-process session of the compute
swap point (DuckDB; 1M records in a few seconds on two cores; ``bench/bench_stable_ids.py``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pyarrow as pa

from c360.contracts.compute import Compute, LocalSql, SqlStep
from c360.contracts.identity import (
    AMBIGUOUS,
    ASSIGNMENT,
    CLUSTER_REASONS,
    CLUSTERS,
    IDENTIFIERS,
    IDENTITY_MAP,
    PERSON_HISTORY,
    PERSON_IDS,
    RECORDS,
    REDIRECTS,
    require,
)
from c360.errors import DataError
from c360.identity.records import RECORD_KEYS, REPEATED_KEYS, load_in

# An identifier that *is* a record's id belongs to that record's person even when other
# records carry it too (the customer account owns its customer_id, the cookie its anonymous_id).
OWNER_RECORDS = {
    "customer_id": "mysql/customer:",
    "anonymous_id": "clickstream/cookie:",
    "zendesk_user_id": "zendesk/user:",
    "mailchimp_id": "mailchimp/member:",
}

MERGE, SPLIT, RETIRE = "merge", "split", "retire"
MAX_ATTEMPTS = 32  # re-derivations of a colliding id before giving up (md5 never needs 2)

_RECORD_COLUMNS = ("record_key", "source", "record_type", "customer_id", "first_seen")


@dataclass(frozen=True)
class Previous:
    """The stage's state as of an earlier day: what :meth:`Assignment.write` stored."""

    day: dt.date
    assignment: pa.Table  # ASSIGNMENT
    redirects: pa.Table  # REDIRECTS (cumulative, one hop)
    person_ids: pa.Table  # PERSON_IDS


@dataclass(frozen=True)
class Assignment:
    """One day's result."""

    day: dt.date
    assignment: pa.Table  # ASSIGNMENT, sorted by record_key
    history: pa.Table  # PERSON_HISTORY rows of this day
    redirects: pa.Table  # REDIRECTS, cumulative, sorted by retired_id
    person_ids: pa.Table  # PERSON_IDS of today's live ids

    def summary(self) -> dict[str, int]:
        """Counts for the run log: persons, merges, splits, retired ids, redirects."""
        events = self.history.column("event").to_pylist()
        return {
            "records": self.assignment.num_rows,
            "persons": self.person_ids.num_rows,
            "merges": events.count(MERGE),
            "splits": events.count(SPLIT),
            "retired": events.count(RETIRE),
            "redirects": self.redirects.num_rows,
        }

    def as_previous(self) -> Previous:
        """This day as the previous state of the next one (what the next day reads back
        from the tables of :meth:`state_tables`)."""
        return Previous(self.day, self.assignment, self.redirects, self.person_ids)

    def state_tables(self) -> dict[str, pa.Table]:
        """The day's tables to keep (``features/identity/<name>/dt=D``): the next day's
        :class:`Previous` is read back from them."""
        return {
            "assignment": self.assignment.cast(ASSIGNMENT),
            "person_history": self.history.cast(PERSON_HISTORY),
            "person_redirect": self.redirects.cast(REDIRECTS),
            "person_ids": self.person_ids.cast(PERSON_IDS),
        }


def _check(local: LocalSql, sql: str, problem: str) -> None:
    """Raise DataError(problem.format(example, count)) when ``sql`` finds offending rows."""
    (found,) = local.rows(f"SELECT any_value(k), count(*) FROM ({sql}) bad(k)")
    if found[1]:
        raise DataError(problem.format(example=found[0], count=found[1]))


def _validate(local: LocalSql) -> None:
    _check(
        local,
        REPEATED_KEYS,
        "identity records: {count} record_key(s) appear more than once, e.g. {example!r}",
    )
    _check(
        local,
        "SELECT record_key FROM clusters_in WHERE record_key IS NULL OR cluster_key IS NULL",
        "identity clusters: {count} row(s) have a null record_key or cluster_key",
    )
    _check(
        local,
        "SELECT any_value(record_key) FROM clusters_in GROUP BY pos HAVING count(*) > 1",
        "identity clusters: {count} record(s) are in several clusters, e.g. {example!r}",
    )
    _check(
        local,
        "SELECT record_key FROM clusters_in WHERE pos IS NULL",
        "identity clusters: {count} clustered record(s) are not in the records table, "
        "e.g. {example!r}",
    )
    _check(
        local,
        "SELECT record_key FROM prev_assignment GROUP BY record_key "
        "HAVING count(*) > 1 OR bool_or(person_id IS NULL)",
        "identity previous assignment: {count} record(s) have several or no person ids, "
        "e.g. {example!r}",
    )


def _ordered(alias: str) -> str:
    """The 'oldest first' order of previous persons (columns of ``prev_ids``)."""
    return f"{alias}.created_on NULLS LAST, {alias}.first_seen NULLS LAST, {alias}.old_id"


def _steps() -> tuple[SqlStep, ...]:
    return (
        SqlStep(
            "cur",
            """
            SELECT c.record_key, c.cluster_key, r.first_seen,
                   CASE WHEN r.source = 'mysql' AND r.record_type = 'customer'
                        THEN r.customer_id END AS account
            FROM clusters_in c JOIN records r ON r.rowid = c.pos
            """,
        ),
        SqlStep(
            "cluster_facts",
            """
            SELECT cluster_key, count(*) AS records, min(first_seen) AS first_seen,
                   min(account) AS account
            FROM cur GROUP BY cluster_key
            """,
        ),
        # Every id live yesterday, with its age (ids without a registry row sort last).
        SqlStep(
            "prev_ids",
            """
            SELECT a.old_id, p.created_on, p.first_seen, a.total
            FROM (SELECT person_id AS old_id, count(*) AS total
                  FROM prev_assignment GROUP BY person_id) a
            LEFT JOIN prev_person_ids p ON p.person_id = a.old_id
            """,
        ),
        # How many of each previous person's records lie in each cluster today.
        SqlStep(
            "overlap",
            """
            SELECT c.cluster_key, p.person_id AS old_id, count(*) AS n,
                   min(c.first_seen) AS oldest_seen
            FROM cur c JOIN prev_assignment p ON p.record_key = c.record_key
            GROUP BY c.cluster_key, p.person_id
            """,
        ),
        SqlStep(
            "home",
            """
            SELECT old_id, cluster_key AS home FROM (
                SELECT old_id, cluster_key,
                       row_number() OVER (PARTITION BY old_id
                                          ORDER BY n DESC, oldest_seen NULLS LAST, cluster_key)
                           AS choice
                FROM overlap) ranked
            WHERE choice = 1
            """,
        ),
        SqlStep(
            "claims",
            f"""
            SELECT h.home AS cluster_key, i.old_id, i.first_seen,
                   row_number() OVER (PARTITION BY h.home ORDER BY {_ordered("i")}) AS claim
            FROM home h JOIN prev_ids i ON i.old_id = h.old_id
            """,
        ),
        SqlStep("kept", "SELECT cluster_key, old_id AS person_id FROM claims WHERE claim = 1"),
        SqlStep(
            "absorbed",
            """
            SELECT c.cluster_key, c.old_id AS absorbed_id, k.person_id AS survivor_id
            FROM claims c JOIN kept k ON k.cluster_key = c.cluster_key
            WHERE c.claim > 1
            """,
        ),
        # Clusters that keep no id: split-off pieces (derived from their oldest previous person)
        # and new clusters (anchored on their customer account or their cluster key).
        SqlStep(
            "fresh",
            f"""
            SELECT f.cluster_key,
                   CASE WHEN s.old_id IS NOT NULL THEN 'split:' || s.old_id || ':' || f.cluster_key
                        WHEN f.account IS NOT NULL
                        THEN 'customer_id:' || CAST(f.account AS VARCHAR)
                        ELSE 'record:' || f.cluster_key END AS seed,
                   CASE WHEN s.old_id IS NOT NULL THEN 'split' ELSE 'new' END AS origin
            FROM cluster_facts f
            LEFT JOIN kept k ON k.cluster_key = f.cluster_key
            LEFT JOIN (
                SELECT cluster_key, old_id FROM (
                    SELECT o.cluster_key, o.old_id,
                           row_number() OVER (PARTITION BY o.cluster_key
                                              ORDER BY {_ordered("i")}) AS oldest
                    FROM overlap o JOIN prev_ids i ON i.old_id = o.old_id) ranked
                WHERE oldest = 1
            ) s ON s.cluster_key = f.cluster_key
            WHERE k.person_id IS NULL
            """,
        ),
        SqlStep(
            "taken",
            """
            SELECT old_id AS person_id FROM prev_ids
            UNION SELECT person_id FROM prev_person_ids
            UNION SELECT retired_id FROM prev_redirects
            """,
        ),
        SqlStep(
            "fresh_ids",
            """
            SELECT cluster_key, seed, origin, 0 AS attempt,
                   'p_' || substr(md5(seed), 1, 16) AS person_id
            FROM fresh
            """,
        ),
    )


# Fresh ids that collide with a taken id or with another fresh id of a smaller cluster_key.
_COLLIDING = """
SELECT cluster_key FROM (
    SELECT f.cluster_key, f.person_id,
           row_number() OVER (PARTITION BY f.person_id ORDER BY f.cluster_key) AS rank_in_id
    FROM fresh_ids f) ranked
WHERE rank_in_id > 1 OR person_id IN (SELECT person_id FROM taken)
"""


def _result_steps(day: dt.date) -> tuple[SqlStep, ...]:
    today = f"DATE '{day.isoformat()}'"
    return (
        SqlStep(
            "ids",
            """
            SELECT cluster_key, person_id, 'kept' AS origin FROM kept
            UNION ALL SELECT cluster_key, person_id, origin FROM fresh_ids
            """,
        ),
        SqlStep(
            "assignment",
            """
            SELECT c.record_key, i.person_id, c.pos
            FROM clusters_in c JOIN ids i ON i.cluster_key = c.cluster_key
            ORDER BY c.pos
            """,
        ),
        SqlStep(
            "reasons",
            """
            SELECT cluster_key, string_agg(DISTINCT reason, '; ' ORDER BY reason) || ': '
                AS prefix
            FROM reasons_in WHERE reason IS NOT NULL GROUP BY cluster_key
            """,
        ),
        SqlStep(
            "history",
            f"""
            SELECT * FROM (
                SELECT {today} AS dt, 'merge' AS event, a.survivor_id AS person_id,
                       a.absorbed_id AS other_person_id,
                       coalesce(r.prefix, '') || 'clusters joined' AS reason
                FROM absorbed a LEFT JOIN reasons r ON r.cluster_key = a.cluster_key
                UNION ALL
                SELECT {today}, 'split', i.person_id, o.old_id,
                       coalesce(r.prefix, '') || CAST(o.n AS VARCHAR) || ' of '
                           || CAST(p.total AS VARCHAR) || ' records'
                FROM overlap o
                JOIN home h ON h.old_id = o.old_id
                JOIN ids i ON i.cluster_key = o.cluster_key
                JOIN prev_ids p ON p.old_id = o.old_id
                LEFT JOIN reasons r ON r.cluster_key = o.cluster_key
                WHERE o.cluster_key <> h.home
                UNION ALL
                SELECT {today}, 'retire', p.old_id, CAST(NULL AS VARCHAR), 'no records left'
                FROM prev_ids p
                WHERE p.old_id NOT IN (SELECT old_id FROM home)
            ) events
            ORDER BY event, person_id, other_person_id
            """,
        ),
        # Yesterday's live ids as today's: kept, or absorbed into a survivor (vanished: none).
        SqlStep(
            "live_map",
            """
            SELECT person_id AS old_id, person_id FROM kept
            UNION ALL SELECT absorbed_id, survivor_id FROM absorbed
            """,
        ),
        SqlStep(
            "redirects",
            f"""
            SELECT * FROM (
                SELECT r.retired_id, m.person_id, r.since
                FROM prev_redirects r JOIN live_map m ON m.old_id = r.person_id
                UNION ALL
                SELECT absorbed_id, survivor_id, {today} FROM absorbed
            ) chained
            ORDER BY retired_id
            """,
        ),
        SqlStep(
            "person_ids",
            f"""
            SELECT * FROM (
                SELECT k.person_id, coalesce(p.created_on, {today}) AS created_on,
                       least(f.first_seen, c.first_seen) AS first_seen
                FROM kept k
                JOIN cluster_facts f ON f.cluster_key = k.cluster_key
                LEFT JOIN prev_ids p ON p.old_id = k.person_id
                LEFT JOIN (SELECT cluster_key, min(first_seen) AS first_seen
                           FROM claims GROUP BY cluster_key) c ON c.cluster_key = k.cluster_key
                UNION ALL
                SELECT i.person_id, {today}, f.first_seen
                FROM fresh_ids i JOIN cluster_facts f ON f.cluster_key = i.cluster_key
            ) ids
            ORDER BY person_id
            """,
        ),
    )


def _resolve_collisions(local: LocalSql) -> None:
    """Re-derive colliding fresh ids (``md5(seed + "#k")``) until every id is unique."""
    for _ in range(MAX_ATTEMPTS):
        local.execute(f"CREATE OR REPLACE TEMP TABLE colliding AS {_COLLIDING}")
        ((count,),) = local.rows("SELECT count(*) FROM colliding")
        if not count:
            return
        local.execute(
            """
            UPDATE fresh_ids SET attempt = attempt + 1,
                person_id = 'p_' || substr(md5(seed || '#' || CAST(attempt + 1 AS VARCHAR)), 1, 16)
            WHERE cluster_key IN (SELECT cluster_key FROM colliding)
            """
        )
    raise DataError(f"identity: person ids still collide after {MAX_ATTEMPTS} re-derivations")


def _empty(schema: pa.Schema) -> pa.Table:
    return schema.empty_table()


def assign(
    compute: Compute,
    clusters: pa.Table,
    records: pa.Table,
    previous: Previous | None,
    day: dt.date,
    reasons: pa.Table | None = None,
) -> Assignment:
    """Person ids for today's clusters, continuing ``previous`` (see the module docstring),
    computed in one in-process session of ``compute``.

    ``records`` needs record_key, source, record_type, customer_id and first_seen of every
    clustered record. ``reasons`` (optional; cluster_key, reason — e.g. the clustering
    ``FLAGS`` or the evidence that joined a cluster) prefixes the history rows of a cluster.
    """
    if previous is not None and previous.day >= day:
        raise ValueError(
            f"identity: the previous state is of {previous.day}, not before {day}; "
            "read it with c360.pipeline.identity.previous(lake, day)"
        )
    clusters = require(clusters, CLUSTERS, "clusters", ("record_key", "cluster_key"))
    records = require(records, RECORDS, "records", _RECORD_COLUMNS)
    prev_assignment = _empty(ASSIGNMENT)
    prev_redirects = _empty(REDIRECTS)
    prev_person_ids = _empty(PERSON_IDS)
    if previous is not None:
        prev_assignment = require(
            previous.assignment, ASSIGNMENT, "previous assignment", tuple(ASSIGNMENT.names)
        )
        prev_redirects = require(
            previous.redirects, REDIRECTS, "previous redirects", tuple(REDIRECTS.names)
        )
        prev_person_ids = require(
            previous.person_ids, PERSON_IDS, "previous person ids", tuple(PERSON_IDS.names)
        )
    reasons = require(
        reasons if reasons is not None else _empty(CLUSTER_REASONS),
        CLUSTER_REASONS,
        "reasons",
        ("cluster_key", "reason"),
    )
    with compute.local() as local:
        load_in(local, records)
        local.register("clusters_arrow", clusters)
        local.execute(
            f"CREATE TEMP TABLE clusters AS SELECT c.*, r.pos FROM clusters_arrow c "
            f"LEFT JOIN ({RECORD_KEYS}) r USING (record_key)"
        )
        for name, table in (
            ("prev_assignment", prev_assignment),
            ("prev_redirects", prev_redirects),
            ("prev_person_ids", prev_person_ids),
            ("reasons_in", reasons),
        ):
            local.register(name, table)
        assign_in(local, day)
        out = {name: local.table(f"SELECT * FROM {name}") for name in ASSIGN_OUTPUTS}
    out["assignment"] = out["assignment"].select(ASSIGNMENT.names)
    return Assignment(
        day=day,
        assignment=out["assignment"].cast(ASSIGNMENT),
        history=out["history"].cast(PERSON_HISTORY),
        redirects=out["redirects"].cast(REDIRECTS),
        person_ids=out["person_ids"].cast(PERSON_IDS),
    )


ASSIGN_OUTPUTS = ("assignment", "history", "redirects", "person_ids")


def assign_in(local: LocalSql, day: dt.date) -> None:
    """:func:`assign` on tables of ``local``: ``clusters`` (with each record's position
    ``pos``), ``records`` (in record_key order:
    :func:`c360.identity.records.records_in_order`), ``prev_assignment``, ``prev_redirects``,
    ``prev_person_ids`` and ``reasons_in`` (CLUSTER_REASONS) in, the tables of
    :data:`ASSIGN_OUTPUTS` out (``assignment`` with ``pos``; the intermediate steps are
    dropped)."""
    local.execute("CREATE OR REPLACE TEMP VIEW clusters_in AS SELECT * FROM clusters")
    _validate(local)
    local.run(_steps(), [])
    _resolve_collisions(local)
    local.run(_result_steps(day), [])
    for step in (*_steps(), *_result_steps(day)):
        if step.name not in ASSIGN_OUTPUTS:
            local.execute(f"DROP TABLE IF EXISTS {step.name}")
    local.execute("DROP TABLE IF EXISTS colliding")
    local.execute("DROP VIEW clusters_in")


def summary_in(local: LocalSql) -> dict[str, int]:
    """:meth:`Assignment.summary` of the tables :func:`assign_in` left in ``local``."""
    ((records, persons, merges, splits, retired, redirects),) = local.rows(
        f"""
        SELECT (SELECT count(*) FROM assignment), (SELECT count(*) FROM person_ids),
               count(*) FILTER (WHERE event = '{MERGE}'), count(*) FILTER (WHERE event = '{SPLIT}'),
               count(*) FILTER (WHERE event = '{RETIRE}'), (SELECT count(*) FROM redirects)
        FROM history
        """
    )
    return {
        "records": records,
        "persons": persons,
        "merges": merges,
        "splits": splits,
        "retired": retired,
        "redirects": redirects,
    }


@dataclass(frozen=True)
class IdentityMap:
    map: pa.Table  # IDENTITY_MAP, sorted by (id_type, id_value)
    ambiguous: pa.Table  # AMBIGUOUS: values whose records lie in several persons, left out


_IDENTITY_MAP_STEPS = (
    SqlStep(
        "candidates",
        """
        SELECT DISTINCT i.id_type, i.id_value, a.person_id
        FROM identifiers_in i JOIN assignment_in a ON a.pos = i.pos
        WHERE i.id_type IS NOT NULL AND i.id_value IS NOT NULL
        """,
    ),
    SqlStep(
        "owners",
        """
        SELECT v.id_type, v.id_value, a.person_id AS owner
        FROM (SELECT DISTINCT id_type, id_value FROM candidates) v
        JOIN owner_records o ON o.id_type = v.id_type
        JOIN assignment_in a ON a.record_key = o.prefix || v.id_value
        """,
    ),
    SqlStep(
        "resolved",
        """
        SELECT c.id_type, c.id_value, count(*) AS persons, min(c.person_id) AS person_id,
               any_value(o.owner) AS owner
        FROM candidates c
        LEFT JOIN owners o ON o.id_type = c.id_type AND o.id_value = c.id_value
        GROUP BY c.id_type, c.id_value
        """,
    ),
    SqlStep(
        "identity_map",
        """
        SELECT id_type, id_value, coalesce(owner, person_id) AS person_id FROM resolved
        WHERE persons = 1 OR owner IS NOT NULL
        ORDER BY id_type, id_value
        """,
    ),
    SqlStep(
        "ambiguous",
        """
        SELECT id_type, id_value, persons FROM resolved
        WHERE persons > 1 AND owner IS NULL
        ORDER BY id_type, id_value
        """,
    ),
)


def identity_map(compute: Compute, identifiers: pa.Table, assignment: pa.Table) -> IdentityMap:
    """One person per identifier value, from the records that carry it (computed in one
    in-process session of ``compute``).

    A value whose records all belong to one person maps to it. A value that names a record
    (``OWNER_RECORDS``: a customer_id names ``mysql/customer:<id>``, …) maps to that record's
    person even if other records carry it too. Any other value carried by records of several
    persons (a shared family email, a shop's front-desk phone) is ambiguous: it is left out and
    listed in ``ambiguous``.
    """
    identifiers = require(
        identifiers, IDENTIFIERS, "identifiers", ("record_key", "id_type", "id_value")
    )
    assignment = require(assignment, ASSIGNMENT, "assignment", tuple(ASSIGNMENT.names))
    with compute.local() as local:
        # Each record a position (its rank by record_key), as the step's session has them.
        local.register("assignment_arrow", assignment)
        local.register("identifiers_arrow", identifiers)
        local.execute(
            "CREATE TEMP TABLE assignment_in AS SELECT *, "
            "dense_rank() OVER (ORDER BY record_key) AS pos FROM assignment_arrow"
        )
        local.execute(
            "CREATE TEMP TABLE identifiers_in AS SELECT i.*, a.pos FROM identifiers_arrow i "
            "LEFT JOIN (SELECT DISTINCT record_key, pos FROM assignment_in) a USING (record_key)"
        )
        identity_map_in(local)
        out = {name: local.table(f"SELECT * FROM {name}") for name in ("identity_map", "ambiguous")}
    return IdentityMap(out["identity_map"].cast(IDENTITY_MAP), out["ambiguous"].cast(AMBIGUOUS))


def identity_map_in(local: LocalSql) -> None:
    """:func:`identity_map` on ``local``'s ``identifiers_in`` and ``assignment_in`` (both with
    each record's position ``pos``): its tables ``identity_map`` and ``ambiguous``."""
    owner_records = pa.table(
        {"id_type": list(OWNER_RECORDS), "prefix": list(OWNER_RECORDS.values())}
    )
    local.register("owner_records", owner_records)
    local.run(_IDENTITY_MAP_STEPS, [])
    local.unregister("owner_records")
    for step in _IDENTITY_MAP_STEPS:
        if step.name not in ("identity_map", "ambiguous"):
            local.execute(f"DROP TABLE {step.name}")
