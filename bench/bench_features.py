"""Benchmark: the batch feature step on DuckDB (and optionally Spark) for a simulated world.

Prepares once (reused while the folder exists): generate the world, ingest every source for
its last day, backfill the clickstream into the archive, run the identity step. Then times the
feature step alone — read the lake, compute every catalogue feature, write the day's snapshot —
and prints one JSON line.

    python bench/bench_features.py --customers 100000 --days 730 --dir /tmp/c360-medium
    python bench/bench_features.py --dir /tmp/c360-medium --engine spark   # same lake
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import time
from pathlib import Path

from c360.batch.steps import run_features, run_identity
from c360.config import Settings, load_config
from c360.demo import demo_overrides
from c360.ingest.backfill import backfill_file
from c360.ingest.run import ingest
from c360.lake import Lake
from c360.simulator import generate


def settings_for(folder: Path, customers: int, days: int, engine: str) -> Settings:
    overrides = {
        **demo_overrides(folder),
        "simulator.customers": customers,
        "simulator.days": days,
        "compute.engine": engine,
    }
    return load_config(environ={}, overrides=overrides).settings


def prepare(settings: Settings, folder: Path, day: dt.date) -> dict[str, float]:
    marker = folder / "prepared"
    if marker.exists():
        return {}
    timings = {}
    started = time.perf_counter()
    if not Path(settings.sources.clickstream.path).exists():  # a world from an earlier try
        generate(settings, replace=True)
        timings["generate_s"] = time.perf_counter() - started
    started = time.perf_counter()
    ingest(settings, day, ("mysql", "mailchimp", "zendesk"))
    lake = Lake(settings.lake.url)
    backfill_file(lake, Path(settings.sources.clickstream.path), "clickstream", day)
    timings["ingest_s"] = time.perf_counter() - started
    started = time.perf_counter()
    run_identity(settings, lake, day)
    timings["identity_s"] = time.perf_counter() - started
    marker.write_text(json.dumps(timings))
    return timings


def time_features(settings: Settings, day: dt.date) -> tuple[int, float, float]:
    """Persons profiled, wall seconds and this process's CPU seconds of one feature step."""
    lake = Lake(settings.lake.url)
    cpu, started = time.process_time(), time.perf_counter()
    outcome = run_features(settings, lake, day)
    return outcome.rows or 0, time.perf_counter() - started, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/c360-bench-features"))
    parser.add_argument(
        "--engine",
        choices=["duckdb", "spark", "both"],
        default="duckdb",
        help="both: DuckDB then Spark on the same lake in this run, with their ratio",
    )
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    engines = ["duckdb", "spark"] if args.engine == "both" else [args.engine]
    settings = settings_for(args.dir, args.customers, args.days, engines[0])
    day = settings.simulator.start_date + dt.timedelta(days=settings.simulator.days - 1)
    preparation = prepare(settings, args.dir, day)
    lake = Lake(settings.lake.url)
    orders = lake.manifest("shop", "orders", day)["rows"]
    events = sum(
        lake.manifest("events", "clickstream", d)["rows"]
        for d in lake.partitions("events", "clickstream")
    )
    seconds: dict[str, float] = {}
    for engine in engines:
        engine_settings = settings_for(args.dir, args.customers, args.days, engine)
        persons, seconds[engine], cpu = time_features(engine_settings, day)
        print(
            json.dumps(
                {
                    "bench": "batch_features",
                    "engine": engine,
                    "persons": persons,
                    "orders": orders,
                    "clickstream_events": events,
                    "seconds": round(seconds[engine], 2),
                    "driver_cpu_seconds": round(cpu, 2),
                    "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                    **{k: round(v, 1) for k, v in preparation.items()},
                }
            ),
            flush=True,
        )
    if len(seconds) == 2:
        ratio = seconds["spark"] / seconds["duckdb"]
        print(json.dumps({"bench": "batch_features", "spark_over_duckdb": round(ratio, 1)}))


if __name__ == "__main__":
    main()
