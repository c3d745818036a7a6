"""Benchmark: the batch feature step on DuckDB (and optionally Spark) for a simulated world.

Prepares once (reused while the folder exists; an interrupted preparation resumes at the stage
it stopped in): generate the world, ingest every source for its last day, backfill the
clickstream into the archive, run the identity step. Then times the
feature step alone — read the lake, compute every catalogue feature, write the day's snapshot —
and prints one JSON line.

    python bench/bench_features.py --customers 100000 --days 730 --dir /tmp/c360-medium
    python bench/bench_features.py --dir /tmp/c360-medium --engine spark   # same lake
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import resource
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from c360.config import Settings, load_config
from c360.ingest.backfill import backfill_file
from c360.ingest.run import ingest
from c360.lake import Lake
from c360.pipeline.demo import demo_overrides
from c360.pipeline.steps import run_features, run_identity
from c360.simulator import generate


def settings_for(
    folder: Path, customers: int, days: int, engine: str, memory_limit: str = ""
) -> Settings:
    overrides = {
        **demo_overrides(folder),
        "simulator.customers": customers,
        "simulator.days": days,
        "compute.engine": engine,
        "compute.memory_limit": memory_limit,
    }
    return load_config(environ={}, overrides=overrides).settings


def prepare(
    settings: Settings, folder: Path, day: dt.date, drop_sources: bool = False
) -> dict[str, float]:
    """Generate, ingest, backfill and resolve identities, once: each stage done is recorded
    (with its seconds) in ``folder/prepared``, so an interrupted preparation resumes.
    ``drop_sources`` deletes each source file once it is in the lake (the large world's 38 GB
    of sources and its lake do not fit this machine's disk together)."""
    marker = folder / "prepared"
    timings: dict[str, float] = json.loads(marker.read_text()) if marker.exists() else {}
    lake = Lake(settings.lake.url)
    clickstream = Path(settings.sources.clickstream.path)
    stages: dict[str, Callable[[], object]] = {
        "generate_s": lambda: clickstream.exists() or generate(settings, replace=True),
        "ingest_s": lambda: ingest(settings, day, ("mysql", "mailchimp", "zendesk")),
        "backfill_s": lambda: backfill_file(lake, clickstream, "clickstream", day),
        "identity_s": lambda: run_identity(settings, lake, day),
    }
    for stage, work in stages.items():
        if stage in timings:
            continue
        started = time.perf_counter()
        work()
        timings[stage] = time.perf_counter() - started
        marker.write_text(json.dumps(timings))
        if drop_sources:
            _drop_ingested(settings, stage)
    return timings


def _drop_ingested(settings: Settings, stage: str) -> None:
    sources = settings.sources
    dropped = {
        "ingest_s": [
            Path(sources.mysql.url.removeprefix("sqlite:///")),
            Path(sources.zendesk.path),
            Path(sources.mailchimp.dir),
        ],
        "backfill_s": [Path(sources.clickstream.path)],
    }.get(stage, [])
    for path in dropped:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


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
    parser.add_argument(
        "--memory-limit",
        default="",
        help="compute.memory_limit for preparation and the feature step, e.g. 6GB "
        "(default: the engine's)",
    )
    parser.add_argument(
        "--drop-sources",
        action="store_true",
        help="delete each generated source once it is in the lake (for worlds near disk size)",
    )
    parser.add_argument(
        "--prepare-only",
        action="store_true",
        help="stop after preparing, so a later run's peak RSS is the feature step's alone",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args.dir.mkdir(parents=True, exist_ok=True)
    engines = ["duckdb", "spark"] if args.engine == "both" else [args.engine]
    settings = settings_for(args.dir, args.customers, args.days, engines[0], args.memory_limit)
    day = settings.simulator.start_date + dt.timedelta(days=settings.simulator.days - 1)
    preparation = prepare(settings, args.dir, day, args.drop_sources)
    if args.prepare_only:
        print(json.dumps({"bench": "batch_features", "prepared": preparation}))
        return
    lake = Lake(settings.lake.url)
    orders = lake.manifest("shop", "orders", day)["rows"]
    events = sum(
        lake.manifest("events", "clickstream", d)["rows"]
        for d in lake.partitions("events", "clickstream")
    )
    seconds: dict[str, float] = {}
    for engine in engines:
        engine_settings = settings_for(
            args.dir, args.customers, args.days, engine, args.memory_limit
        )
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
