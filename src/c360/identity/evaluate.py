"""Identity accuracy against the simulator's ground truth: pairwise precision, recall and F1.

Truth names records as identity does (``<source>/<record_type>:<record_id>``): every record of
``truth/records.parquet``, and a ``clickstream/cookie:<anonymous_id>`` record per
``anonymous_id`` of ``truth/identifiers.parquet`` (the simulator attributes clickstream through
cookies). Scoring covers the records on both sides, of the record types the assignment has:
truth types identity does not cluster (tickets, email activity) are listed as unscored.

Pairs are counted, never listed: with ``n_ij`` records of predicted person i and true person j,

- true positives      = Σ_ij C(n_ij, 2)   (pairs together in both)
- predicted positives = Σ_i  C(a_i, 2),  a_i = Σ_j n_ij
- true pairs          = Σ_j  C(b_j, 2),  b_j = Σ_i n_ij

precision = TP / predicted positives, recall = TP / true pairs, F1 their harmonic mean. With no
predicted (or true) pairs at all, precision (recall) is 1: nothing was wrongly joined (missed).

Per record type, a record is *wrongly merged* when its true person is not the majority true
person of its predicted person, and *split off* when its predicted person is not the majority
predicted person of its true person (majority: most records, ties to the smallest key).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from c360.contracts.compute import Compute, LocalSql, SqlStep
from c360.contracts.identity import ASSIGNMENT
from c360.errors import DataError
from c360.identity.normalise import email_key, map_distinct


@dataclass(frozen=True)
class TypeScore:
    record_type: str  # "<source>/<record_type>"
    records: int  # scored (on both sides)
    wrongly_merged: int
    split_off: int
    missing_from_truth: int  # in the assignment, not in truth
    missing_from_assignment: int  # in truth, not in the assignment


@dataclass(frozen=True)
class Scores:
    records: int  # scored: in both the assignment and truth
    predicted_persons: int
    true_persons: int
    true_positive_pairs: int
    predicted_pairs: int
    true_pairs: int
    precision: float
    recall: float
    f1: float
    by_type: tuple[TypeScore, ...]
    unscored_types: dict[str, int]  # truth record types the assignment has none of: count

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (``--json``)."""
        values = asdict(self)
        values["by_type"] = [asdict(t) for t in self.by_type]
        return values


def _ratio(part: int, whole: int) -> float:
    return 1.0 if whole == 0 else part / whole


_STEPS = (
    SqlStep(
        "predicted",
        """
        SELECT record_key, person_id, split_part(record_key, ':', 1) AS record_type
        FROM assignment_in
        """,
    ),
    SqlStep("scored_types", "SELECT DISTINCT record_type FROM predicted"),
    SqlStep(
        "truth_typed",
        """
        SELECT DISTINCT record_key, record_type, person_key FROM (
            SELECT source || '/' || record_type || ':' || record_id AS record_key,
                   source || '/' || record_type AS record_type, person_key
            FROM truth_records
            WHERE source || '/' || record_type IN (SELECT record_type FROM scored_types)
            UNION ALL
            SELECT 'clickstream/cookie:' || id_value, 'clickstream/cookie', person_key
            FROM truth_identifiers
            WHERE id_type = 'anonymous_id'
              AND 'clickstream/cookie' IN (SELECT record_type FROM scored_types)
        ) keyed
        """,
    ),
    SqlStep(
        "matched",
        """
        SELECT p.record_key, p.record_type, p.person_id, t.person_key
        FROM predicted p JOIN truth_typed t ON t.record_key = p.record_key
        """,
    ),
    SqlStep(
        "cells",
        "SELECT person_id, person_key, count(*) AS n FROM matched GROUP BY person_id, person_key",
    ),
    SqlStep(
        "pairs",
        """
        SELECT
            (SELECT coalesce(sum(n * (n - 1) // 2), 0) FROM cells) AS tp,
            (SELECT coalesce(sum(a * (a - 1) // 2), 0)
             FROM (SELECT sum(n) AS a FROM cells GROUP BY person_id) x) AS predicted_pairs,
            (SELECT coalesce(sum(b * (b - 1) // 2), 0)
             FROM (SELECT sum(n) AS b FROM cells GROUP BY person_key) y) AS true_pairs,
            (SELECT count(*) FROM matched) AS records,
            (SELECT count(DISTINCT person_id) FROM matched) AS predicted_persons,
            (SELECT count(DISTINCT person_key) FROM matched) AS true_persons
        """,
    ),
    SqlStep(
        "majority_true",
        """
        SELECT person_id, person_key FROM (
            SELECT person_id, person_key,
                   row_number() OVER (PARTITION BY person_id ORDER BY n DESC, person_key) AS r
            FROM cells) ranked
        WHERE r = 1
        """,
    ),
    SqlStep(
        "majority_predicted",
        """
        SELECT person_key, person_id FROM (
            SELECT person_id, person_key,
                   row_number() OVER (PARTITION BY person_key ORDER BY n DESC, person_id) AS r
            FROM cells) ranked
        WHERE r = 1
        """,
    ),
    SqlStep(
        "by_type",
        """
        WITH scored AS (
            SELECT b.record_type, count(*) AS records,
                   sum(CASE WHEN mt.person_key <> b.person_key THEN 1 ELSE 0 END)
                       AS wrongly_merged,
                   sum(CASE WHEN mp.person_id <> b.person_id THEN 1 ELSE 0 END) AS split_off
            FROM matched b
            JOIN majority_true mt ON mt.person_id = b.person_id
            JOIN majority_predicted mp ON mp.person_key = b.person_key
            GROUP BY b.record_type
        ),
        only_predicted AS (
            SELECT p.record_type, count(*) AS missing_from_truth
            FROM predicted p
            WHERE NOT EXISTS (SELECT 1 FROM truth_typed t WHERE t.record_key = p.record_key)
            GROUP BY p.record_type
        ),
        only_truth AS (
            SELECT t.record_type, count(*) AS missing_from_assignment
            FROM truth_typed t
            WHERE NOT EXISTS (SELECT 1 FROM predicted p WHERE p.record_key = t.record_key)
            GROUP BY t.record_type
        )
        SELECT s.record_type,
               coalesce(sc.records, 0) AS records,
               coalesce(sc.wrongly_merged, 0) AS wrongly_merged,
               coalesce(sc.split_off, 0) AS split_off,
               coalesce(op.missing_from_truth, 0) AS missing_from_truth,
               coalesce(ot.missing_from_assignment, 0) AS missing_from_assignment
        FROM scored_types s
        LEFT JOIN scored sc ON sc.record_type = s.record_type
        LEFT JOIN only_predicted op ON op.record_type = s.record_type
        LEFT JOIN only_truth ot ON ot.record_type = s.record_type
        ORDER BY s.record_type
        """,
    ),
    SqlStep(
        "unscored",
        """
        SELECT record_type, count(*) AS records FROM (
            SELECT source || '/' || record_type AS record_type FROM truth_records
            UNION ALL
            SELECT 'clickstream/cookie' FROM truth_identifiers WHERE id_type = 'anonymous_id'
        ) typed
        WHERE record_type NOT IN (SELECT record_type FROM scored_types)
        GROUP BY record_type ORDER BY record_type
        """,
    ),
)

_TRUTH_COLUMNS = {
    "records.parquet": ("source", "record_type", "record_id", "person_key"),
    "identifiers.parquet": ("id_type", "id_value", "person_key"),
}


def _type_score(row: dict[str, Any]) -> TypeScore:
    return TypeScore(
        record_type=str(row["record_type"]),
        records=int(row["records"]),
        wrongly_merged=int(row["wrongly_merged"]),
        split_off=int(row["split_off"]),
        missing_from_truth=int(row["missing_from_truth"]),
        missing_from_assignment=int(row["missing_from_assignment"]),
    )


def _truth_file(local: LocalSql, truth_dir: Path, name: str, view: str) -> None:
    path = truth_dir / name
    if not path.is_file():
        raise DataError(
            f"identity eval: no {path}; generate the world with its ground truth "
            "(simulator.truth_dir) and point truth_dir at it"
        )
    quoted = str(path).replace("'", "''")
    local.execute(f"CREATE VIEW {view} AS SELECT * FROM read_parquet('{quoted}')")
    present = {row[0] for row in local.rows(f"DESCRIBE {view}")}
    missing = [c for c in _TRUTH_COLUMNS[name] if c not in present]
    if missing:
        raise DataError(f"identity eval: {path} lacks column(s) {missing}")


def shared_email_key_share(truth_dir: Path) -> float:
    """Share of the email keys (matching form) in the ground truth used by two or more persons:
    how much of the population shares a mailbox (issue 17 asks for accuracy at ≥ 2 %)."""
    path = truth_dir / "identifiers.parquet"
    if not path.is_file():
        raise DataError(f"identity eval: no {path}; generate the world with its ground truth")
    table = pq.read_table(path, columns=["id_type", "id_value", "person_key"])
    emails = table.filter(pc.equal(table["id_type"], "email"))
    keys = pa.table(
        {"key": map_distinct(emails["id_value"], email_key), "person_key": emails["person_key"]}
    )
    owners = keys.group_by("key").aggregate([("person_key", "count_distinct")])
    shared = pc.sum(pc.greater(owners["person_key_count_distinct"], 1).cast(pa.int64())).as_py()
    return (shared or 0) / owners.num_rows if owners.num_rows else 0.0


def evaluate(compute: Compute, assignment: pa.Table, truth_dir: Path) -> Scores:
    """Score an assignment (record_key, person_id) against the ground truth in ``truth_dir``
    (in an in-process session of ``compute``)."""
    missing = [c for c in ASSIGNMENT.names if c not in assignment.column_names]
    if missing:
        raise DataError(f"identity eval: the assignment lacks column(s) {missing}")
    assignment = assignment.select(ASSIGNMENT.names).cast(ASSIGNMENT)
    with compute.local() as local:
        local.register("assignment_in", assignment)
        (duplicated,) = local.rows(
            "SELECT any_value(record_key), count(*) FROM "
            "(SELECT record_key FROM assignment_in GROUP BY record_key HAVING count(*) > 1) d"
        )
        if duplicated[1]:
            raise DataError(
                f"identity eval: {duplicated[1]} record(s) have several persons in the "
                f"assignment, e.g. {duplicated[0]!r}"
            )
        _truth_file(local, truth_dir, "records.parquet", "truth_records")
        _truth_file(local, truth_dir, "identifiers.parquet", "truth_identifiers")
        out = local.run(_STEPS, ["pairs", "by_type", "unscored"])
    pairs = out["pairs"].to_pylist()[0]
    tp, predicted, true = (int(pairs[k]) for k in ("tp", "predicted_pairs", "true_pairs"))
    precision, recall = _ratio(tp, predicted), _ratio(tp, true)
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return Scores(
        records=int(pairs["records"]),
        predicted_persons=int(pairs["predicted_persons"]),
        true_persons=int(pairs["true_persons"]),
        true_positive_pairs=tp,
        predicted_pairs=predicted,
        true_pairs=true,
        precision=precision,
        recall=recall,
        f1=f1,
        by_type=tuple(_type_score(row) for row in out["by_type"].to_pylist()),
        unscored_types={
            row["record_type"]: int(row["records"]) for row in out["unscored"].to_pylist()
        },
    )
