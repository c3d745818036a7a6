"""Clusters of records (persons) from the links, with the over-merge guards.

1. **Deterministic links first**: connected components (``scipy.sparse.csgraph``). Shared
   identifiers are the strongest evidence and are never split here; the graph step already
   refused ambiguous values. A deterministic cluster holding several customer accounts (only
   possible when ``identity.max_customers_per_identifier`` > 1) is flagged "several customer
   accounts"; one larger than ``identity.max_cluster_records`` is flagged "deterministic cluster
   over size limit".
2. **Probabilistic links, strongest first** (match_weight descending, ties by the two keys, so
   the result does not depend on row order), Kruskal-style: a link joins its two clusters
   unless both hold a customer account and the accounts differ ("two customer accounts":
   two accounts never merge on probabilistic evidence alone), or the joined cluster would hold
   more than ``identity.max_cluster_records`` records ("size limit"). This is splitting along the
   weakest links: a refused link is always weaker than every link that built the clusters it
   would have joined. Every refused link is kept in ``refused`` and both of its clusters are
   flagged.
3. **Giant-cluster monitor**: a cluster holding more than ``identity.giant_cluster_share`` of
   all records *and* more than ``identity.giant_cluster_min_records`` raises
   :class:`~c360.errors.GiantClusterError`, so the batch fails instead of publishing one
   "person" with thousands of strangers' data. The absolute floor keeps small worlds (tests,
   demos) working: there one loyal customer's dozen orders is more than 1 % of all records.

A cluster's key is its smallest record_key, so the result depends only on the set of records
and links, not on their order or on the engine that produced them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from c360.config import IdentitySettings
from c360.contracts.compute import LocalSql
from c360.contracts.identity import CLUSTERS, FLAGS, LINKS, REFUSED
from c360.errors import DataError, GiantClusterError
from c360.identity.records import REPEATED_KEYS

TWO_ACCOUNTS = "two customer accounts"
SIZE_LIMIT = "size limit"
SEVERAL_ACCOUNTS = "several customer accounts"
DETERMINISTIC_OVERSIZE = "deterministic cluster over size limit"
REASONS = (TWO_ACCOUNTS, SIZE_LIMIT, SEVERAL_ACCOUNTS, DETERMINISTIC_OVERSIZE)

Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Clustering:
    clusters: pa.Table  # CLUSTERS, one row per record, sorted by record_key
    flags: pa.Table  # FLAGS, sorted by (cluster_key, reason)
    refused: pa.Table  # REFUSED, in the order the links were considered (strongest first)
    cluster_count: int
    largest_size: int
    largest_key: str  # the largest cluster's key (smallest key among equally large ones)
    merged_links: int  # probabilistic links that joined two clusters


def _records_in_key_order(records: pa.Table) -> tuple[pa.Array, Ints, Ints]:
    """The record keys sorted, and per record in that order: has an account (0/1), its id."""
    missing = [c for c in ("record_key", "customer_id") if c not in records.column_names]
    if missing:
        raise DataError(f"identity records table lacks column(s) {missing}")
    keys = records["record_key"].combine_chunks().cast(pa.string())
    if keys.null_count:
        raise DataError("identity records: record_key is null in some rows; every record needs one")
    order = pc.sort_indices(keys)
    keys = keys.take(order)
    if len(keys) > 1:
        same = pc.equal(keys[1:], keys[:-1])
        if pc.any(same).as_py():
            first = pc.index(same, True).as_py()
            raise DataError(f"identity records: record_key {keys[first].as_py()!r} is not unique")
    accounts = records["customer_id"].combine_chunks().cast(pa.int64()).take(order)
    has = pc.is_valid(accounts).to_numpy(zero_copy_only=False).astype(np.int64)
    values = pc.fill_null(accounts, 0).to_numpy(zero_copy_only=False).astype(np.int64)
    return keys, has, values


def _positions(links: pa.Table, keys: pa.Array) -> tuple[Ints, Ints]:
    """Each link's two record positions in ``keys``; an unknown key is a data error."""
    both = pa.concat_arrays(
        [links["left_key"].combine_chunks(), links["right_key"].combine_chunks()]
    ).cast(pa.string())
    found = pc.index_in(both, value_set=keys)
    if found.null_count:
        unknown = both.filter(pc.is_null(found))[0].as_py()
        raise DataError(f"identity links: record {unknown!r} is not in the records table")
    at = found.to_numpy().astype(np.int64)
    return at[: links.num_rows], at[links.num_rows :]


def _check_links(links: pa.Table) -> pa.Table:
    missing = [
        c for c in ("left_key", "right_key", "kind", "match_weight") if c not in links.column_names
    ]
    if missing:
        raise DataError(f"identity links table lacks column(s) {missing}; expected {LINKS.names}")
    kinds = set(pc.unique(links["kind"]).to_pylist()) - {"deterministic", "probabilistic"}
    if kinds:
        raise DataError(
            f"identity links: kind {sorted(kinds, key=str)} is unknown; "
            "accepted: deterministic, probabilistic"
        )
    probabilistic = pc.equal(links["kind"], "probabilistic")
    weights = links["match_weight"].filter(probabilistic)
    if weights.null_count or pc.any(pc.is_nan(weights)).as_py():
        raise DataError("identity links: a probabilistic link has no match_weight")
    return links


def _components(n: int, left: Ints, right: Ints) -> tuple[int, Ints]:
    graph = coo_matrix((np.ones(len(left), dtype=np.int32), (left, right)), shape=(n, n)).tocsr()
    count, labels = connected_components(graph, directed=False)
    return int(count), labels.astype(np.int64)


def _join(
    left: list[int],
    right: list[int],
    size: list[int],
    accounts: list[int],
    account: list[int],
    limit: int,
) -> tuple[list[int], list[int], list[int]]:
    """Union-find over the components, links in the given order, with the two guards.

    ``accounts`` is how many customer accounts a component holds, ``account`` one of them.
    Returns the parent of each component and the refused links (index, reason code).
    """
    parent = list(range(len(size)))
    refused_at: list[int] = []
    refused_reason: list[int] = []
    two_accounts, size_limit = REASONS.index(TWO_ACCOUNTS), REASONS.index(SIZE_LIMIT)
    for i, (u, v) in enumerate(zip(left, right, strict=True)):
        while parent[u] != u:
            parent[u] = parent[parent[u]]
            u = parent[u]
        while parent[v] != v:
            parent[v] = parent[parent[v]]
            v = parent[v]
        if u == v:
            continue
        if (
            accounts[u]
            and accounts[v]
            and (accounts[u] > 1 or accounts[v] > 1 or account[u] != account[v])
        ):
            refused_at.append(i)
            refused_reason.append(two_accounts)
            continue
        if size[u] + size[v] > limit:
            refused_at.append(i)
            refused_reason.append(size_limit)
            continue
        if size[u] < size[v]:
            u, v = v, u
        parent[v] = u
        size[u] += size[v]
        if not accounts[u]:
            accounts[u], account[u] = accounts[v], account[v]
    return parent, refused_at, refused_reason


def _accounts(count: int, label: Ints, has_account: Ints, account: Ints) -> tuple[Ints, Ints]:
    """Per component: how many distinct customer accounts it holds, and the smallest."""
    holders = np.flatnonzero(has_account)
    comp, acct = label[holders], account[holders]
    order = np.lexsort((acct, comp))
    comp, acct = comp[order], acct[order]
    new = np.ones(len(comp), dtype=bool)
    new[1:] = (comp[1:] != comp[:-1]) | (acct[1:] != acct[:-1])
    held = np.bincount(comp[new], minlength=count)
    smallest = np.zeros(count, dtype=np.int64)
    starts = new.copy()
    starts[1:] = comp[1:] != comp[:-1]
    smallest[comp[starts]] = acct[starts]
    return held, smallest


def _roots(parent: Ints) -> Ints:
    """Pointer jumping until every entry names its tree's root."""
    while True:
        jumped = parent[parent]
        if np.array_equal(jumped, parent):
            return parent
        parent = jumped


@dataclass(frozen=True)
class _Result:
    """Clustering in record positions (the records in record_key order)."""

    key_at: Ints  # per record: position of its cluster's key
    refused: tuple[Ints, Ints, npt.NDArray[np.float64], Ints]  # low, high, weight, reason code
    flags: tuple[Ints, Ints, Ints]  # key position, reason code, size; by key then code
    cluster_count: int
    largest_size: int
    largest_at: int  # position of the largest cluster's key (-1 without records)
    merged_links: int


def _cluster(
    has_account: Ints,
    account: Ints,
    left: Ints,
    right: Ints,
    deterministic: npt.NDArray[np.bool_],
    weight: npt.NDArray[np.float64],
    settings: IdentitySettings,
) -> _Result:
    """The algorithm of the module docstring over positions: ``has_account``/``account`` per
    record (in key order), per link its two positions, whether it is deterministic and its
    weight (read for probabilistic links only)."""
    n = len(has_account)
    # 1. Deterministic components, their size and the customer accounts each holds.
    count, label = _components(n, left[deterministic], right[deterministic])
    size = np.bincount(label, minlength=count)
    accounts_in, comp_account = _accounts(count, label, has_account, account)

    # 2. Probabilistic links between components, strongest first (ties by the keys).
    probabilistic = ~deterministic
    weight = weight[probabilistic]
    low = np.minimum(left[probabilistic], right[probabilistic])
    high = np.maximum(left[probabilistic], right[probabilistic])
    cross = label[low] != label[high]
    weight, low, high = weight[cross], low[cross], high[cross]
    order = np.lexsort((high, low, -weight))
    weight, low, high = weight[order], low[order], high[order]
    u, v = label[low], label[high]
    # A link between components holding different accounts is refused whatever comes before
    # it (a cluster keeps its account), so the loop only sees the others.
    both = (accounts_in[u] > 0) & (accounts_in[v] > 0)
    two = both & (
        (accounts_in[u] > 1) | (accounts_in[v] > 1) | (comp_account[u] != comp_account[v])
    )
    rest = np.flatnonzero(~two)
    parent, loop_refused, loop_reasons = _join(
        u[rest].tolist(),
        v[rest].tolist(),
        size.tolist(),
        accounts_in.tolist(),
        comp_account.tolist(),
        settings.max_cluster_records,
    )
    at = np.concatenate([np.flatnonzero(two), rest[np.asarray(loop_refused, dtype=np.int64)]])
    codes = np.concatenate(
        [np.full(int(two.sum()), REASONS.index(TWO_ACCOUNTS)), np.asarray(loop_reasons)]
    ).astype(np.int64)
    by_strength = np.argsort(at, kind="stable")
    at, codes = at[by_strength], codes[by_strength]

    # 3. Final clusters; a cluster's key is its smallest record (records are in key order).
    final = _roots(np.asarray(parent, dtype=np.int64))[label]
    first = np.full(count, n, dtype=np.int64)
    np.minimum.at(first, final, np.arange(n, dtype=np.int64))
    key_at = first[final]  # per record: position of its cluster's key
    final_size = np.bincount(final, minlength=count)

    # Flags: any record of a flagged cluster, and the reason; one row per (cluster, reason).
    representative = np.full(count, n, dtype=np.int64)
    np.minimum.at(representative, label, np.arange(n, dtype=np.int64))
    several = representative[np.flatnonzero(accounts_in > 1)]
    oversize = representative[np.flatnonzero(size > settings.max_cluster_records)]
    flagged = np.concatenate([low[at], high[at], several, oversize])
    flag_codes = np.concatenate(
        [
            codes,
            codes,
            np.full(len(several), REASONS.index(SEVERAL_ACCOUNTS), dtype=np.int64),
            np.full(len(oversize), REASONS.index(DETERMINISTIC_OVERSIZE), dtype=np.int64),
        ]
    )
    rows = np.unique(key_at[flagged] * len(REASONS) + flag_codes)
    flag_key_at, flag_code = rows // len(REASONS), rows % len(REASONS)
    size_of = final_size[final]

    largest_size = int(final_size.max()) if n else 0
    largest_at = int(first[final_size == largest_size].min()) if n else -1
    return _Result(
        key_at=key_at,
        refused=(low[at], high[at], weight[at], codes),
        flags=(flag_key_at, flag_code, size_of[flag_key_at]),
        cluster_count=int(np.count_nonzero(final_size)),
        largest_size=largest_size,
        largest_at=largest_at,
        merged_links=int(np.count_nonzero(np.asarray(parent) != np.arange(count))),
    )


def _check_giant(result: _Result, n: int, largest_key: str, settings: IdentitySettings) -> None:
    giant = max(settings.giant_cluster_share * n, settings.giant_cluster_min_records)
    if result.largest_size > giant:
        raise GiantClusterError(largest_key, result.largest_size, n, settings.giant_cluster_share)


_REASON_NAMES = np.asarray(REASONS, dtype=object)


def cluster(records: pa.Table, links: pa.Table, settings: IdentitySettings) -> Clustering:
    """Every record's cluster, the flags for review, and the refused probabilistic links."""
    keys, has_account, account = _records_in_key_order(records)
    n = len(keys)
    links = _check_links(links)
    left, right = _positions(links, keys)
    deterministic = pc.equal(links["kind"], "deterministic").to_numpy(zero_copy_only=False)
    weight = pc.fill_null(links["match_weight"].cast(pa.float64()), 0.0)
    result = _cluster(
        has_account,
        account,
        left,
        right,
        deterministic,
        np.asarray(weight.to_numpy(), dtype=np.float64),
        settings,
    )
    key_at = result.key_at
    low, high, weight_at, codes = result.refused
    flag_key_at, flag_code, flag_size = result.flags
    largest_key = keys[result.largest_at].as_py() if n else ""
    clustering = Clustering(
        clusters=pa.table([keys, keys.take(pa.array(key_at))], schema=CLUSTERS),
        flags=pa.table(
            [
                keys.take(pa.array(flag_key_at)),
                pa.array(_REASON_NAMES[flag_code], pa.string()),
                pa.array(flag_size, pa.int64()),
            ],
            schema=FLAGS,
        ),
        refused=pa.table(
            [
                keys.take(pa.array(low)),
                keys.take(pa.array(high)),
                pa.array(weight_at, pa.float64()),
                pa.array(_REASON_NAMES[codes], pa.string()),
                keys.take(pa.array(key_at[low])),
                keys.take(pa.array(key_at[high])),
            ],
            schema=REFUSED,
        ),
        cluster_count=result.cluster_count,
        largest_size=result.largest_size,
        largest_key=largest_key,
        merged_links=result.merged_links,
    )
    _check_giant(result, n, largest_key, settings)
    return clustering


@dataclass(frozen=True)
class ClusterSummary:
    """What :func:`cluster_in` did (its tables stay in the session)."""

    cluster_count: int
    largest_size: int
    largest_key: str
    merged_links: int
    refused: int  # rows of ``refused``
    flagged_clusters: int  # distinct cluster keys of ``flags``


def _one(local: LocalSql, sql: str) -> tuple[Any, ...]:
    return local.rows(sql)[0]


def _session_checks(local: LocalSql) -> None:
    """The checks of :func:`_records_in_key_order`, :func:`_check_links` and
    :func:`_positions`, in SQL over the session's ``records`` and ``links``."""
    nulls, duplicate = _one(
        local,
        "SELECT count(*) FILTER (WHERE record_key IS NULL), "
        f"(SELECT min(record_key) FROM ({REPEATED_KEYS})) FROM records",
    )
    if nulls:
        raise DataError("identity records: record_key is null in some rows; every record needs one")
    if duplicate is not None:
        raise DataError(f"identity records: record_key {duplicate!r} is not unique")
    kinds = {row[0] for row in local.rows("SELECT DISTINCT kind FROM links")}
    unknown = kinds - {"deterministic", "probabilistic"}
    if unknown:
        raise DataError(
            f"identity links: kind {sorted(unknown, key=str)} is unknown; "
            "accepted: deterministic, probabilistic"
        )
    (bad,) = _one(
        local,
        "SELECT count(*) FROM links WHERE kind = 'probabilistic' "
        "AND (match_weight IS NULL OR isnan(match_weight))",
    )
    if bad:
        raise DataError("identity links: a probabilistic link has no match_weight")


def cluster_in(local: LocalSql, settings: IdentitySettings) -> ClusterSummary:
    """:func:`cluster` on the session's tables ``records`` (in record_key order, a record's
    position its rowid: :func:`c360.identity.records.records_in_order`) and ``links`` (by
    record positions ``left_pos``, ``right_pos``): the tables ``clusters`` (CLUSTERS, with
    each record's position ``pos``), ``flags`` and ``refused`` of ``local``. Only
    positions and weights come to NumPy (never the keys); the keys are joined back in SQL."""
    _session_checks(local)
    accounts = local.table("SELECT customer_id FROM records ORDER BY rowid")["customer_id"]
    accounts = accounts.combine_chunks().cast(pa.int64())
    n = len(accounts)
    has_account = pc.is_valid(accounts).to_numpy(zero_copy_only=False).astype(np.int64)
    account = pc.fill_null(accounts, 0).to_numpy(zero_copy_only=False).astype(np.int64)
    del accounts
    positions = local.table(
        "SELECT left_pos, right_pos, kind = 'deterministic' AS det, "
        "coalesce(match_weight, 0.0) AS weight FROM links"
    )
    # Column by column into NumPy, each Arrow column released as soon as it is copied.
    arrays: dict[str, npt.NDArray[Any]] = {}
    for name in ("left_pos", "right_pos", "det", "weight"):
        arrays[name] = positions[name].to_numpy(zero_copy_only=False)
        positions = positions.drop_columns([name])
    del positions
    left = arrays.pop("left_pos").astype(np.int64, copy=False)
    right = arrays.pop("right_pos").astype(np.int64, copy=False)
    outside = (left < 0) | (left >= n) | (right < 0) | (right >= n)
    if outside.any():
        raise DataError(
            f"identity links: {int(outside.sum())} link(s) name a record position that is not "
            f"in the records table ({n} records), e.g. {int(left[outside][0])}"
        )
    result = _cluster(
        has_account,
        account,
        left,
        right,
        arrays.pop("det").astype(bool, copy=False),
        arrays.pop("weight").astype(np.float64, copy=False),
        settings,
    )
    del left, right
    _register(local, "cluster_pos", {"pos": np.arange(n, dtype=np.int64), "key_pos": result.key_at})
    local.execute(
        """
        CREATE OR REPLACE TEMP TABLE clusters AS
        SELECT r.record_key, k.record_key AS cluster_key, c.pos
        FROM cluster_pos c JOIN records r ON r.rowid = c.pos JOIN records k ON k.rowid = c.key_pos
        ORDER BY c.pos
        """
    )
    low, high, weight, codes = result.refused
    _register(
        local,
        "refused_pos",
        {
            "n": np.arange(len(low), dtype=np.int64),
            "low": low,
            "high": high,
            "weight": weight,
            "code": codes,
            "low_key": result.key_at[low],
            "high_key": result.key_at[high],
        },
    )
    reasons = ", ".join(f"'{r}'" for r in REASONS)
    local.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE refused AS
        SELECT l.record_key AS left_key, r.record_key AS right_key, p.weight AS match_weight,
               [{reasons}][p.code + 1] AS reason, lk.record_key AS left_cluster,
               rk.record_key AS right_cluster
        FROM refused_pos p
        JOIN records l ON l.rowid = p.low JOIN records r ON r.rowid = p.high
        JOIN records lk ON lk.rowid = p.low_key JOIN records rk ON rk.rowid = p.high_key
        ORDER BY p.n
        """
    )
    key_at, code, size = result.flags
    _register(local, "flag_pos", {"key_pos": key_at, "code": code, "size": size})
    local.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE flags AS
        SELECT k.record_key AS cluster_key, [{reasons}][f.code + 1] AS reason, f.size
        FROM flag_pos f JOIN records k ON k.rowid = f.key_pos
        ORDER BY f.key_pos, f.code
        """
    )
    largest_key = ""
    if n:
        (largest_key,) = _one(
            local, f"SELECT record_key FROM records WHERE rowid = {result.largest_at}"
        )
    for table in ("cluster_pos", "refused_pos", "flag_pos"):
        local.execute(f"DROP TABLE {table}")
    summary = ClusterSummary(
        cluster_count=result.cluster_count,
        largest_size=result.largest_size,
        largest_key=largest_key,
        merged_links=result.merged_links,
        refused=len(low),
        flagged_clusters=len(np.unique(key_at)),
    )
    _check_giant(result, n, largest_key, settings)
    return summary


def _register(local: LocalSql, name: str, columns: dict[str, npt.NDArray[Any]]) -> None:
    local.load(name, pa.table({k: pa.array(v) for k, v in columns.items()}))
