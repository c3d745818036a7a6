"""Benchmark: stable person ids and identity_map for a day of ~1M records (~700k persons).

Builds a synthetic day-1 clustering (persons of 1 to 3 records, customers anchoring most), assigns
ids from scratch, then a day 2 where a share of persons merge with their neighbour and a share
of records split off, and assigns again from day 1's state. Also times ``identity_map`` over two
identifiers per record. Prints one JSON line.

    python bench/bench_stable_ids.py --records 1000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from c360.config import ComputeSettings
from c360.contracts.identity import RECORDS
from c360.engines import open_compute
from c360.identity.stable_ids import assign, identity_map


def world(records: int, seed: int) -> tuple[pa.Table, np.ndarray]:
    """RECORDS of ``records`` rows and each record's day-1 person number."""
    rng = np.random.default_rng(seed)
    sizes = rng.choice([1, 2, 3], p=[0.55, 0.35, 0.10], size=records)
    person = np.repeat(np.arange(len(sizes)), sizes)[:records]
    first = np.r_[True, person[1:] != person[:-1]]  # each person's first record: its customer
    record_type = np.where(first & (rng.random(records) < 0.8), "customer", "order")
    record_id = np.arange(records).astype(str)
    keys = pc.binary_join_element_wise("mysql/", record_type, ":", record_id, "")
    seen = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
    table = pa.table(
        {
            "record_key": keys,
            "source": pa.array(["mysql"] * records),
            "record_type": pa.array(record_type),
            "record_id": pa.array(record_id),
            "customer_id": pa.array(np.arange(records), pa.int64(), mask=record_type != "customer"),
            "email": pa.nulls(records, pa.string()),
            "email_key": pa.nulls(records, pa.string()),
            "phone": pa.nulls(records, pa.string()),
            "first_name": pa.nulls(records, pa.string()),
            "last_name": pa.nulls(records, pa.string()),
            "address": pa.nulls(records, pa.string()),
            "postcode": pa.nulls(records, pa.string()),
            "city": pa.nulls(records, pa.string()),
            "birth_date": pa.nulls(records, pa.date32()),
            "birth_md": pa.nulls(records, pa.string()),
            "first_seen": pa.array([seen] * records, pa.timestamp("us", tz="UTC")),
        }
    )
    table = table.set_column(
        table.schema.get_field_index("first_seen"),
        "first_seen",
        pc.add(table["first_seen"], pa.array(rng.integers(0, 10**12, records), pa.duration("us"))),
    )
    return table.cast(RECORDS), person


def clusters(keys: pa.Array, person: np.ndarray) -> pa.Table:
    """CLUSTERS with cluster_key = the smallest record_key of each person number."""
    table = pa.table({"record_key": keys, "person": person})
    smallest = table.group_by("person").aggregate([("record_key", "min")])
    joined = table.join(smallest, "person")
    return pa.table({"record_key": joined["record_key"], "cluster_key": joined["record_key_min"]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--changed", type=float, default=0.01, help="share merged / split")
    args = parser.parse_args()
    compute = open_compute(ComputeSettings())
    records, person = world(args.records, seed=7)
    rng = np.random.default_rng(8)
    day1, day2 = dt.date(2025, 1, 1), dt.date(2025, 1, 2)

    day1_clusters = clusters(records["record_key"], person)
    started = time.perf_counter()
    first = assign(compute, day1_clusters, records, None, day1)
    first_s = time.perf_counter() - started

    # Day 2: merge a share of persons into their neighbour, split a share of records off.
    persons = int(person.max()) + 1
    merged = rng.random(persons) < args.changed
    today = person.copy()
    today = np.where(merged[today], today + 1, today)
    split = rng.random(args.records) < args.changed
    today = np.where(split, persons + np.arange(args.records), today)
    day2_clusters = clusters(records["record_key"], today)
    started = time.perf_counter()
    second = assign(compute, day2_clusters, records, first.as_previous(), day2)
    second_s = time.perf_counter() - started

    identifiers = pa.table(
        {
            "record_key": pa.concat_arrays([records["record_key"].combine_chunks()] * 2),
            "id_type": pa.array(["customer_id"] * args.records + ["email"] * args.records),
            "id_value": pa.concat_arrays(
                [
                    pc.cast(records["customer_id"], pa.string()).combine_chunks(),
                    pa.array((person // 2).astype(str)),  # some emails shared by two persons
                ]
            ),
        }
    )
    started = time.perf_counter()
    mapped = identity_map(compute, identifiers, second.assignment)
    map_s = time.perf_counter() - started
    print(
        json.dumps(
            {
                "bench": "identity_stable_ids",
                "records": args.records,
                "persons_day1": first.person_ids.num_rows,
                "day1_s": round(first_s, 2),
                "day2_s": round(second_s, 2),
                **{f"day2_{k}": v for k, v in second.summary().items()},
                "identity_map_rows": mapped.map.num_rows,
                "identity_map_ambiguous": mapped.ambiguous.num_rows,
                "identity_map_s": round(map_s, 2),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            }
        )
    )


if __name__ == "__main__":
    main()
