"""Benchmark freshness: an event POSTed to the collector → visible in the Profile API.

    .venv/bin/python bench/bench_freshness.py --file data/clickstream.jsonl.gz --rate 5000

Runs the embedded deployment as separate processes — ``c360 serve`` (Profile API and Segment
collector) and ``c360 stream run`` (the speed-layer worker), local event log and SQLite — and
sends simulator clickstream to ``/v1/batch`` at ``--rate`` events/s for ``--seconds``, in
batches of ``--batch`` events as Segment's SDKs send them (analytics.js flushes every 20),
from concurrent HTTP connections. Several times a second a batch also carries a *probe*: the
first event of a cookie that the serving store already maps to a person. A poller asks
``GET /v1/profiles/by/anonymous_id/<cookie>`` every ``--poll-ms`` until the profile's
real-time part shows the event; the probe's freshness is that moment minus the moment its
POST was sent (so it includes the poll interval, half of it on average). Prints one JSON line
with p50/p99/max over all probes, the rate achieved and any failed requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).parent))

from bench_stream import _lines
from c360.access.keys import generate
from c360.contracts.serving import identity_map, person
from c360.stores import open_store

KEY = "bench-write-key"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _seed(serving_url: str, probes: int) -> str:
    """A person per probe cookie, as a published batch would map it; an API key for the
    poller (no rate limit: the benchmark measures freshness, not the limiter)."""
    api_key = generate(["profiles:read"], name="bench freshness", rate_limit_per_s=0)
    store = open_store(serving_url)
    try:
        store.migrate()
        store.add_api_key(api_key.record)
        with store.engine.begin() as conn:
            conn.execute(insert(person), [{"person_id": f"p_probe{i}"} for i in range(probes)])
            conn.execute(
                insert(identity_map),
                [
                    {
                        "id_type": "anonymous_id",
                        "id_value": f"probe-{i}",
                        "person_id": f"p_probe{i}",
                    }
                    for i in range(probes)
                ],
            )
    finally:
        store.dispose()
    return api_key.key


def _probe(i: int) -> bytes:
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
    return orjson.dumps(
        {
            "type": "track",
            "event": "Freshness Probe",
            "anonymousId": f"probe-{i}",
            "messageId": str(uuid.uuid4()),
            "timestamp": stamp,
        }
    )


async def _load(
    args: argparse.Namespace, url: str, lines: list[bytes], api_key: str
) -> dict[str, Any]:
    interval = args.batch / args.rate  # seconds between batches
    batches = int(args.seconds / interval)
    probe_every = max(1, round(1 / (args.probes_per_s * interval)))
    latencies: list[float] = []
    failures: list[str] = []
    pending: set[asyncio.Task[None]] = set()
    limits = httpx.Limits(
        max_connections=args.connections, max_keepalive_connections=args.connections
    )
    # The collector takes the write key as Basic auth; the Profile API its key as a Bearer token
    # (a client-wide auth would replace that header on the reads too, each a 401).
    write_key = httpx.BasicAuth(KEY, "")
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:

        async def post(body: bytes) -> float:
            sent = time.perf_counter()
            response = await http.post(
                "/v1/batch",
                content=body,
                headers={"content-type": "application/json"},
                auth=write_key,
            )
            if response.status_code != 200:
                failures.append(f"{response.status_code} {response.text[:200]}")
            return sent

        async def send(body: bytes, probe: int | None) -> None:
            try:
                sent = await post(body)
            except httpx.HTTPError as exc:
                failures.append(repr(exc))
                return
            if probe is None:
                return
            # the probe's person has no other event: its last_event_at shows the probe applied
            path = f"/v1/profiles/by/anonymous_id/probe-{probe}?fields=last_event_at"
            while True:
                response = await http.get(path, headers={"Authorization": f"Bearer {api_key}"})
                if response.status_code == 200 and response.json()["profile"]["last_event_at"]:
                    latencies.append(time.perf_counter() - sent)
                    return
                if time.perf_counter() - sent > 30:
                    failures.append(
                        f"probe {probe} not visible after 30s (last answer: "
                        f"{response.status_code} {response.text[:200]})"
                    )
                    return
                await asyncio.sleep(args.poll_ms / 1000)

        started = time.perf_counter()
        for n in range(batches):
            delay = started + n * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            chunk = [lines[(n * args.batch + i) % len(lines)] for i in range(args.batch)]
            probe = n // probe_every if n % probe_every == 0 else None
            if probe is not None:
                chunk[-1] = _probe(probe)
            body = b'{"batch":[' + b",".join(chunk) + b"]}"
            task = asyncio.create_task(send(body, probe))
            pending.add(task)
            task.add_done_callback(pending.discard)
        sending = time.perf_counter() - started
        await asyncio.gather(*pending)
    latencies.sort()
    p99 = latencies[int(0.99 * (len(latencies) - 1))] if latencies else None
    return {
        "events_sent": batches * args.batch,
        "sending_seconds": round(sending, 2),
        "rate_achieved": round(batches * args.batch / sending),
        "probes": len(latencies),
        "p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "p99_ms": round(p99 * 1000, 1) if p99 is not None else None,
        "max_ms": round(latencies[-1] * 1000, 1) if latencies else None,
        "failed_requests": len(failures),
        "first_failures": failures[:3],
    }


def _wait_up(url: str, server: subprocess.Popen[bytes], errors: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        if server.poll() is not None:
            raise SystemExit(f"the API server exited: {errors.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("the API server did not come up within 30s")
        time.sleep(0.1)


def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    lines = list(_lines(Path(args.file)))[: args.rate * args.seconds + 1]
    probes = int(args.probes_per_s * args.seconds) + 10
    serving_url = f"sqlite:///{work / 'serving.db'}"
    api_key = _seed(serving_url, probes)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("C360_")}
    env |= {
        "C360_LOG_URL": f"local://{work / 'log'}",
        "C360_LOG_PARTITIONS": str(args.partitions),
        "C360_SERVING_URL": serving_url,
        "C360_COLLECTOR_WRITE_KEYS": KEY,
        "C360_API_HOST": "127.0.0.1",
        "C360_API_PORT": str(port),
    }
    if args.commit_interval is not None:
        env["C360_STREAM_COMMIT_INTERVAL_SECONDS"] = str(args.commit_interval)
    url = f"http://127.0.0.1:{port}"
    python = [sys.executable, "-m", "c360"]
    with (
        (work / "server.err").open("wb") as server_err,
        (work / "worker.err").open("wb") as worker_err,
    ):
        server = subprocess.Popen(
            [*python, "serve"], env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=server_err
        )
        worker = subprocess.Popen(
            [*python, "stream", "run"],
            env=env,
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=worker_err,
        )
        try:
            _wait_up(url, server, work / "server.err")
            load_before = os.getloadavg()[0]
            result = asyncio.run(_load(args, url, lines, api_key))
            load_after = os.getloadavg()[0]
        finally:
            for process in (worker, server):
                process.terminate()
            for process in (worker, server):
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
    return {
        "bench": "freshness",
        "rate": args.rate,
        "seconds": args.seconds,
        "batch": args.batch,
        "poll_ms": args.poll_ms,
        "commit_interval": args.commit_interval,
        **result,
        "load_average": [round(load_before, 2), round(load_after, 2)],
        "cores": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--file", required=True, help="clickstream JSON lines (plain or gzip)")
    parser.add_argument("--rate", type=int, default=5_000, help="events per second")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--batch", type=int, default=20, help="events per /v1/batch request")
    parser.add_argument("--probes-per-s", type=float, default=5.0)
    parser.add_argument("--poll-ms", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--commit-interval",
        type=float,
        help="the worker's stream.commit_interval_seconds (default: the setting's)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="c360-bench-freshness-") as folder:
        print(json.dumps(bench(args, Path(folder))))


if __name__ == "__main__":
    main()
