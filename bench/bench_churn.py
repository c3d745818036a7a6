"""Benchmark: the churn model on a prepared world — quality against the baselines, training
time and scoring time for every person.

Reads a lake prepared by ``bench_features.py --prepare-only`` (sources ingested, clickstream
backfilled, identities resolved for the last day) without writing into it: the lake is copied
into ``--work`` as hard links (the lake only ever adds files and renames folders, so the copy
never changes the original's files). Then: the day's feature step (the profile in this
release's schema), ``c360 train churn`` (point-in-time training set with the leak check,
model, baselines, registry, charts) and the score step over every person; one JSON line.

    python bench/bench_churn.py --dir /tmp/c360-medium --work /tmp/c360-churn-bench
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import subprocess
import time
from pathlib import Path

from c360.config import load_config
from c360.lake import Lake
from c360.pipeline import churn
from c360.pipeline.demo import demo_overrides
from c360.pipeline.steps import run_features


def link_copy(source: Path, target: Path) -> None:
    """``target`` as a hard-linked copy of ``source`` (once)."""
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(target.name + ".copying")
    shutil.rmtree(staging, ignore_errors=True)
    subprocess.run(["cp", "-al", str(source), str(staging)], check=True)
    os.replace(staging, target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/c360-medium"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/c360-churn-bench"))
    parser.add_argument("--horizon", type=int, default=90)
    parser.add_argument("--snapshots", type=int, default=6)
    parser.add_argument("--interval", type=int, default=30)
    parser.add_argument("--no-leak-check", action="store_true")
    parser.add_argument(
        "--memory-limit", default="6GB", help="compute.memory_limit of every feature run"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    link_copy(args.dir / "lake", args.work / "lake")
    overrides = {
        **demo_overrides(args.work),
        "churn.horizon_days": args.horizon,
        "churn.snapshots": args.snapshots,
        "churn.snapshot_interval_days": args.interval,
        "churn.leak_check": not args.no_leak_check,
        "compute.memory_limit": args.memory_limit,
    }
    settings = load_config(environ={}, overrides=overrides).settings
    lake = Lake(settings.lake.url)
    day = lake.partitions("identity", "identity_map", "features")[-1]

    started = time.perf_counter()
    run_features(settings, lake, day)
    features_s = time.perf_counter() - started

    started = time.perf_counter()
    trained = churn.train(settings, day)
    train_s = time.perf_counter() - started

    started = time.perf_counter()
    scored = churn.score(settings, day, trained.version, lake=lake)
    score_s = time.perf_counter() - started

    report = trained.report
    models = report["models"]
    baselines = {name: m["roc_auc"] for name, m in models.items() if name != "churn_model"}
    print(
        json.dumps(
            {
                "batch_date": day.isoformat(),
                "horizon_days": args.horizon,
                "snapshots": report["snapshots"],
                "rows": report["rows"],
                "churn_rate": report["churn_rate"],
                "models": models,
                "roc_auc_over_best_baseline": report["roc_auc_over_best_baseline"],
                "best_baseline": max(baselines, key=lambda n: baselines[n]),
                "baselines_skipped": report["baselines_skipped"],
                "top_features": report["top_features"][:5],
                "features_s": round(features_s, 1),
                "train_s": round(train_s, 1),
                "train_parts_s": report["seconds"],
                "score_s": round(score_s, 2),
                "persons": scored.persons,
                "persons_scored": scored.scored,
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                "model_version": trained.version,
                "charts": report["charts"],
            }
        )
    )


if __name__ == "__main__":
    main()
