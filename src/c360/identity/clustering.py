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

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from c360.config import IdentitySettings
from c360.contracts.identity import CLUSTERS, FLAGS, LINKS, REFUSED
from c360.errors import DataError, GiantClusterError

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


def _flags(keys: pa.Array, key_at: Ints, codes: Ints, size_of: Ints) -> pa.Table:
    """One row per (cluster, reason), sorted by cluster key then reason.

    ``key_at``: position of the flagged cluster's key; ``size_of``: cluster size per record.
    """
    rows = np.unique(key_at * len(REASONS) + codes)
    key_at, codes = rows // len(REASONS), rows % len(REASONS)
    return pa.table(
        [
            keys.take(pa.array(key_at)),
            pa.array(np.asarray(REASONS, dtype=object)[codes], pa.string()),
            pa.array(size_of[key_at], pa.int64()),
        ],
        schema=FLAGS,
    )


def _roots(parent: Ints) -> Ints:
    """Pointer jumping until every entry names its tree's root."""
    while True:
        jumped = parent[parent]
        if np.array_equal(jumped, parent):
            return parent
        parent = jumped


def cluster(records: pa.Table, links: pa.Table, settings: IdentitySettings) -> Clustering:
    """Every record's cluster, the flags for review, and the refused probabilistic links."""
    keys, has_account, account = _records_in_key_order(records)
    n = len(keys)
    links = _check_links(links)
    left, right = _positions(links, keys)
    deterministic = pc.equal(links["kind"], "deterministic").to_numpy(zero_copy_only=False)

    # 1. Deterministic components, their size and the customer accounts each holds.
    count, label = _components(n, left[deterministic], right[deterministic])
    size = np.bincount(label, minlength=count)
    accounts_in, comp_account = _accounts(count, label, has_account, account)

    # 2. Probabilistic links between components, strongest first (ties by the keys).
    probabilistic = ~deterministic
    weight = links["match_weight"].filter(pa.array(probabilistic)).to_numpy(zero_copy_only=False)
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
    clusters = pa.table([keys, keys.take(pa.array(key_at))], schema=CLUSTERS)

    reason_names = np.asarray(REASONS, dtype=object)
    refused = pa.table(
        [
            keys.take(pa.array(low[at])),
            keys.take(pa.array(high[at])),
            pa.array(weight[at], pa.float64()),
            pa.array(reason_names[codes], pa.string()),
            keys.take(pa.array(key_at[low[at]])),
            keys.take(pa.array(key_at[high[at]])),
        ],
        schema=REFUSED,
    )

    # Flags: any record of a flagged cluster, and the reason.
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
    flags = _flags(keys, key_at[flagged], flag_codes, final_size[final])

    largest_size = int(final_size.max()) if n else 0
    largest_key = keys[int(first[final_size == largest_size].min())].as_py() if n else ""
    result = Clustering(
        clusters=clusters,
        flags=flags,
        refused=refused,
        cluster_count=int(np.count_nonzero(final_size)),
        largest_size=largest_size,
        largest_key=largest_key,
        merged_links=int(np.count_nonzero(np.asarray(parent) != np.arange(count))),
    )
    giant = max(settings.giant_cluster_share * n, settings.giant_cluster_min_records)
    if largest_size > giant:
        raise GiantClusterError(largest_key, largest_size, n, settings.giant_cluster_share)
    return result
