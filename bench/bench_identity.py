"""Benchmark: the identity step on a simulated world, timed per stage and scored against truth.

Prepares the world once like bench_features.py (generate, ingest, backfill; reused while the
folder exists), then runs the whole identity step — records, graph, Splink, guarded
clustering, stable ids, identity_map, lake writes — and scores the result against the
simulator's ground truth (pairwise precision, recall and F1 over clusters). One JSON line,
with the process's peak RSS as each stage ended (sampled every 50 ms from /proc; Linux).

    python bench/bench_identity.py --customers 100000 --days 730 --dir /tmp/c360-medium
    python bench/bench_identity.py --customers 1000000 --dir /tmp/c360-1m --memory-limit 6GB \
        --no-eval   # the step alone: its seconds and peak RSS
    python bench/bench_identity.py --customers 1000000 --days 365 --dir /tmp/c360-1m \
        --memory-limit 5GB --no-clickstream   # accuracy at a million, without the 1-2 h backfill
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import threading
import time
from pathlib import Path

from bench_features import prepare, settings_for
from c360.contracts.identity import SOURCE, ZONE
from c360.engines import open_compute
from c360.identity.evaluate import evaluate, shared_email_key_share
from c360.lake import Lake
from c360.pipeline.identity import resolve


class RssSampler(threading.Thread):
    """The process's resident set, sampled: (seconds since start, bytes)."""

    def __init__(self, every: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.every, self.samples = every, [(0.0, self.rss())]
        self.started, self.done = time.perf_counter(), threading.Event()

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def run(self) -> None:
        while not self.done.wait(self.every):
            self.samples.append((time.perf_counter() - self.started, self.rss()))

    def peaks_mb(self, stage_seconds: dict[str, float]) -> dict[str, int]:
        """The highest sample within each stage (stages in order, their seconds)."""
        peaks, start = {}, 0.0
        for stage, seconds in stage_seconds.items():
            end = start + seconds
            inside = [b for t, b in self.samples if start <= t <= end] or [0]
            peaks[stage] = round(max(inside) / 2**20)
            start = end
        return peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/c360-medium"))
    parser.add_argument("--engine", choices=["duckdb", "spark"], default="duckdb")
    parser.add_argument(
        "--shared-email-share", type=float, help="simulator.shared_email_share (households)"
    )
    parser.add_argument("--memory-limit", default="", help="compute.memory_limit, e.g. 6GB")
    parser.add_argument("--max-block-size", type=int, help="identity.max_block_size")
    parser.add_argument(
        "--no-clickstream",
        action="store_true",
        help="leave the clickstream out of the lake (its backfill takes about 2 h at 1M x 730)",
    )
    parser.add_argument(
        "--no-eval", action="store_true", help="the step alone (no scoring against the truth)"
    )
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    settings = settings_for(args.dir, args.customers, args.days, args.engine, args.memory_limit)
    if args.shared_email_share is not None:
        simulator = settings.simulator.model_copy(
            update={"shared_email_share": args.shared_email_share}
        )
        settings = settings.model_copy(update={"simulator": simulator})
    if args.max_block_size is not None:
        identity = settings.identity.model_copy(update={"max_block_size": args.max_block_size})
        settings = settings.model_copy(update={"identity": identity})
    day = settings.simulator.start_date + dt.timedelta(days=settings.simulator.days - 1)
    if args.no_clickstream:  # prepare() skips a stage its marker holds; -1: left out
        marker = args.dir / "prepared"
        done = json.loads(marker.read_text()) if marker.exists() else {}
        marker.write_text(json.dumps({"backfill_s": -1, **done}))
    prepare(settings, args.dir, day)
    lake = Lake(settings.lake.url)
    sampler = RssSampler()
    sampler.start()
    started = time.perf_counter()
    report = resolve(settings, lake, day)
    seconds = time.perf_counter() - started
    sampler.done.set()
    step = {
        "bench": "identity",
        "engine": args.engine,
        "memory_limit": args.memory_limit or None,
        "records": report.records,
        "persons": report.persons,
        "seconds": round(seconds, 2),
        "stage_seconds": report.seconds,
        "stage_peak_rss_mb": sampler.peaks_mb(report.seconds),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "comparisons": report.probabilistic.get("comparisons"),
        "blocking_rules": report.probabilistic.get("blocking_rules"),
    }
    if args.no_eval:
        print(json.dumps({**step, "probabilistic": report.probabilistic}))
        return
    assignment = lake.read_partition(SOURCE, "assignment", day, ZONE)
    scores = evaluate(
        open_compute(settings.compute), assignment, Path(settings.simulator.truth_dir)
    )
    print(
        json.dumps(
            {
                **step,
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
            }
        )
    )


if __name__ == "__main__":
    main()
