"""Benchmark the Profile API as the website calls it: lookups under load, while the speed layer
writes (issue 14).

    python bench/bench_api.py --dir /tmp/c360-medium                     # SQLite, one process
    python bench/bench_api.py --dir /tmp/c360-medium --workers 2 \\
        --store postgresql://postgres@127.0.0.1:5432/c360_bench_api        # PostgreSQL

The medium world's lake must be prepared (``bench_features.py --prepare-only`` and a feature
run). Once per store the day's batch is published and the speed layer folds the first
``--seed-events`` of the world's clickstream, so profiles have real-time state. Then, as separate
processes: ``c360 serve [--workers N]``, ``c360 stream run`` on the store's local log (the seed's,
kept beside the world: the store holds the worker's offsets in it), and in this process a
writer appending fresh events for known cookies at ``--writer-rate`` events/s; the summary's
``applied_events`` says how many of them the speed layer applied during the run. Measured, in this
order, in the same run:

- the *floor*: ``GET /healthz`` — a constant endpoint on the same server stack — with wrk;
- profile lookups by person id, and by email, with wrk (maximum throughput, 8 connections);
- the floor again: the ratios are to the mean of both floors;
- p50/p99 of lookups by person id at ``--rate`` requests/s, by an open-loop client that counts
  latency from each request's due time (``http_load.open_loop``);
- with ``--rounds N``, N interleaved rounds of the floor, by id and by email: each round's
  ratios to its own floor, and their median (robust to a machine whose speed drifts).

Prints one JSON line per measurement and a summary with each lookup's ratio to the floor.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gzip
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).parent))

from bench_features import settings_for
from c360.access.keys import generate
from c360.lake import Lake
from c360.logs import open_log
from c360.pipeline.steps import run_publish
from c360.pipeline.stream_worker import run as run_worker
from c360.stores import open_store
from http_load import open_loop, wrk

WARM_UP_SECONDS = 5  # the server and the speed layer settle before the first measurement


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def prepare(folder: Path, store_url: str, seed_events: int, world: tuple[int, int]) -> str:
    """Publish the world's last day to the store and seed real-time state (once per store);
    the URL of the store's event log. ``world``: its customers and days, as
    ``bench_features.py`` prepared it.

    The log lives beside the world and every run appends to it: the store keeps the speed
    layer's offsets in it (exactly-once), so a worker on a new, empty log would wait for
    offsets it already committed and apply nothing."""
    marker = folder / f"api-prepared-{uuid.uuid5(uuid.NAMESPACE_URL, store_url).hex[:8]}"
    log_url = f"local://{folder / f'api-seed-log-{marker.name}'}"
    if marker.exists():
        return log_url
    settings = settings_for(folder, *world, "duckdb")
    settings = settings.model_copy(
        update={"serving": settings.serving.model_copy(update={"url": store_url})}
    )
    day = settings.simulator.start_date + dt.timedelta(days=settings.simulator.days - 1)
    started = time.perf_counter()
    run_publish(settings, Lake(settings.lake.url), day)
    published = time.perf_counter() - started
    with open_log(log_url, 4) as log:
        lines = _first_lines(Path(settings.sources.clickstream.path), seed_events)
        log.append("clickstream", [(_key(line), line) for line in lines])
        store = open_store(store_url)
        try:
            stats = run_worker(log, store, stop_when_caught_up=True)
        finally:
            store.dispose()
    marker.write_text(json.dumps({"publish_s": published, "seed_events": stats.events}))
    return log_url


def applied_offset(store_url: str) -> int:
    """How far the speed layer has read the clickstream: the sum of its committed offsets."""
    store = open_store(store_url)
    try:
        return sum(store.offsets("speed", "clickstream").values())
    finally:
        store.dispose()


def vacuum(store_url: str) -> None:
    """On PostgreSQL, ``VACUUM (ANALYZE)`` the serving tables, as autovacuum does on a server
    in steady state (it is off on this machine's server): statistics for the real-time tables
    the speed layer filled, and visibility maps, so identifier lookups are index-only scans."""
    if not store_url.startswith("postgresql"):
        return
    store = open_store(store_url)
    try:
        with store.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM (ANALYZE)")
    finally:
        store.dispose()


def _first_lines(path: Path, count: int) -> list[bytes]:
    lines = []
    with gzip.open(path, "rb") as stream:
        for line in stream:
            lines.append(line.rstrip(b"\n"))
            if len(lines) >= count:
                break
    return lines


def _key(line: bytes) -> str:
    message = orjson.loads(line)
    return str(message.get("anonymousId") or message.get("userId") or "")


def api_key(store_url: str) -> str:
    """A fresh ``profiles:read`` key whose rate limit the load stays under: authentication and
    the rate limiter run on every request, they just never refuse one."""
    store = open_store(store_url)
    try:
        key = generate(["profiles:read"], name="bench_api", rate_limit_per_s=1_000_000)
        store.add_api_key(key.record)
        return key.key
    finally:
        store.dispose()


def lookups(store_url: str, count: int) -> tuple[list[str], list[str], list[str]]:
    """Random persons' profile paths by id and by email, and known cookies."""
    store = open_store(store_url)
    try:
        # an email the identity map holds: a shared mailbox (several persons) identifies none
        people = store.query(
            "SELECT p.person_id, m.id_value AS email FROM person p LEFT JOIN identity_map m "
            "ON m.id_type = 'email' AND m.id_value = lower(p.email) AND m.person_id = p.person_id"
        )
        cookies = store.query(
            "SELECT id_value FROM identity_map WHERE id_type = 'anonymous_id' LIMIT 50000"
        )
    finally:
        store.dispose()
    rng = random.Random(7)
    picks = rng.sample(people, min(count, len(people)))
    by_id = [f"/v1/profiles/{p['person_id']}" for p in picks]
    by_email = [f"/v1/profiles/by/email/{p['email']}" for p in picks if p["email"]]
    return by_id, by_email, [c["id_value"] for c in cookies]


class Writer(threading.Thread):
    """Appends fresh page and product events for known cookies at ``rate`` events/s."""

    def __init__(self, log_url: str, cookies: list[str], rate: float) -> None:
        super().__init__(daemon=True, name="bench-writer")
        self.log_url, self.cookies, self.rate = log_url, cookies, rate
        self.stop = threading.Event()
        self.written = 0

    def run(self) -> None:
        rng = random.Random(11)
        step = 0.05
        with open_log(self.log_url, 4) as log:
            next_at = time.perf_counter()
            while not self.stop.is_set():
                now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
                records = []
                for _ in range(int(self.rate * step)):
                    cookie = rng.choice(self.cookies)
                    message = {"type": "page", "messageId": uuid.uuid4().hex,
                               "anonymousId": cookie, "timestamp": now.replace("+00:00", "Z"),
                               "name": "Home"}  # fmt: skip
                    records.append((cookie, orjson.dumps(message)))
                log.append("clickstream", records)
                self.written += len(records)
                next_at += step
                time.sleep(max(0.0, next_at - time.perf_counter()))


def _wait_up(url: str, process: subprocess.Popen[bytes], errors: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited: {errors.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("the server did not come up")


@contextlib.contextmanager
def _profiled(pid: int, output: Path | None, seconds: int) -> Iterator[None]:
    """py-spy samples the server process(es) while the body runs, into ``output`` as collapsed
    stacks (one ``frame;frame;… count`` line each: grep and sum them), if ``output`` is given."""
    if output is None:
        yield
        return
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    spy = subprocess.Popen(
        [py_spy, "record", "--pid", str(pid), "--subprocesses", "--nonblocking",
         "--rate", "250", "--duration", str(seconds), "--format", "raw", "--output", str(output)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield
    finally:
        spy.wait(timeout=seconds + 30)


def interleaved(
    url: str,
    by_id: list[str],
    by_email: list[str],
    headers: dict[str, str],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """``args.rounds`` rounds of the floor, by id and by email, ``args.round_seconds`` each:
    each lookup's ratio to its own round's floor, so a machine whose speed drifts over a run
    (this one's floor moved by a third between phases) moves a round's floor and lookups
    together; the median of the rounds' ratios, and each round's figures."""
    rounds = []
    for _ in range(args.rounds):
        seconds = args.round_seconds
        floor = wrk(url, ["/healthz"], seconds=seconds)["requests_per_s"]
        by = {
            name: wrk(url, paths, headers=headers, seconds=seconds)["requests_per_s"]
            for name, paths in (("by_person_id", by_id), ("by_email", by_email))
        }
        rounds.append(
            {"floor": floor, **by, **{f"ratio_{k}": round(v / floor, 3) for k, v in by.items()}}
        )
    return {
        "median_ratio_by_person_id": statistics.median(r["ratio_by_person_id"] for r in rounds),
        "median_ratio_by_email": statistics.median(r["ratio_by_email"] for r in rounds),
        "each": rounds,
    }


def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    store_url = args.store or f"sqlite:///{args.dir / 'serving.db'}"
    log_url = prepare(args.dir, store_url, args.seed_events, (args.customers, args.days))
    vacuum(store_url)
    by_id, by_email, cookies = lookups(store_url, 20_000)
    port = _free_port()
    applied_before = applied_offset(store_url)
    env = {
        **os.environ,
        "C360_SERVING_URL": store_url,
        "C360_LOG_URL": log_url,
        "C360_LOG_PARTITIONS": "4",
        "C360_API_PORT": str(port),
        "C360_API_METRICS": str(args.metrics == "on").lower(),
    }
    if args.profile_cache is not None:
        env["C360_API_PROFILE_CACHE_SIZE"] = str(args.profile_cache)
    if args.profile_reads is not None:
        env["C360_API_PROFILE_READS"] = args.profile_reads
    headers = {"Authorization": f"Bearer {api_key(store_url)}", **dict(args.header or [])}
    python = [sys.executable, "-m", "c360"]
    server_errors = work / "server.err"
    with server_errors.open("wb") as err:
        server = subprocess.Popen(
            [*python, "serve", "--workers", str(args.workers)],
            env=env, stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
        worker = subprocess.Popen(
            [*python, "stream", "run"], env=env, stdout=subprocess.DEVNULL, stderr=err
        )
        writer = Writer(log_url, cookies, args.writer_rate)
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_up(url, server, server_errors)
            writer.start()
            time.sleep(WARM_UP_SECONDS)
            if args.steady:  # the lookup paths in turn: the caches as in a long run
                wrk(url, [*by_id, *by_email], headers=headers, seconds=args.steady, in_turn=True)
            results: dict[str, Any] = {"floor": wrk(url, ["/healthz"], seconds=args.seconds)}
            with _profiled(server.pid, args.profile, args.seconds):
                results["by_person_id"] = wrk(url, by_id, headers=headers, seconds=args.seconds)
            results |= {
                "by_email": wrk(url, by_email, headers=headers, seconds=args.seconds),
                "floor_after": wrk(url, ["/healthz"], seconds=args.seconds),
                "at_rate": open_loop(
                    url, by_id, rate=args.rate, seconds=args.seconds, headers=headers
                ),
            }
            if args.rounds:
                results["rounds"] = interleaved(url, by_id, by_email, headers, args)
            results["writer_events"] = writer.written
            # what the speed layer applied meanwhile: behind the writer by at most a batch or
            # two when it keeps up
            results["applied_events"] = applied_offset(store_url) - applied_before
        finally:
            writer.stop.set()
            for process in (server, worker):
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
    # The floor before and after the lookups: the machine drifts over a run (a floor taken
    # once varied from 4,000 to 6,200 req/s between runs), and the mean sits beside both.
    floor = (results["floor"]["requests_per_s"] + results["floor_after"]["requests_per_s"]) / 2
    results["floor_mean"] = round(floor)
    results["ratio_by_person_id"] = round(results["by_person_id"]["requests_per_s"] / floor, 3)
    results["ratio_by_email"] = round(results["by_email"]["requests_per_s"] / floor, 3)
    results["store"] = store_url.split(":")[0]
    results["workers"] = args.workers
    results["metrics"] = args.metrics
    results["profile_cache"] = args.profile_cache  # None: the setting's default
    results["profile_reads"] = args.profile_reads
    results["steady_seconds"] = args.steady
    results["cores"] = os.cpu_count()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/c360-medium"))
    parser.add_argument("--store", help="serving store URL (default: SQLite in --dir)")
    parser.add_argument("--customers", type=int, default=100_000, help="the world in --dir")
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--metrics",
        choices=["on", "off"],
        default="on",
        help="the server's Prometheus middleware and /metrics (api.metrics): off to measure "
        "their cost, alternating runs with on",
    )
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument(
        "--steady",
        type=int,
        default=0,
        help="seconds of lookups (by id and by email, each in turn, unmeasured) before the "
        "measurements, so the server's caches and the store's pages are as a long-running "
        "server has them; 0 (the default): measured from a cold start",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=0,
        help="after the phases above, this many interleaved rounds of the floor, by id and by "
        "email, --round-seconds each: ratios to each round's own floor, and their median",
    )
    parser.add_argument("--round-seconds", type=int, default=4)
    parser.add_argument("--rate", type=float, default=1000.0, help="open-loop requests/s")
    parser.add_argument("--writer-rate", type=float, default=1000.0, help="events/s written")
    parser.add_argument("--seed-events", type=int, default=500_000)
    parser.add_argument(
        "--profile",
        type=Path,
        help="record the server with py-spy during the by-id throughput run, as collapsed "
        "stacks into this file (py-spy must be on PATH; its sampling slows the server a little)",
    )
    parser.add_argument(
        "--profile-reads",
        choices=["inline", "async"],
        help="api.profile_reads of the server (default: the setting's)",
    )
    parser.add_argument(
        "--profile-cache",
        type=int,
        help="api.profile_cache_size of the server (default: the setting's; 0: every read whole)",
    )
    parser.add_argument(
        "--header",
        nargs=2,
        action="append",
        metavar=("NAME", "VALUE"),
        help="an extra header for every lookup",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        print(json.dumps({"bench": "api", **bench(args, Path(work))}, default=str))


if __name__ == "__main__":
    main()
