"""Benchmark: the identity step on a simulated world, timed per stage and scored against truth.

Prepares the world once like bench_features.py (generate, ingest, backfill; reused while the
folder exists), then runs the whole identity step — records, graph, Splink, guarded
clustering, stable ids, identity_map, lake writes — and scores the result against the
simulator's ground truth (pairwise precision, recall and F1 over clusters). One JSON line.

    python bench/bench_identity.py --customers 100000 --days 730 --dir /tmp/c360-medium
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import time
from pathlib import Path

from bench_features import prepare, settings_for
from c360.contracts.identity import SOURCE, ZONE
from c360.engines import open_compute
from c360.identity.evaluate import evaluate, shared_email_key_share
from c360.lake import Lake
from c360.pipeline.identity import resolve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/c360-medium"))
    parser.add_argument("--engine", choices=["duckdb", "spark"], default="duckdb")
    parser.add_argument(
        "--shared-email-share", type=float, help="simulator.shared_email_share (households)"
    )
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    settings = settings_for(args.dir, args.customers, args.days, args.engine)
    if args.shared_email_share is not None:
        simulator = settings.simulator.model_copy(
            update={"shared_email_share": args.shared_email_share}
        )
        settings = settings.model_copy(update={"simulator": simulator})
    day = settings.simulator.start_date + dt.timedelta(days=settings.simulator.days - 1)
    prepare(settings, args.dir, day)
    lake = Lake(settings.lake.url)
    started = time.perf_counter()
    report = resolve(settings, lake, day)
    seconds = time.perf_counter() - started
    assignment = lake.read_partition(SOURCE, "assignment", day, ZONE)
    scores = evaluate(
        open_compute(settings.compute), assignment, Path(settings.simulator.truth_dir)
    )
    print(
        json.dumps(
            {
                "bench": "identity",
                "engine": args.engine,
                "records": report.records,
                "persons": report.persons,
                "seconds": round(seconds, 2),
                "stage_seconds": report.seconds,
                "precision": round(scores.precision, 5),
                "recall": round(scores.recall, 5),
                "f1": round(scores.f1, 5),
                "shared_email_keys": round(
                    shared_email_key_share(Path(settings.simulator.truth_dir)), 5
                ),
                "by_type": {
                    t.record_type: {"wrongly_merged": t.wrongly_merged, "split_off": t.split_off}
                    for t in scores.by_type
                },
                "deterministic_links": report.deterministic_links,
                "probabilistic_links": report.probabilistic_links,
                "refused_links": report.refused_links,
                "largest_cluster": report.largest_cluster,
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            }
        )
    )


if __name__ == "__main__":
    main()
