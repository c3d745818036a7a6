"""Clustering with the over-merge guards: hand-built links with exact expectations, and one
synthetic world at production-like scale."""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from c360.config import ComputeSettings, IdentitySettings
from c360.contracts.identity import CLUSTERS, FLAGS, IDENTIFIERS, LINKS, RECORDS, REFUSED
from c360.engines import open_compute
from c360.errors import DataError, GiantClusterError
from c360.identity.clustering import (
    DETERMINISTIC_OVERSIZE,
    SEVERAL_ACCOUNTS,
    SIZE_LIMIT,
    TWO_ACCOUNTS,
    Clustering,
    cluster,
    cluster_in,
)
from c360.identity.graph import deterministic_links
from c360.identity.records import load_in, load_links_in

SETTINGS = IdentitySettings()
COMPUTE = open_compute(ComputeSettings())


def records(accounts: Mapping[str, int | None]) -> pa.Table:
    """RECORDS with the given record keys and customer ids; other columns null."""
    keys = list(accounts)
    columns = {
        f.name: pa.nulls(len(keys), f.type) for f in RECORDS if f.name not in ("record_key",)
    }
    columns["record_key"] = pa.array(keys, pa.string())
    columns["customer_id"] = pa.array([accounts[k] for k in keys], pa.int64())
    return pa.table([columns[f.name] for f in RECORDS], schema=RECORDS)


def links(
    deterministic: Sequence[tuple[str, str]] = (),
    probabilistic: Sequence[tuple[str, str, float]] = (),
) -> pa.Table:
    rows = [
        {"left_key": a, "right_key": b, "kind": "deterministic", "evidence": "email"}
        for a, b in deterministic
    ] + [
        {
            "left_key": a,
            "right_key": b,
            "kind": "probabilistic",
            "evidence": "splink",
            "match_weight": w,
            "match_probability": 1 - 2**-w,
        }
        for a, b, w in probabilistic
    ]
    return pa.Table.from_pylist(
        [{f.name: r.get(f.name) for f in LINKS} for r in rows], schema=LINKS
    )


def groups(result: Clustering) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for row in result.clusters.to_pylist():
        out.setdefault(row["cluster_key"], set()).add(row["record_key"])
    return out


def flags(result: Clustering) -> set[tuple[str, str, int]]:
    return {(r["cluster_key"], r["reason"], r["size"]) for r in result.flags.to_pylist()}


def shuffled(table: pa.Table, seed: int) -> pa.Table:
    order = list(range(table.num_rows))
    random.Random(seed).shuffle(order)
    return table.take(pa.array(order, pa.int64()))


def test_unlinked_records_are_singletons_keyed_by_themselves() -> None:
    result = cluster(records({"b": None, "a": 1, "c": None}), links(), SETTINGS)
    assert result.clusters.schema == CLUSTERS
    assert result.clusters.to_pylist() == [
        {"record_key": "a", "cluster_key": "a"},
        {"record_key": "b", "cluster_key": "b"},
        {"record_key": "c", "cluster_key": "c"},
    ]
    assert (result.cluster_count, result.largest_size, result.largest_key) == (3, 1, "a")
    assert result.flags.schema == FLAGS and result.flags.num_rows == 0
    assert result.refused.schema == REFUSED and result.refused.num_rows == 0


def test_cluster_key_is_the_smallest_record_key_of_a_chain() -> None:
    recs = records({"mysql/order:9": None, "zendesk/user:5": 7, "mysql/customer:7": 7, "x": None})
    result = cluster(
        recs,
        links([("mysql/order:9", "zendesk/user:5"), ("mysql/customer:7", "zendesk/user:5")]),
        SETTINGS,
    )
    assert groups(result) == {
        "mysql/customer:7": {"mysql/customer:7", "mysql/order:9", "zendesk/user:5"},
        "x": {"x"},
    }
    assert (result.cluster_count, result.largest_size) == (2, 3)
    assert result.largest_key == "mysql/customer:7"


def test_probabilistic_link_between_two_customer_clusters_is_refused_and_flagged() -> None:
    recs = records({"c1": 1, "o1": 1, "c2": 2, "g": None})
    result = cluster(
        recs,
        links(
            deterministic=[("c1", "o1")],
            probabilistic=[("o1", "c2", 30.0), ("c2", "g", 12.0), ("c1", "g", 8.0)],
        ),
        SETTINGS,
    )
    # the guest joins account 2 (its strongest link); account 1 never merges with either
    assert groups(result) == {"c1": {"c1", "o1"}, "c2": {"c2", "g"}}
    assert result.refused.to_pylist() == [
        {
            "left_key": "c2",
            "right_key": "o1",
            "match_weight": 30.0,
            "reason": TWO_ACCOUNTS,
            "left_cluster": "c2",
            "right_cluster": "c1",
        },
        {
            "left_key": "c1",
            "right_key": "g",
            "match_weight": 8.0,
            "reason": TWO_ACCOUNTS,
            "left_cluster": "c1",
            "right_cluster": "c2",
        },
    ]
    assert flags(result) == {("c1", TWO_ACCOUNTS, 2), ("c2", TWO_ACCOUNTS, 2)}
    assert result.merged_links == 1


def test_weakest_link_is_refused_at_the_size_limit_whatever_the_input_order() -> None:
    recs = records({k: None for k in "abcdef"})
    candidate = links(
        probabilistic=[
            ("b", "c", 4.0),  # the weak bridge between two strong pairs
            ("a", "b", 20.0),
            ("c", "d", 15.0),
            ("d", "e", 9.0),
            ("e", "f", 1.0),
        ]
    )
    settings = IdentitySettings(max_cluster_records=3)
    result = cluster(recs, candidate, settings)
    assert groups(result) == {"a": {"a", "b"}, "c": {"c", "d", "e"}, "f": {"f"}}
    assert [(r["left_key"], r["right_key"], r["reason"]) for r in result.refused.to_pylist()] == [
        ("b", "c", SIZE_LIMIT),
        ("e", "f", SIZE_LIMIT),
    ]
    assert flags(result) == {("a", SIZE_LIMIT, 2), ("c", SIZE_LIMIT, 3), ("f", SIZE_LIMIT, 1)}
    for seed in range(5):
        again = cluster(shuffled(recs, seed), shuffled(candidate, seed), settings)
        assert again.clusters.equals(result.clusters)
        assert again.flags.equals(result.flags)
        assert again.refused.equals(result.refused)


def test_equal_weights_are_taken_in_key_order() -> None:
    recs = records({"a": None, "b": None, "c": None})
    candidate = links(probabilistic=[("c", "b", 5.0), ("b", "a", 5.0)])
    for seed in range(4):
        result = cluster(recs, shuffled(candidate, seed), IdentitySettings(max_cluster_records=2))
        assert groups(result) == {"a": {"a", "b"}, "c": {"c"}}
        assert result.refused["left_key"].to_pylist() == ["b"]  # stored as (low, high)


def test_deterministic_clusters_are_never_split_but_flagged() -> None:
    recs = records({"c1": 1, "c2": 2, "o": None, "g1": None, "g2": None, "g3": None, "h": None})
    candidate = links(
        deterministic=[("c1", "o"), ("c2", "o"), ("g1", "g2"), ("g2", "g3")],
        probabilistic=[("g1", "h", 3.0), ("h", "o", 2.0)],
    )
    result = cluster(recs, candidate, IdentitySettings(max_cluster_records=2))
    assert groups(result) == {"c1": {"c1", "c2", "o"}, "g1": {"g1", "g2", "g3"}, "h": {"h"}}
    assert flags(result) == {
        ("c1", SEVERAL_ACCOUNTS, 3),
        ("c1", DETERMINISTIC_OVERSIZE, 3),
        ("c1", SIZE_LIMIT, 3),
        ("g1", DETERMINISTIC_OVERSIZE, 3),
        ("g1", SIZE_LIMIT, 3),
        ("h", SIZE_LIMIT, 1),
    }


def test_result_is_identical_under_row_shuffles() -> None:
    rng = random.Random(7)
    accounts = {f"r{i:03d}": (i if i % 5 == 0 else None) for i in range(200)}
    keys = list(accounts)
    det = [(rng.choice(keys), rng.choice(keys)) for _ in range(60)]
    prob = [(rng.choice(keys), rng.choice(keys), float(rng.randint(0, 8))) for _ in range(150)]
    recs, candidate = records(accounts), links(det, prob)
    settings = IdentitySettings(max_cluster_records=12)
    first = cluster(recs, candidate, settings)
    assert first.refused.num_rows > 0
    assert {r["reason"] for r in first.refused.to_pylist()} == {TWO_ACCOUNTS, SIZE_LIMIT}
    for seed in range(5):
        again = cluster(shuffled(recs, seed), shuffled(candidate, seed), settings)
        assert again.clusters.equals(first.clusters)
        assert again.flags.equals(first.flags)
        assert again.refused.equals(first.refused)
    # every cluster holds at most one account and respects the size limit unless
    # deterministic links alone made it larger
    by_cluster = groups(first)
    for members in by_cluster.values():
        assert len({accounts[k] for k in members} - {None}) <= 1 or any(
            f[0] == min(members) and f[1] == SEVERAL_ACCOUNTS for f in flags(first)
        )


@pytest.mark.parametrize("seed", range(3))
def test_the_session_form_gives_the_same_tables(seed: int) -> None:
    """cluster_in (what the step runs: keys stay in SQL, positions go to NumPy) and cluster
    (Arrow) give the same clusters, flags, refused links and counts."""
    rng = random.Random(seed)
    accounts = {f"r{i:03d}": (i if i % 4 == 0 else None) for i in range(300)}
    keys = list(accounts)
    det = [(rng.choice(keys), rng.choice(keys)) for _ in range(120)]
    prob = [(rng.choice(keys), rng.choice(keys), float(rng.randint(0, 8))) for _ in range(250)]
    recs, candidate = shuffled(records(accounts), seed), shuffled(links(det, prob), seed)
    settings = IdentitySettings(max_cluster_records=12)
    expected = cluster(recs, candidate, settings)
    with COMPUTE.local() as local:
        load_in(local, recs)
        load_links_in(local, candidate)
        summary = cluster_in(local, settings)
        tables = {
            "clusters": local.table("SELECT record_key, cluster_key FROM clusters"),
            "flags": local.table("SELECT * FROM flags"),
        }
        refused = local.table("SELECT * FROM refused")
    assert tables["clusters"].cast(CLUSTERS).equals(expected.clusters)
    assert tables["flags"].cast(FLAGS).equals(expected.flags)
    assert refused.cast(REFUSED).equals(expected.refused)
    assert expected.refused.num_rows > 0 and summary.refused == expected.refused.num_rows
    assert (summary.largest_size, summary.largest_key, summary.cluster_count) == (
        expected.largest_size,
        expected.largest_key,
        expected.cluster_count,
    )
    assert summary.merged_links == expected.merged_links
    assert summary.flagged_clusters == len(set(expected.flags["cluster_key"].to_pylist()))


def test_the_session_form_names_bad_inputs() -> None:
    with COMPUTE.local() as local:
        load_in(local, records({"a": None, "b": None}))
        with pytest.raises(DataError, match="'zzz' is not in the records table"):
            load_links_in(local, links([("a", "zzz")]))
        load_links_in(local, links([("a", "b")]))
        local.execute("UPDATE links SET right_pos = 7")
        with pytest.raises(DataError, match="position that is not in the records table"):
            cluster_in(local, SETTINGS)
        load_in(local, pa.concat_tables([records({"a": None})] * 2))
        with pytest.raises(DataError, match="record_key 'a' is not unique"):
            cluster_in(local, SETTINGS)


def _reference(
    accounts: Mapping[str, int | None],
    det: Sequence[tuple[str, str]],
    prob: Sequence[tuple[str, str, float]],
    limit: int,
) -> tuple[dict[str, set[str]], list[tuple[str, str, str]]]:
    """The rule written plainly: record-level union-find, one link at a time."""
    parent = {k: k for k in accounts}
    members = {k: {k} for k in accounts}

    def find(k: str) -> str:
        while parent[k] != k:
            k = parent[k]
        return k

    def union(a: str, b: str) -> None:
        parent[b] = a
        members[a] |= members.pop(b)

    for a, b in det:
        if find(a) != find(b):
            union(find(a), find(b))
    refused = []
    for a, b, _ in sorted(prob, key=lambda p: (-p[2], min(p[:2]), max(p[:2]))):
        ra, rb = find(a), find(b)
        if ra == rb:
            continue
        held_a = {accounts[k] for k in members[ra]} - {None}
        held_b = {accounts[k] for k in members[rb]} - {None}
        if held_a and held_b and (len(held_a) > 1 or held_a != held_b):
            refused.append((min(a, b), max(a, b), TWO_ACCOUNTS))
        elif len(members[ra]) + len(members[rb]) > limit:
            refused.append((min(a, b), max(a, b), SIZE_LIMIT))
        else:
            union(ra, rb)
    return {min(m): m for m in members.values()}, refused


@pytest.mark.parametrize("seed", range(8))
def test_matches_the_rule_written_plainly(seed: int) -> None:
    rng = random.Random(seed)
    accounts = {f"r{i:03d}": rng.choice([None, None, None, i % 17]) for i in range(150)}
    keys = list(accounts)
    det = [(rng.choice(keys), rng.choice(keys)) for _ in range(rng.randint(0, 80))]
    prob = [
        (rng.choice(keys), rng.choice(keys), float(rng.randint(0, 20)))
        for _ in range(rng.randint(0, 300))
    ]
    limit = rng.randint(2, 30)
    result = cluster(
        records(accounts), links(det, prob), IdentitySettings(max_cluster_records=limit)
    )
    expected_groups, expected_refused = _reference(accounts, det, prob, limit)
    assert groups(result) == expected_groups
    assert [
        (r["left_key"], r["right_key"], r["reason"]) for r in result.refused.to_pylist()
    ] == expected_refused
    assert result.merged_links == len(accounts) - len(expected_groups) - (
        len(accounts) - len(_reference(accounts, det, [], limit)[0])
    )


def _chain_world(total: int, linked: int) -> tuple[pa.Table, pa.Table]:
    keys = [f"rec:{i:05d}" for i in range(total)]
    return records(dict.fromkeys(keys)), links(list(itertools.pairwise(keys[:linked])))


def test_giant_cluster_monitor_fails_the_run_with_a_clear_message() -> None:
    settings = IdentitySettings(giant_cluster_min_records=10)
    recs, candidate = _chain_world(1000, 11)  # 11 > 1 % of 1,000 and > 10
    with pytest.raises(GiantClusterError) as error:
        cluster(recs, candidate, settings)
    assert (error.value.cluster_key, error.value.size, error.value.records) == (
        "rec:00000",
        11,
        1000,
    )
    message = str(error.value)
    assert "'rec:00000'" in message and "11 of 1,000 records" in message
    assert "identity.giant_cluster_share" in message
    # at the share it passes; under the absolute floor a large share passes too
    assert cluster(*_chain_world(1000, 10), settings).largest_size == 10
    small = cluster(*_chain_world(999, 500), IdentitySettings(giant_cluster_min_records=500))
    assert (small.largest_size, small.largest_key) == (500, "rec:00000")
    with pytest.raises(GiantClusterError):
        cluster(*_chain_world(999, 501), IdentitySettings(giant_cluster_min_records=500))


def test_graph_and_clustering_keep_a_shared_device_apart() -> None:
    recs = records({"mysql/customer:1": 1, "mysql/customer:2": 2, "clickstream/cookie:x": None})
    ids = pa.Table.from_pylist(
        [
            {"record_key": "clickstream/cookie:x", "id_type": "customer_id", "id_value": "1"},
            {"record_key": "clickstream/cookie:x", "id_type": "customer_id", "id_value": "2"},
        ],
        schema=IDENTIFIERS,
    )
    graph = deterministic_links(COMPUTE, recs, ids, SETTINGS)
    result = cluster(recs, graph.links, SETTINGS)
    assert result.cluster_count == 3


def test_bad_inputs_are_named() -> None:
    recs = records({"a": None, "b": None})
    with pytest.raises(DataError, match="'zzz' is not in the records"):
        cluster(recs, links([("a", "zzz")]), SETTINGS)
    with pytest.raises(DataError, match="'a' is not unique"):
        cluster(pa.concat_tables([recs, recs]), links(), SETTINGS)
    with pytest.raises(DataError, match="kind"):
        bad = links([("a", "b")]).set_column(2, "kind", pa.array(["exact"]))
        cluster(recs, bad, SETTINGS)
    with pytest.raises(DataError, match="match_weight"):
        cluster(recs, links(probabilistic=[("a", "b", float("nan"))]), SETTINGS)


# --- production-like scale -------------------------------------------------------------------


def _synthetic_world(seed: int) -> tuple[pa.Table, pa.Table, pa.Table]:
    """300k records: 40k customers (account row, 4 orders, 1 cookie, same email), 59,999 guest
    orders over 30k guest emails, a front-desk email on orders of 2,000 accounts, a shared
    device cookie that logged in as 500 accounts; and 60k random false probabilistic links."""
    rng = np.random.default_rng(seed)
    customers, guests = 40_000, 59_999
    cid = np.arange(1, customers + 1)
    key_parts = [
        ("mysql/customer:", cid, cid, cid),
        ("mysql/order:", np.arange(customers * 4), np.repeat(cid, 4), np.repeat(cid, 4)),
        ("clickstream/cookie:", np.arange(customers), cid, cid),
        ("mysql/order:g", np.arange(guests), None, -rng.integers(1, 30_000, guests)),
    ]
    keys, accounts, emails = [], [], []
    for prefix, ids, account, email in key_parts:
        keys.append(pc.binary_join_element_wise(prefix, pa.array(ids).cast(pa.string()), ""))
        accounts.append(
            pa.array(account, pa.int64()) if account is not None else pa.nulls(len(ids), pa.int64())
        )
        emails.append(pc.binary_join_element_wise("u", pa.array(email).cast(pa.string()), "@x.com"))
    keys.append(pa.array(["clickstream/cookie:shared"]))
    accounts.append(pa.nulls(1, pa.int64()))
    emails.append(pa.nulls(1, pa.string()))
    key = pa.concat_arrays(keys)
    email = pa.concat_arrays(emails)
    # the front desk types its own address on one order of each of 2,000 accounts
    desk = customers + 4 * rng.choice(customers, 2_000, replace=False)
    email = pa.array(
        np.where(
            np.isin(np.arange(len(email)), desk),
            "desk@shop.com",
            email.to_numpy(zero_copy_only=False),
        ),
        pa.string(),
    )
    n = len(key)
    columns = {f.name: pa.nulls(n, f.type) for f in RECORDS}
    columns.update(
        record_key=key, customer_id=pa.concat_arrays(accounts), email=email, email_key=email
    )
    recs = pa.table([columns[f.name] for f in RECORDS], schema=RECORDS)
    shared = rng.choice(cid, 500, replace=False)
    ids = pa.table(
        {
            "record_key": pa.array(["clickstream/cookie:shared"] * 500),
            "id_type": pa.array(["customer_id"] * 500),
            "id_value": pa.array(shared).cast(pa.string()),
        },
        schema=IDENTIFIERS,
    )
    false = rng.integers(0, n, (60_000, 2))
    false = false[false[:, 0] != false[:, 1]]
    left, right = np.minimum(false[:, 0], false[:, 1]), np.maximum(false[:, 0], false[:, 1])
    prob = pa.table(
        {
            "left_key": key.take(pa.array(left)),
            "right_key": key.take(pa.array(right)),
            "kind": pa.array(["probabilistic"] * len(left)),
            "evidence": pa.array(["splink"] * len(left)),
            "match_weight": pa.array(rng.uniform(7, 20, len(left))),
            "match_probability": pa.array(np.full(len(left), 0.995)),
            "contributions": pa.nulls(len(left), pa.string()),
        },
        schema=LINKS,
    )
    return recs, ids, prob


def _largest_component(n: int, left: np.ndarray, right: np.ndarray) -> int:
    graph = coo_matrix((np.ones(len(left)), (left, right)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return int(np.bincount(labels).max())


def test_guards_keep_clusters_small_at_production_like_scale() -> None:
    recs, ids, prob = _synthetic_world(seed=5)
    n = recs.num_rows
    graph = deterministic_links(COMPUTE, recs, ids, SETTINGS)
    assert ("email", "desk@shop.com", "too many customer accounts", 2000) in {
        (r["id_type"], r["id_value"], r["reason"], r["customers"])
        for r in graph.ignored.to_pylist()
    }
    result = cluster(recs, pa.concat_tables([graph.links, prob]), SETTINGS)

    # Without the guards, plain connected components over the same evidence (front-desk email
    # and shared device used, every probabilistic link taken) make one giant "person".
    naive = deterministic_links(
        COMPUTE, recs, ids, IdentitySettings(max_customers_per_identifier=1_000_000)
    )
    everything = pa.concat_tables([naive.links, prob])
    left = pc.index_in(everything["left_key"], value_set=recs["record_key"]).to_numpy()
    right = pc.index_in(everything["right_key"], value_set=recs["record_key"]).to_numpy()
    assert _largest_component(n, left, right) > 0.5 * n

    # With them, no cluster holds two accounts and the largest stays a few dozen records.
    assert result.largest_size < 100, (result.largest_key, result.largest_size)
    assert result.refused.num_rows > 1_000
    assert set(result.refused["reason"].to_pylist()) == {TWO_ACCOUNTS}
    per_cluster = (
        pa.table(
            {
                "cluster_key": result.clusters["cluster_key"],
                "customer_id": recs.sort_by("record_key")["customer_id"],
            }
        )
        .group_by("cluster_key")
        .aggregate([("customer_id", "count_distinct")])
    )
    assert pc.max(per_cluster["customer_id_count_distinct"]).as_py() == 1
