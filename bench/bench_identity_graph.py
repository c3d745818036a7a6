"""Benchmark: the identity graph and guarded clustering on 1M synthetic records (~1.5M links).

Times deterministic_links + cluster and prints one JSON line; the argument is the number of
random probabilistic links added (default 700,000).

    python bench/bench_identity_graph.py 700000
"""

import json
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from c360.config import ComputeSettings, IdentitySettings
from c360.contracts.identity import IDENTIFIERS, LINKS, RECORDS
from c360.engines import open_compute
from c360.identity.clustering import cluster
from c360.identity.graph import deterministic_links

rng = np.random.default_rng(1)
customers, guests, prob_links = 130_000, 219_999, int(sys.argv[1]) if len(sys.argv) > 1 else 700_000
cid = np.arange(1, customers + 1)
parts = [
    ("mysql/customer:", cid, cid, cid),
    ("mysql/order:", np.arange(customers * 4), np.repeat(cid, 4), np.repeat(cid, 4)),
    ("clickstream/cookie:", np.arange(customers), None, cid),
    ("mysql/order:g", np.arange(guests), None, -rng.integers(1, 110_000, guests)),
]
keys, accounts, emails = [], [], []
for prefix, ids, account, email in parts:
    keys.append(pc.binary_join_element_wise(prefix, pa.array(ids).cast(pa.string()), ""))
    accounts.append(
        pa.array(account, pa.int64()) if account is not None else pa.nulls(len(ids), pa.int64())
    )
    emails.append(pc.binary_join_element_wise("u", pa.array(email).cast(pa.string()), "@x.com"))
keys.append(pa.array(["clickstream/cookie:shared"]))
accounts.append(pa.nulls(1, pa.int64()))
emails.append(pa.nulls(1, pa.string()))
key, email = pa.concat_arrays(keys), pa.concat_arrays(emails)
n = len(key)
cols = {f.name: pa.nulls(n, f.type) for f in RECORDS}
cols.update(record_key=key, customer_id=pa.concat_arrays(accounts), email=email, email_key=email)
order = rng.permutation(n)
recs = pa.table([cols[f.name] for f in RECORDS], schema=RECORDS).take(pa.array(order))
cookie_keys = keys[2]
ids = pa.concat_tables(
    [
        pa.table(
            {"record_key": key, "id_type": pa.array(["email"] * n), "id_value": email},
            schema=IDENTIFIERS,
        ),
        pa.table(
            {
                "record_key": cookie_keys,
                "id_type": pa.array(["customer_id"] * customers),
                "id_value": pa.array(cid).cast(pa.string()),
            },
            schema=IDENTIFIERS,
        ),
        pa.table(
            {
                "record_key": pa.array(["clickstream/cookie:shared"] * 500),
                "id_type": pa.array(["customer_id"] * 500),
                "id_value": pa.array(rng.choice(cid, 500, replace=False)).cast(pa.string()),
            },
            schema=IDENTIFIERS,
        ),
    ]
)
pairs = rng.integers(0, n, (prob_links, 2))
pairs = pairs[pairs[:, 0] != pairs[:, 1]]
lo, hi = pairs.min(axis=1), pairs.max(axis=1)
m = len(lo)
prob = pa.table(
    {
        "left_key": key.take(pa.array(lo)),
        "right_key": key.take(pa.array(hi)),
        "kind": pa.array(["probabilistic"] * m),
        "evidence": pa.array(["splink"] * m),
        "match_weight": pa.array(rng.uniform(7, 20, m)),
        "match_probability": pa.array(np.full(m, 0.995)),
        "contributions": pa.nulls(m, pa.string()),
    },
    schema=LINKS,
)
settings = IdentitySettings()
t0 = time.perf_counter()
graph = deterministic_links(open_compute(ComputeSettings()), recs, ids, settings)
t1 = time.perf_counter()
result = cluster(recs, pa.concat_tables([graph.links, prob]), settings)
t2 = time.perf_counter()
print(
    json.dumps(
        {
            "records": n,
            "identifiers": ids.num_rows,
            "deterministic_links": graph.links.num_rows,
            "probabilistic_links": m,
            "graph_s": round(t1 - t0, 2),
            "cluster_s": round(t2 - t1, 2),
            "total_s": round(t2 - t0, 2),
            "clusters": result.cluster_count,
            "largest": result.largest_size,
            "refused": result.refused.num_rows,
            "merged": result.merged_links,
        }
    )
)
