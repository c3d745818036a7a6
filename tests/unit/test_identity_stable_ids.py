"""Stable person ids across daily runs: keep, merge, split, retire, redirects, identity_map."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import pyarrow as pa
import pytest

from c360.config import ComputeSettings
from c360.contracts.identity import (
    ASSIGNMENT,
    IDENTIFIERS,
    PERSON_HISTORY,
    PERSON_IDS,
    RECORDS,
    REDIRECTS,
    SOURCE,
    ZONE,
)
from c360.engines import open_compute
from c360.errors import DataError
from c360.identity.stable_ids import (
    Assignment,
    Previous,
    assign,
    identity_map,
)
from c360.lake import Lake
from c360.pipeline.identity import previous as kept_state

D1, D2, D3, D4 = (dt.date(2025, 3, d) for d in (1, 2, 3, 4))
COMPUTE = open_compute(ComputeSettings())


def pid(seed: str) -> str:
    """The documented id scheme, computed independently of the code under test."""
    return "p_" + hashlib.md5(seed.encode()).hexdigest()[:16]


def seen(days: int) -> dt.datetime:
    return dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=days)


def records(first_seen: Mapping[str, int]) -> pa.Table:
    """RECORDS for record keys → first_seen (days after 2024-01-01); customers carry their id."""
    rows = []
    for key, days in first_seen.items():
        source, rest = key.split("/", 1)
        record_type, record_id = rest.split(":", 1)
        rows.append(
            {
                "record_key": key,
                "source": source,
                "record_type": record_type,
                "record_id": record_id,
                "customer_id": int(record_id) if record_type == "customer" else None,
                "first_seen": seen(days),
            }
        )
    return pa.Table.from_pylist(
        [{f.name: row.get(f.name) for f in RECORDS} for row in rows], schema=RECORDS
    )


def clusters(*groups: Iterable[str]) -> pa.Table:
    """CLUSTERS: each group one cluster, keyed by its smallest record_key."""
    rows = []
    for group in groups:
        keys = sorted(group)
        rows += [{"record_key": key, "cluster_key": keys[0]} for key in keys]
    return pa.Table.from_pylist(rows)


def persons(result: Assignment) -> dict[str, str]:
    return {r["record_key"]: r["person_id"] for r in result.assignment.to_pylist()}


def history(result: Assignment) -> list[tuple[str, str, str | None, str]]:
    return [
        (r["event"], r["person_id"], r["other_person_id"], r["reason"])
        for r in result.history.to_pylist()
    ]


def redirects(result: Assignment) -> dict[str, tuple[str, dt.date]]:
    return {r["retired_id"]: (r["person_id"], r["since"]) for r in result.redirects.to_pylist()}


# Three customers with an order each, a Zendesk user and a cookie (first_seen in brackets):
# customer 1 [0] + order 10 [5]; customer 2 [10] + order 20 [12]; customer 3 [20] + order 30
# [21]; zendesk user z [30]; cookie c [40].
RECS = records(
    {
        "mysql/customer:1": 0,
        "mysql/order:10": 5,
        "mysql/customer:2": 10,
        "mysql/order:20": 12,
        "mysql/customer:3": 20,
        "mysql/order:30": 21,
        "zendesk/user:z": 30,
        "clickstream/cookie:c": 40,
    }
)
C1 = ("mysql/customer:1", "mysql/order:10")
C2 = ("mysql/customer:2", "mysql/order:20")
C3 = ("mysql/customer:3", "mysql/order:30")
Z, COOKIE = "zendesk/user:z", "clickstream/cookie:c"
P1, P2, P3 = pid("customer_id:1"), pid("customer_id:2"), pid("customer_id:3")
PZ = pid("record:zendesk/user:z")


def first_day() -> Assignment:
    return assign(COMPUTE, clusters(C1, C2, C3, [Z, COOKIE]), RECS, None, D1)


def test_first_run_anchors_customers_and_other_clusters() -> None:
    result = first_day()
    # The cluster of z and the cookie has no customer: it is anchored on its cluster key (the
    # smaller record key, clickstream/cookie:c).
    cookie_person = pid("record:clickstream/cookie:c")
    assert persons(result) == {
        **dict.fromkeys(C1, P1),
        **dict.fromkeys(C2, P2),
        **dict.fromkeys(C3, P3),
        Z: cookie_person,
        COOKIE: cookie_person,
    }
    assert result.assignment.schema == ASSIGNMENT
    assert result.history.num_rows == 0 and result.history.schema == PERSON_HISTORY
    assert result.redirects.num_rows == 0 and result.redirects.schema == REDIRECTS
    assert result.person_ids.schema == PERSON_IDS
    registry = {r["person_id"]: r for r in result.person_ids.to_pylist()}
    assert registry[P2]["created_on"] == D1
    assert registry[P2]["first_seen"] == seen(10)  # the earliest record of the person
    assert result.summary() == {
        "records": 8,
        "persons": 4,
        "merges": 0,
        "splits": 0,
        "retired": 0,
        "redirects": 0,
    }


def test_two_customer_accounts_in_one_cluster_anchor_on_the_smaller_id() -> None:
    result = assign(COMPUTE, clusters([*C2, *C1]), RECS, None, D1)
    assert set(persons(result).values()) == {P1}


def test_unchanged_input_keeps_every_id_and_reruns_identically() -> None:
    day1 = first_day()
    grown = pa.concat_tables([RECS, records({"mysql/order:11": 50})])
    today = clusters([*C1, "mysql/order:11"], C2, C3, [Z, COOKIE])
    day2 = assign(COMPUTE, today, grown, day1.as_previous(), D2)
    assert persons(day2) == {**persons(day1), "mysql/order:11": P1}
    assert day2.history.num_rows == 0 and day2.redirects.num_rows == 0
    registry = {r["person_id"]: r["created_on"] for r in day2.person_ids.to_pylist()}
    assert registry[P1] == D1  # the id keeps its creation day
    again = assign(COMPUTE, today, grown, day1.as_previous(), D2)
    for name in ("assignment", "history", "redirects", "person_ids"):
        assert getattr(again, name).equals(getattr(day2, name)), name


def test_a_merge_keeps_the_oldest_id_and_redirects_the_absorbed_one() -> None:
    day1 = first_day()
    # Customer 2 and 3 are found to be one person: both ids were issued on D1, so the older
    # first_seen decides (customer 2, day 10, before customer 3, day 20).
    day2 = assign(COMPUTE, clusters(C1, [*C2, *C3], [Z, COOKIE]), RECS, day1.as_previous(), D2)
    assert {persons(day2)[k] for k in (*C2, *C3)} == {P2}
    assert history(day2) == [("merge", P2, P3, "clusters joined")]
    assert redirects(day2) == {P3: (P2, D2)}
    assert day2.summary()["merges"] == 1 and day2.summary()["persons"] == 3


def test_the_id_issued_first_survives_even_with_younger_records() -> None:
    # Customer 9 (first_seen long before anything of customer 1) arrives on D2, after customer
    # 1's person was issued on D1.
    late = records({"mysql/customer:9": -100})
    day1 = assign(COMPUTE, clusters(C1), RECS, None, D1)
    both = pa.concat_tables([RECS, late])
    day2 = assign(COMPUTE, clusters(C1, ["mysql/customer:9"]), both, day1.as_previous(), D2)
    p9 = pid("customer_id:9")
    assert persons(day2)["mysql/customer:9"] == p9
    day3 = assign(COMPUTE, clusters([*C1, "mysql/customer:9"]), both, day2.as_previous(), D3)
    assert set(persons(day3).values()) == {P1}  # issued D1 beats issued D2
    assert redirects(day3) == {p9: (P1, D3)}
    registry = {r["person_id"]: r for r in day3.person_ids.to_pylist()}
    assert registry[P1]["created_on"] == D1
    assert registry[P1]["first_seen"] == seen(-100)  # the survivor inherits the oldest record


def test_a_merge_reason_comes_from_the_reasons_table() -> None:
    day1 = first_day()
    reasons = pa.table({"cluster_key": ["mysql/customer:2"], "reason": ["email"]})
    day2 = assign(
        COMPUTE, clusters(C1, [*C2, *C3], [Z, COOKIE]), RECS, day1.as_previous(), D2, reasons
    )
    assert history(day2) == [("merge", P2, P3, "email: clusters joined")]


def test_a_split_issues_deterministic_new_ids() -> None:
    three = records({"mysql/customer:1": 0, "mysql/order:10": 5, "mysql/order:11": 6})
    day1 = assign(
        COMPUTE, clusters(["mysql/customer:1", "mysql/order:10", "mysql/order:11"]), three, None, D1
    )
    today = clusters(["mysql/customer:1", "mysql/order:10"], ["mysql/order:11"])
    day2 = assign(COMPUTE, today, three, day1.as_previous(), D2)
    new = pid(f"split:{P1}:mysql/order:11")
    assert persons(day2) == {"mysql/customer:1": P1, "mysql/order:10": P1, "mysql/order:11": new}
    assert history(day2) == [("split", new, P1, "1 of 3 records")]
    assert day2.redirects.num_rows == 0  # the original id lives on
    registry = {r["person_id"]: r["created_on"] for r in day2.person_ids.to_pylist()}
    assert registry == {P1: D1, new: D2}
    assert assign(COMPUTE, today, three, day1.as_previous(), D2).assignment.equals(day2.assignment)


def test_an_even_split_keeps_the_id_with_the_oldest_record() -> None:
    # One person: P1 (customer 1 anchors).
    day1 = assign(COMPUTE, clusters([*C1, *C2]), RECS, None, D1)
    # 2 records each side: customer 1 (first_seen day 0) is the oldest record.
    day2 = assign(COMPUTE, clusters(C2, C1), RECS, day1.as_previous(), D2)
    split = pid(f"split:{P1}:mysql/customer:2")
    assert persons(day2) == {**dict.fromkeys(C1, P1), **dict.fromkeys(C2, split)}
    assert history(day2) == [("split", split, P1, "2 of 4 records")]


def test_merge_and_split_on_the_same_day() -> None:
    day1 = first_day()
    # Customer 1's person and customer 2's person join in one cluster, and each loses its order
    # to a cluster of its own.
    today = clusters(
        ["mysql/customer:1", "mysql/customer:2"],
        ["mysql/order:10"],
        ["mysql/order:20"],
        C3,
        [Z, COOKIE],
    )
    day2 = assign(COMPUTE, today, RECS, day1.as_previous(), D2)
    split_1, split_2 = pid(f"split:{P1}:mysql/order:10"), pid(f"split:{P2}:mysql/order:20")
    ids = persons(day2)
    # Each person's home is the cluster holding its oldest record (1 record each side).
    assert ids["mysql/customer:1"] == ids["mysql/customer:2"] == P1
    assert ids["mysql/order:10"] == split_1 and ids["mysql/order:20"] == split_2
    assert history(day2) == [
        ("merge", P1, P2, "clusters joined"),
        *sorted(
            [("split", split_1, P1, "1 of 2 records"), ("split", split_2, P2, "1 of 2 records")]
        ),
    ]
    assert redirects(day2) == {P2: (P1, D2)}


def test_a_fragment_joining_another_person_is_a_split_of_its_original() -> None:
    day1 = first_day()
    day2 = assign(
        COMPUTE,
        clusters(["mysql/customer:1"], ["mysql/order:10", *C2], C3, [Z, COOKIE]),
        RECS,
        day1.as_previous(),
        D2,
    )
    assert persons(day2)["mysql/order:10"] == P2
    assert history(day2) == [("split", P2, P1, "1 of 2 records")]


def test_redirect_chains_are_compressed_to_one_hop() -> None:
    day1 = first_day()
    # D2: 3 into 2; D3: 2 into 1 — 3 must now point at 1 directly, retired since D2.
    day2 = assign(COMPUTE, clusters(C1, [*C2, *C3], [Z, COOKIE]), RECS, day1.as_previous(), D2)
    day3 = assign(COMPUTE, clusters([*C1, *C2, *C3], [Z, COOKIE]), RECS, day2.as_previous(), D3)
    assert set(persons(day3)[k] for k in (*C1, *C2, *C3)) == {P1}
    assert redirects(day3) == {P2: (P1, D3), P3: (P1, D2)}
    assert history(day3) == [("merge", P1, P2, "clusters joined")]


def test_a_person_whose_records_all_vanish_is_retired_without_redirect() -> None:
    day1 = first_day()
    day2 = assign(COMPUTE, clusters(C1, [*C2, *C3], [Z, COOKIE]), RECS, day1.as_previous(), D2)
    # Customers 2 and 3 are erased at source: P2 retires, and P3's redirect to it goes too.
    day3 = assign(COMPUTE, clusters(C1, [Z, COOKIE]), RECS, day2.as_previous(), D3)
    assert set(persons(day3).values()) == {P1, pid("record:clickstream/cookie:c")}
    assert history(day3) == [("retire", P2, None, "no records left")]
    assert day3.redirects.num_rows == 0
    # If customer 2 comes back, its anchor gives it its old id again.
    day4 = assign(COMPUTE, clusters(C1, C2, [Z, COOKIE]), RECS, day3.as_previous(), D4)
    assert persons(day4)["mysql/customer:2"] == P2


def test_a_taken_id_is_never_reissued() -> None:
    # Customer 9's anchor id is retired (it redirects to another person) when a new customer-9
    # record appears in a cluster of its own: it gets a re-derived id, deterministically.
    nine = records({"mysql/customer:9": 0, "mysql/order:90": 1})
    previous = Previous(
        day=D1,
        assignment=pa.table({"record_key": ["mysql/order:90"], "person_id": ["p_other"]}),
        redirects=pa.Table.from_pylist(
            [{"retired_id": pid("customer_id:9"), "person_id": "p_other", "since": D1}],
            schema=REDIRECTS,
        ),
        person_ids=pa.Table.from_pylist(
            [{"person_id": "p_other", "created_on": D1, "first_seen": seen(1)}], schema=PERSON_IDS
        ),
    )
    today = clusters(["mysql/customer:9"], ["mysql/order:90"])
    day2 = assign(COMPUTE, today, nine, previous, D2)
    assert persons(day2) == {
        "mysql/customer:9": pid("customer_id:9#1"),
        "mysql/order:90": "p_other",
    }
    assert redirects(day2) == {pid("customer_id:9"): ("p_other", D1)}
    assert assign(COMPUTE, today, nine, previous, D2).assignment.equals(day2.assignment)


def test_state_round_trips_through_the_lake(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))

    def keep(day: Assignment) -> None:
        for name, table in day.state_tables().items():
            lake.write_partition(SOURCE, name, day.day, table, zone=ZONE)

    assert kept_state(lake, D1) is None
    day1 = first_day()
    keep(day1)
    day2 = assign(COMPUTE, clusters(C1, [*C2, *C3], [Z, COOKIE]), RECS, kept_state(lake, D2), D2)
    keep(day2)
    # Re-running D2 reads D1's state again, not its own: the same result.
    previous = kept_state(lake, D2)
    assert previous is not None and previous.day == D1
    assert previous.assignment.equals(day1.assignment)
    rerun = assign(COMPUTE, clusters(C1, [*C2, *C3], [Z, COOKIE]), RECS, previous, D2)
    assert rerun.redirects.equals(lake.read_partition(SOURCE, "person_redirect", D2, ZONE))
    later = kept_state(lake, D4)
    assert later is not None and later.day == D2 and later.redirects.equals(day2.redirects)


def test_bad_inputs_are_named() -> None:
    day1 = first_day()
    with pytest.raises(
        DataError, match=re.escape("not in the records table, e.g. 'mysql/order:99'")
    ):
        assign(COMPUTE, clusters([*C1, "mysql/order:99"]), RECS, None, D1)
    with pytest.raises(DataError, match="in several clusters"):
        assign(
            COMPUTE, pa.concat_tables([clusters(C1), clusters(["mysql/order:10"])]), RECS, None, D1
        )
    with pytest.raises(DataError, match="lacks column"):
        assign(COMPUTE, pa.table({"record_key": ["x"]}), RECS, None, D1)
    with pytest.raises(ValueError, match="previous state is of 2025-03-01"):
        assign(COMPUTE, clusters(C1), RECS, day1.as_previous(), D1)


def identifiers(*rows: tuple[str, str, str]) -> pa.Table:
    return pa.Table.from_pylist(
        [dict(zip(IDENTIFIERS.names, row, strict=True)) for row in rows], schema=IDENTIFIERS
    )


def test_identity_map_leaves_ambiguous_values_out_and_owners_keep_theirs() -> None:
    assignment = pa.table(
        {
            "record_key": [
                "mysql/customer:1",
                "mysql/order:10",
                "mysql/order:20",
                "clickstream/cookie:c",
            ],
            "person_id": ["p_a", "p_a", "p_b", "p_b"],
        }
    )
    result = identity_map(
        COMPUTE,
        identifiers(
            ("mysql/customer:1", "customer_id", "1"),
            ("mysql/customer:1", "email", "a@x.com"),
            ("mysql/order:10", "email", "a@x.com"),
            # The cookie (another person: a shared device) also carries customer 1: the
            # account's own record decides.
            ("clickstream/cookie:c", "customer_id", "1"),
            ("clickstream/cookie:c", "anonymous_id", "c"),
            # A family email on two persons' orders: ambiguous, left out.
            ("mysql/order:10", "email", "family@x.com"),
            ("mysql/order:20", "email", "family@x.com"),
            ("mysql/order:99", "email", "ghost@x.com"),  # a record without a person
        ),
        assignment,
    )
    assert result.map.to_pylist() == [
        {"id_type": "anonymous_id", "id_value": "c", "person_id": "p_b"},
        {"id_type": "customer_id", "id_value": "1", "person_id": "p_a"},
        {"id_type": "email", "id_value": "a@x.com", "person_id": "p_a"},
    ]
    assert result.ambiguous.to_pylist() == [
        {"id_type": "email", "id_value": "family@x.com", "persons": 2}
    ]
