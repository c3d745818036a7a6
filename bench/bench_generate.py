"""Benchmark `c360 generate`: seconds, peak RSS and counts as one JSON line.

    .venv/bin/python bench/bench_generate.py --customers 100000 --days 730

Writes into a temporary folder (removed afterwards) unless --out is given; the orders DB is the
embedded SQLite default unless --mysql-url is given.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from c360.config import load_config
from c360.simulator import generate


def _overrides(out: Path, args: argparse.Namespace) -> dict[str, object]:
    return {
        "simulator.customers": args.customers,
        "simulator.days": args.days,
        "simulator.seed": args.seed,
        "sources.mysql.url": args.mysql_url or f"sqlite:///{out / 'shopsmart.db'}",
        "sources.clickstream.path": str(out / "clickstream.jsonl.gz"),
        "sources.zendesk.path": str(out / "zendesk_events.jsonl"),
        "sources.mailchimp.dir": str(out / "mailchimp"),
        "simulator.truth_dir": str(out / "truth"),
    }


def _peak_rss_mb() -> tuple[float, float]:
    """Peak resident set size of this process and of its (waited-for) children, in MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return own / scale, children / scale


def _size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def run(args: argparse.Namespace, out: Path) -> dict[str, object]:
    settings = load_config(environ={}, overrides=_overrides(out, args)).settings
    started = time.perf_counter()
    summary = generate(settings, replace=True)
    seconds = time.perf_counter() - started
    own, children = _peak_rss_mb()
    return {
        "bench": "generate",
        "customers": args.customers,
        "days": args.days,
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(max(own, children), 1),
        "peak_rss_self_mb": round(own, 1),
        "peak_rss_children_mb": round(children, 1),
        "output_mb": round(_size_mb(out), 1),
        "cpus": os.cpu_count(),
        "counts": {k: v for k, v in dataclasses.asdict(summary).items() if k != "seconds"},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, help="output folder (default: a temporary one)")
    parser.add_argument("--mysql-url", help="orders DB URL instead of SQLite in the folder")
    parser.add_argument("--verbose", action="store_true", help="log progress to stderr")
    args = parser.parse_args()
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        result = run(args, args.out)
    else:
        with tempfile.TemporaryDirectory(prefix="c360-bench-generate-") as folder:
            result = run(args, Path(folder))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
