"""Benchmark: reading one wide profile by primary key from the serving store.

Publishes a world's batch (person, identity_map, person_redirect, batch_profile — the day the
feature benchmark wrote to the lake) to SQLite and, when given, PostgreSQL, then reads random
persons' unified profiles (batch + real-time + Lambda merge, exactly what the Profile API
serves) one at a time and prints p50/p99 latency and reads per second per store.

    python bench/bench_profile_read.py --dir /tmp/c360-medium \
        --postgres postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import time
from pathlib import Path

import pyarrow as pa
import sqlalchemy as sa

from bench_features import settings_for
from c360.lake import Lake
from c360.stores import open_store

ZONE = "features"


def batch_tables(lake: Lake, day: dt.date) -> dict[str, pa.Table]:
    return {
        "identity_map": lake.read_partition("identity", "identity_map", day, ZONE),
        "person_redirect": lake.read_partition("identity", "person_redirect", day, ZONE),
        "person": lake.read_partition("profile", "person", day, ZONE),
        "batch_profile": lake.read_partition("profile", "batch_profile", day, ZONE),
    }


def measure(url: str, day: dt.date, tables: dict[str, pa.Table], reads: int) -> dict[str, object]:
    store = open_store(url)
    try:
        store.migrate()
        started = time.perf_counter()
        store.publish_batch(day, tables)
        publish_s = time.perf_counter() - started
        persons = tables["person"]["person_id"].to_pylist()
        picks = random.Random(7).sample(persons, min(reads, len(persons)))
        latencies = []
        for person_id in picks:
            started = time.perf_counter()
            profile = store.profile(person_id)
            latencies.append(time.perf_counter() - started)
            assert profile is not None and profile["person_id"] == person_id
        latencies.sort()
        return {
            "bench": "profile_read",
            "store": url.split(":")[0],
            "persons": len(persons),
            "columns": tables["batch_profile"].num_columns,
            "publish_s": round(publish_s, 1),
            "reads": len(picks),
            "p50_ms": round(statistics.median(latencies) * 1000, 3),
            "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 3),
            "reads_per_s": round(len(picks) / sum(latencies)),
        }
    finally:
        store.dispose()


def fresh_postgres(url: str, name: str = "c360_bench_profile_read") -> str:
    """A scratch database ``name`` on the server of ``url`` (dropped and created)."""
    admin = sa.create_engine(
        url.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return url.rsplit("/", 1)[0] + f"/{name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/c360-medium"))
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--reads", type=int, default=10_000)
    parser.add_argument("--postgres", help="PostgreSQL URL to measure as well")
    args = parser.parse_args()
    settings = settings_for(args.dir, args.customers, args.days, "duckdb")
    day = settings.simulator.start_date + dt.timedelta(days=settings.simulator.days - 1)
    tables = batch_tables(Lake(settings.lake.url), day)
    urls = [f"sqlite:///{args.dir / 'bench-profile-read.db'}"]
    if args.postgres:
        urls.append(fresh_postgres(args.postgres))
    for url in urls:
        print(json.dumps(measure(url, day, tables, args.reads)), flush=True)


if __name__ == "__main__":
    main()
