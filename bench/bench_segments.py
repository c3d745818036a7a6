"""Benchmark: segment preview (count + a sample of 10) on the serving store.

Publishes a batch to SQLite and, when given, PostgreSQL, then previews a few definitions (batch
fields only, and one with a real-time field, which joins the real-time view) and prints the
median and worst time of ``ServingStore.preview_segment`` per definition and store. The batch is
a world's (``--dir``: the day the feature benchmark wrote to the lake, as bench_profile_read.py
reads it) or, with ``--synthetic N``, N persons with every catalogue column filled with seeded
random values (10 % nulls) — the medium world has 121,157 persons.

    python bench/bench_segments.py --dir /tmp/c360-medium
    python bench/bench_segments.py --synthetic 121157 \
        --postgres postgresql://postgres@127.0.0.1:5432/seg_bench
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute

from c360.batch.catalogue import CATALOGUE
from c360.contracts import serving
from c360.stores import open_store

DEFINITIONS = (
    "total_lifetime_spend > 500 and marketing_opt_in",
    "rfm_recency >= 4 and (orders_90d between 1 and 3 or email_open_rate > 0.3) "
    "and favourite_category in ('Books', 'Garden', 'Toys')",
    "last_purchase_date < '2026-06-01' and total_lifetime_spend > 200 and not csat_score < 0.3",
    "cart_value > 100 and total_lifetime_spend > 100",  # a real-time field: the view's join
)
CATEGORIES = ("Books", "Garden", "Toys", "Electronics", "Fashion", "Home", "Sports", "Beauty")


def synthetic(persons: int, seed: int = 7) -> dict[str, pa.Table]:
    rng = np.random.default_rng(seed)
    ids = [f"p_{i:016x}" for i in range(persons)]
    columns: dict[str, pa.Array] = {"person_id": pa.array(ids)}
    day0 = dt.date(2026, 12, 5)
    for feature in CATALOGUE[1:]:
        kind = feature.type
        missing = rng.random(persons) < 0.1
        if pa.types.is_boolean(kind):
            values: pa.Array = pa.array(rng.random(persons) < 0.5, mask=missing)
        elif pa.types.is_integer(kind):
            values = pa.array(rng.integers(0, 100, persons), pa.int64(), mask=missing)
        elif pa.types.is_decimal(kind):
            spend = np.round(rng.exponential(300, persons), 2)
            values = pa.array(spend, mask=missing).cast(kind)
        elif pa.types.is_floating(kind):
            values = pa.array(rng.random(persons), mask=missing)
        elif pa.types.is_date(kind):
            days = rng.integers(0, 730, persons)
            values = pa.array(
                [day0 - dt.timedelta(days=int(d)) for d in days], pa.date32(), mask=missing
            )
        elif pa.types.is_timestamp(kind):
            seconds = rng.integers(0, 730 * 86400, persons)
            start = dt.datetime(2026, 12, 6)
            values = pa.array(
                [start - dt.timedelta(seconds=int(s)) for s in seconds],
                pa.timestamp("us"),
                mask=missing,
            )
        else:
            picks = rng.integers(0, len(CATEGORIES), persons)
            values = pa.array([CATEGORIES[p] for p in picks], mask=missing)
        columns[feature.name] = values
    columns["batch_date"] = pa.array([day0] * persons, pa.date32())
    emails = [f"{i}@example.com" for i in ids]
    return {
        "person": pa.table({"person_id": ids, "email": emails}),
        "identity_map": pa.table(
            {"id_type": ["email"] * persons, "id_value": emails, "person_id": ids}
        ),
        "batch_profile": pa.table(columns),
    }


def from_world(directory: Path) -> dict[str, pa.Table]:
    from bench_features import settings_for
    from bench_profile_read import batch_tables
    from c360.lake import Lake

    lake = Lake(settings_for(directory, 1, 1, "duckdb").lake.url)  # only its lake is read
    day = lake.partitions("profile", "batch_profile", "features")[-1]
    return batch_tables(lake, day)


def realtime_rows(
    tables: dict[str, pa.Table], share: float, seed: int = 7
) -> list[dict[str, object]]:
    """Real-time state for a share of the persons (by their email identifier): a session and
    a cart worth 0-300."""
    rng = np.random.default_rng(seed)
    emails = tables["identity_map"].filter(
        pa.compute.equal(tables["identity_map"]["id_type"], "email")
    )
    at = dt.datetime(2026, 12, 6, 10)
    rows = []
    for email in emails["id_value"].to_pylist():
        if rng.random() < share:
            rows.append(
                {
                    "id_type": "email",
                    "id_value": email,
                    "session_start": at,
                    "last_event_at": at,
                    "current_session_page_views": 3,
                    "events_total": 5,
                    "cart_items": 1,
                    "cart_value": float(np.round(rng.random() * 300, 2)),
                    "cart_updated_at": at,
                }
            )
    return rows


def measure(
    url: str, tables: dict[str, pa.Table], realtime: list[dict[str, object]], repeats: int
) -> list[dict[str, object]]:
    store = open_store(url)
    results = []
    try:
        store.migrate()
        store.publish_batch(dt.date(2026, 12, 5), tables)
        with store.engine.begin() as conn:
            conn.execute(serving.realtime_state.delete())
            if realtime:
                conn.execute(serving.realtime_state.insert(), realtime)
        for definition in DEFINITIONS:
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                preview = store.preview_segment(definition, sample=10)
                times.append(time.perf_counter() - started)
            results.append(
                {
                    "bench": "segment_preview",
                    "store": url.split(":")[0],
                    "persons": tables["batch_profile"].num_rows,
                    "realtime_rows": len(realtime),
                    "definition": definition,
                    "count": preview.count,
                    "median_s": round(statistics.median(times), 4),
                    "max_s": round(max(times), 4),
                }
            )
    finally:
        store.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dir", type=Path, help="a world directory (bench_features.py's)")
    source.add_argument("--synthetic", type=int, help="N synthetic persons")
    parser.add_argument("--postgres", help="also on this PostgreSQL database (emptied)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--realtime-share",
        type=float,
        default=0.2,
        help="share of persons given a real-time state row (a cart) by email",
    )
    args = parser.parse_args()
    tables = synthetic(args.synthetic) if args.synthetic else from_world(args.dir)
    with tempfile.TemporaryDirectory(prefix="seg-bench-") as scratch:
        urls = [f"sqlite:///{Path(scratch) / 'serving.db'}"]
        if args.postgres:
            urls.append(args.postgres)
        for url in urls:
            realtime = realtime_rows(tables, args.realtime_share)
            for result in measure(url, tables, realtime, args.repeats):
                print(json.dumps(result))


if __name__ == "__main__":
    main()
