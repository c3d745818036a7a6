"""Pairwise precision / recall / F1 against a hand-made ground truth (expected values by hand)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from c360.config import ComputeSettings
from c360.engines import open_compute
from c360.errors import DataError
from c360.identity.evaluate import Scores, TypeScore, evaluate

COMPUTE = open_compute(ComputeSettings())

# Truth: person 1 = customer 1, orders 10 and 11 (+ a ticket: not an identity record);
# person 2 = customer 2, Zendesk user u2, and Zendesk user u9 (absent from every assignment
# below); person 3 = cookie c3 (through identifiers.parquet) and Mailchimp member m3.
# Scored true pairs: C(3,2) + C(2,2) + C(2,2) = 3 + 1 + 1 = 5.
TRUTH_RECORDS = [
    ("mysql", "customer", "1", 1),
    ("mysql", "order", "10", 1),
    ("mysql", "order", "11", 1),
    ("zendesk", "ticket", "t1", 1),
    ("mysql", "customer", "2", 2),
    ("zendesk", "user", "u2", 2),
    ("zendesk", "user", "u9", 2),
    ("mailchimp", "member", "m3", 3),
]
TRUTH_IDENTIFIERS = [
    ("anonymous_id", "c3", 3),
    ("email", "someone@x.com", 3),  # not a record: ignored
]
PERSON_1 = ["mysql/customer:1", "mysql/order:10", "mysql/order:11"]
PERSON_2 = ["mysql/customer:2", "zendesk/user:u2"]
PERSON_3 = ["clickstream/cookie:c3", "mailchimp/member:m3"]


@pytest.fixture
def truth(tmp_path: Path) -> Path:
    names = ("source", "record_type", "record_id", "person_key")
    pq.write_table(
        pa.Table.from_pylist([dict(zip(names, r, strict=True)) for r in TRUTH_RECORDS]),
        tmp_path / "records.parquet",
    )
    names = ("id_type", "id_value", "person_key")
    pq.write_table(
        pa.Table.from_pylist([dict(zip(names, r, strict=True)) for r in TRUTH_IDENTIFIERS]),
        tmp_path / "identifiers.parquet",
    )
    return tmp_path


def assignment(*persons: list[str]) -> pa.Table:
    rows = [
        {"record_key": key, "person_id": f"p{i}"} for i, keys in enumerate(persons) for key in keys
    ]
    return pa.Table.from_pylist(rows)


def types(scores: Scores) -> dict[str, tuple[int, int, int, int, int]]:
    return {
        t.record_type: (
            t.records,
            t.wrongly_merged,
            t.split_off,
            t.missing_from_truth,
            t.missing_from_assignment,
        )
        for t in scores.by_type
    }


def test_a_perfect_assignment_scores_one(truth: Path) -> None:
    # mysql/order:99 is not in truth; zendesk/user:u9 is not in the assignment: neither is
    # scored (7 records are), both are counted as missing.
    scores = evaluate(COMPUTE, assignment([*PERSON_1, "mysql/order:99"], PERSON_2, PERSON_3), truth)
    assert (scores.true_positive_pairs, scores.predicted_pairs, scores.true_pairs) == (5, 5, 5)
    assert (scores.precision, scores.recall, scores.f1) == (1.0, 1.0, 1.0)
    assert (scores.records, scores.predicted_persons, scores.true_persons) == (7, 3, 3)
    assert types(scores) == {
        "clickstream/cookie": (1, 0, 0, 0, 0),
        "mailchimp/member": (1, 0, 0, 0, 0),
        "mysql/customer": (2, 0, 0, 0, 0),
        "mysql/order": (2, 0, 0, 1, 0),
        "zendesk/user": (1, 0, 0, 0, 1),
    }
    assert scores.unscored_types == {"zendesk/ticket": 1}


def test_one_false_merge_costs_precision(truth: Path) -> None:
    # Persons 2 and 3 predicted as one: predicted pairs = C(3,2) + C(4,2) = 3 + 6 = 9; true
    # positives = C(3,2) + C(2,2) + C(2,2) = 5 (cells 1/p0: 3, 2/p1: 2, 3/p1: 2).
    # precision = 5/9, recall = 5/5, F1 = 2·(5/9)·1 / (5/9 + 1) = 10/14 = 5/7.
    scores = evaluate(COMPUTE, assignment(PERSON_1, [*PERSON_2, *PERSON_3]), truth)
    assert (scores.true_positive_pairs, scores.predicted_pairs, scores.true_pairs) == (5, 9, 5)
    assert scores.precision == pytest.approx(5 / 9)
    assert scores.recall == 1.0
    assert scores.f1 == pytest.approx(5 / 7)
    # p1 holds 2 records of person 2 and 2 of person 3: the tie goes to person 2 (smaller key),
    # so person 3's cookie and member are the wrongly merged records.
    assert types(scores) == {
        "clickstream/cookie": (1, 1, 0, 0, 0),
        "mailchimp/member": (1, 1, 0, 0, 0),
        "mysql/customer": (2, 0, 0, 0, 0),
        "mysql/order": (2, 0, 0, 0, 0),
        "zendesk/user": (1, 0, 0, 0, 1),
    }


def test_one_false_split_costs_recall(truth: Path) -> None:
    # Order 11 split off person 1: predicted pairs = C(2,2) + 0 + 1 + 1 = 3, all true;
    # precision = 3/3, recall = 3/5, F1 = 2·1·0.6 / 1.6 = 0.75.
    scores = evaluate(
        COMPUTE,
        assignment(["mysql/customer:1", "mysql/order:10"], ["mysql/order:11"], PERSON_2, PERSON_3),
        truth,
    )
    assert (scores.true_positive_pairs, scores.predicted_pairs, scores.true_pairs) == (3, 3, 5)
    assert scores.precision == 1.0
    assert scores.recall == pytest.approx(0.6)
    assert scores.f1 == pytest.approx(0.75)
    assert types(scores)["mysql/order"] == (2, 0, 1, 0, 0)
    assert scores.predicted_persons == 4


def test_all_singletons_have_no_pairs_to_get_wrong(truth: Path) -> None:
    scores = evaluate(COMPUTE, assignment(["mysql/customer:1"], ["mysql/customer:2"]), truth)
    assert (scores.true_positive_pairs, scores.predicted_pairs, scores.true_pairs) == (0, 0, 0)
    assert (scores.precision, scores.recall, scores.f1) == (1.0, 1.0, 1.0)
    assert types(scores) == {"mysql/customer": (2, 0, 0, 0, 0)}
    # Types the assignment has none of are not "missing": identity may not cluster them.
    assert scores.unscored_types == {
        "clickstream/cookie": 1,
        "mailchimp/member": 1,
        "mysql/order": 2,
        "zendesk/ticket": 1,
        "zendesk/user": 2,
    }


def test_scores_serialise_to_json(truth: Path) -> None:
    scores = evaluate(COMPUTE, assignment(PERSON_1, PERSON_2, PERSON_3), truth)
    loaded = json.loads(json.dumps(scores.as_dict()))
    assert loaded["f1"] == 1.0
    assert loaded["by_type"][0] == {
        "record_type": "clickstream/cookie",
        "records": 1,
        "wrongly_merged": 0,
        "split_off": 0,
        "missing_from_truth": 0,
        "missing_from_assignment": 0,
    }
    assert TypeScore(**loaded["by_type"][0]) == scores.by_type[0]


def test_bad_inputs_are_named(truth: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no .*records\.parquet"):
        evaluate(COMPUTE, assignment(PERSON_1), tmp_path / "nowhere")
    with pytest.raises(DataError, match="several persons"):
        evaluate(
            COMPUTE,
            pa.table({"record_key": ["mysql/order:10"] * 2, "person_id": ["a", "b"]}),
            truth,
        )
    with pytest.raises(DataError, match="lacks column"):
        evaluate(COMPUTE, pa.table({"record_key": ["mysql/order:10"]}), truth)
