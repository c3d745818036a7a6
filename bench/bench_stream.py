"""Benchmark the speed layer: one worker, local event log → SQLite, events/s as one JSON line.

.venv/bin/python bench/bench_stream.py --customers 5000 --days 180 .venv/bin/python
bench/bench_stream.py --file data/clickstream.jsonl.gz

Generates a simulator world (unless --file names a clickstream file), publishes its clickstream
into a fresh local log (not timed), then times one worker (``c360.pipeline.stream_worker.run``)
consuming the log into a fresh SQLite serving store with every real-time feature: sessions, product
views, cart, last event, events in the last hour, orders for the Lambda merge. ``--support`` adds
the world's Zendesk events on the ``support`` topic. ``--persons N`` publishes a batch first
(customers 1..N as persons, so identified cookies resolve to them) and ``--segment
DEFINITION`` (with it) defines a real-time segment, re-evaluated in every micro-batch's
transaction: compare with and without to see what real-time membership costs.
``--segment-bytes N`` sets the local log's segment size (reads then cross a segment file every
N bytes). ``--metrics`` counts the worker's Prometheus metrics as ``c360 stream run
--metrics-port`` does (alternate runs with and without it to see what they cost). ``--suppressed
N`` puts customers 1..N on the suppression list first, as their erasures would: the worker then
checks every identifier of every batch against it (with an empty list it checks nothing).

In the same run it measures the *floor*: a plain Python loop over the same records' bytes that
decodes each with orjson and counts it in a dict by key (no validation, no state, no persistence),
the best of three. ``ratio`` is worker / floor."""

from __future__ import annotations

import argparse
import cProfile
import gzip
import json
import os
import pstats
import resource
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from c360.config import load_config
from c360.logs.local import LocalLog
from c360.pipeline.stream_metrics import StreamMetrics
from c360.pipeline.stream_publish import publish_file
from c360.pipeline.stream_worker import DEFAULT_BATCH_SIZE, BatchResult, run
from c360.simulator import generate
from c360.stores import open_store


def _world(out: Path, customers: int, days: int, seed: int) -> tuple[Path, Path]:
    overrides = {
        "simulator.customers": customers,
        "simulator.days": days,
        "simulator.seed": seed,
        "sources.mysql.url": f"sqlite:///{out / 'shopsmart.db'}",
        "sources.clickstream.path": str(out / "clickstream.jsonl.gz"),
        "sources.zendesk.path": str(out / "zendesk_events.jsonl"),
        "sources.mailchimp.dir": str(out / "mailchimp"),
        "simulator.truth_dir": str(out / "truth"),
    }
    generate(load_config(environ={}, overrides=overrides).settings, replace=True)
    return out / "clickstream.jsonl.gz", out / "zendesk_events.jsonl"


def _lines(path: Path) -> Iterator[bytes]:
    opener: Any = gzip.open if path.read_bytes()[:2] == b"\x1f\x8b" else open
    with opener(path, "rb") as stream:
        for line in stream:
            if line.strip():
                yield line.rstrip(b"\r\n")


def floor(values: list[bytes]) -> float:
    """Seconds for the plain loop: orjson-decode each record, count it per key in a dict."""
    started = time.perf_counter()
    counts: dict[str, int] = {}
    for value in values:
        try:
            message = orjson.loads(value)
        except orjson.JSONDecodeError:
            continue
        key = message.get("anonymousId") or message.get("userId") or ""
        counts[key] = counts.get(key, 0) + 1
    return time.perf_counter() - started


def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    generated = 0.0
    support_file: Path | None = None
    if args.file is None:
        started = time.perf_counter()
        clickstream, support_file = _world(work / "world", args.customers, args.days, args.seed)
        generated = time.perf_counter() - started
    else:
        clickstream = Path(args.file)
    values = list(_lines(clickstream))
    topics = ["clickstream"]
    sizes = {"segment_bytes": args.segment_bytes} if args.segment_bytes else {}
    with LocalLog(work / "log", args.partitions, **sizes) as log:
        published = publish_file(log, clickstream, topic="clickstream", batch_size=10_000)
        if args.support and support_file is not None:
            support = list(_lines(support_file))
            for i in range(0, len(support), 10_000):
                chunk = support[i : i + 10_000]
                log.append("support", [(_requester(v), v) for v in chunk])
            values += support
            topics.append("support")
        store = open_store(f"sqlite:///{work / 'serving.db'}")
        store.migrate()
        if args.persons:
            _publish_persons(store, args.persons)
        if args.segment:
            store.create_segment("bench-segment", args.segment)
        if args.suppressed:
            _suppress_customers(store, args.suppressed)
        profiler = cProfile.Profile() if args.profile else None
        written = 0

        def count(result: BatchResult) -> None:
            nonlocal written
            written += result.state_rows

        try:
            started, cpu_started = time.perf_counter(), time.process_time()
            if profiler is not None:
                profiler.enable()
            stats = run(
                log,
                store,
                topics=topics,
                stop_when_caught_up=True,
                batch_size=args.batch_size,
                on_commit=count,
                metrics=StreamMetrics("speed") if args.metrics else None,
            )
            seconds = time.perf_counter() - started
            cpu_seconds = time.process_time() - cpu_started
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(args.profile)
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
            rows = store.query(
                "SELECT (SELECT count(*) FROM realtime_state) AS state_rows, "
                "(SELECT count(*) FROM realtime_support) AS support_rows, "
                "(SELECT count(*) FROM realtime_order) AS orders, "
                "(SELECT count(*) FROM segment_event) AS segment_events"
            )[0]
        finally:
            store.dispose()
    floor_seconds = min(floor(values) for _ in range(3))
    events_per_s = stats.records / seconds
    floor_per_s = len(values) / floor_seconds
    return {
        "bench": "stream",
        "events": stats.records,
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu_seconds, 3),  # well below seconds: the machine was busy
        "events_per_s": round(events_per_s),
        "floor_events_per_s": round(floor_per_s),
        "ratio": round(events_per_s / floor_per_s, 3),
        "applied": stats.events,
        "duplicates": stats.duplicates,
        "dead_lettered": stats.dead_lettered,
        "batches": stats.batches,
        "state_rows_written": written,
        "batch_size": args.batch_size,
        "partitions": args.partitions,
        "segments": sum(1 for _ in (work / "log").glob("*/*/*.log")),
        "topics": topics,
        "persons": args.persons,
        "segment": args.segment,
        "metrics": args.metrics,
        "suppressed_customers": args.suppressed,
        "suppressed_events": getattr(stats, "suppressed", None),
        **rows,
        "publish_seconds": published.seconds,
        "generate_seconds": round(generated, 1),
        "customers": None if args.file else args.customers,
        "days": None if args.file else args.days,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "cores": os.cpu_count(),
    }


def _publish_persons(store: Any, persons: int) -> None:
    """A batch whose persons are customers 1..persons (spend 0..999), for real-time segments."""
    import datetime as dt

    import pyarrow as pa

    ids = [f"p_{i:016x}" for i in range(1, persons + 1)]
    store.publish_batch(
        dt.date(2000, 1, 1),
        {
            "person": pa.table({"person_id": ids}),
            "identity_map": pa.table(
                {
                    "id_type": ["customer_id"] * persons,
                    "id_value": [str(i) for i in range(1, persons + 1)],
                    "person_id": ids,
                }
            ),
            "batch_profile": pa.table(
                {
                    "person_id": ids,
                    "total_lifetime_spend": [float(i % 1000) for i in range(persons)],
                }
            ),
        },
    )


def _suppress_customers(store: Any, customers: int) -> None:
    """Customers 1..customers on the suppression list, as erasures leave them."""
    from c360.privacy import Subject

    subject = Subject()
    subject.add_all(("customer_id", i) for i in range(1, customers + 1))
    store.suppress(subject.hashes(store.erasure_salt()), "bench")


def _requester(value: bytes) -> str:
    try:
        detail = orjson.loads(value).get("detail") or {}
    except (orjson.JSONDecodeError, AttributeError):
        return ""
    return str(detail.get("requester_id") or detail.get("id") or "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--file", help="an existing clickstream file (JSON lines, plain or gzip)")
    parser.add_argument("--support", action="store_true", help="add the world's Zendesk events")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument(
        "--segment-bytes", type=int, help="the local log's segment size (default: log's default)"
    )
    parser.add_argument("--profile", help="write cProfile stats of the worker to this file")
    parser.add_argument("--keep", help="work in this folder and keep it (default: a temp dir)")
    parser.add_argument("--persons", type=int, default=0, help="publish customers 1..N first")
    parser.add_argument("--segment", help="a real-time segment's definition (with --persons)")
    parser.add_argument("--metrics", action="store_true", help="count the Prometheus metrics")
    parser.add_argument(
        "--suppressed",
        type=int,
        default=0,
        help="erase customers 1..N first (their ids on the suppression list): the worker then "
        "checks every identifier and drops their events",
    )
    args = parser.parse_args()
    if args.keep:
        work = Path(args.keep)
        shutil.rmtree(work / "log", ignore_errors=True)
        for stale in work.glob("serving.db*"):
            stale.unlink()
        work.mkdir(parents=True, exist_ok=True)
        print(json.dumps(bench(args, work)))
        return
    with tempfile.TemporaryDirectory(prefix="c360-bench-stream-") as folder:
        print(json.dumps(bench(args, Path(folder))))


if __name__ == "__main__":
    main()
