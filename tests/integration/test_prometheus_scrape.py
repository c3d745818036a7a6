"""A real Prometheus (Debian's ``prometheus``) scrapes ``c360 serve`` and ``c360 stream run
--metrics-port`` every second while the test drives load through the collector and the Profile
API; its HTTP API then shows the stream's lag series and the API's latency histogram, and both
move.

The three servers are separate processes on free loopback ports, on a SQLite store and a local
event log, as an operator would run them."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest

import c360
from c360.access.keys import generate
from c360.stores import open_store
from ports import free_port

pytestmark = pytest.mark.prometheus

WRITE_KEY = "wk_scrape_test"
BY_ID = "/v1/profiles/{person_id}"
LATENCY = f'c360_http_request_duration_seconds_count{{job="api",route="{BY_ID}",method="GET"}}'
EVENTS = 'c360_stream_events_total{job="stream",group="speed"}'
LAG = 'c360_stream_lag_records{job="stream",topic="clickstream"}'
LAG_SECONDS = 'c360_stream_lag_seconds{job="stream",topic="clickstream"}'
BACKLOG = 30  # batches of 100 events posted before the worker starts: it begins behind


class Process:
    """A server started as a process, its stderr kept for the failure message."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.name = name
        self.errors = cwd / f"{name}.err"
        with self.errors.open("wb") as stderr:
            self.popen = subprocess.Popen(
                args, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=stderr
            )

    def check(self) -> None:
        if self.popen.poll() is not None:
            raise AssertionError(f"{self.name} exited: {self.errors.read_text()[-3000:]}")

    def stop(self) -> None:
        self.popen.terminate()
        try:
            self.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


@pytest.fixture
def running(tmp_path: Path) -> Iterator[dict[str, Process]]:
    started: dict[str, Process] = {}
    try:
        yield started
    finally:
        for process in started.values():
            process.stop()


def _publish_person(serving_url: str) -> str:
    """A published batch with one person, and a key that may read it."""
    store = open_store(serving_url)
    try:
        store.migrate()
        store.publish_batch(
            dt.date(2025, 6, 10),
            {
                "person": pa.table({"person_id": ["p_1"], "email": ["ann@x.com"]}),
                "identity_map": pa.table(
                    {"id_type": ["email"], "id_value": ["ann@x.com"], "person_id": ["p_1"]}
                ),
                "batch_profile": pa.table({"person_id": ["p_1"], "total_lifetime_spend": [1.0]}),
            },
        )
        key = generate(["profiles:read"])
        store.add_api_key(key.record)
        return key.key
    finally:
        store.dispose()


def _prometheus_config(path: Path, api_port: int, stream_port: int) -> Path:
    config = path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        f"  - job_name: api\n    static_configs: [{{targets: ['127.0.0.1:{api_port}']}}]\n"
        f"  - job_name: stream\n    static_configs: [{{targets: ['127.0.0.1:{stream_port}']}}]\n"
    )
    return config


def _wait(url: str, process: Process, deadline: float) -> None:
    while True:
        process.check()
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        assert time.monotonic() < deadline, f"{process.name} did not answer {url}"
        time.sleep(0.2)


def _query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=5)
    answer.raise_for_status()
    body = answer.json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def _value(prometheus: str, expr: str) -> float:
    """The one series' value of ``expr`` (0 while Prometheus has none)."""
    result = _query(prometheus, expr)
    assert len(result) <= 1, result
    return float(result[0]["value"][1]) if result else 0.0


def _until(prometheus: str, expr: str, above: float, deadline: float) -> float:
    """Wait until ``expr`` exceeds ``above`` in Prometheus (scraped every second)."""
    while (value := _value(prometheus, expr)) <= above:
        assert time.monotonic() < deadline, f"{expr} stayed at {value} (expected > {above})"
        time.sleep(0.5)
    return value


def _events(start: int, count: int) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC).isoformat()
    return {
        "batch": [
            {"type": "page", "anonymousId": f"a-{i % 50}", "name": "Home", "timestamp": now}
            for i in range(start, start + count)
        ]
    }


def test_prometheus_scrapes_lag_and_latency_that_move(
    tmp_path: Path, running: dict[str, Process]
) -> None:
    deadline = time.monotonic() + 60
    serving_url = f"sqlite:///{tmp_path / 'serving.db'}"
    key = _publish_person(serving_url)
    api_port, stream_port, prometheus_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("C360_", "PROMETHEUS_"))}
    env |= {
        "C360_SERVING_URL": serving_url,
        "C360_LOG_URL": f"local://{tmp_path / 'log'}",
        "C360_LOG_PARTITIONS": "2",
        "C360_LAKE_URL": str(tmp_path / "lake"),
        "C360_API_PORT": str(api_port),
        "C360_COLLECTOR_WRITE_KEYS": WRITE_KEY,
        "PYTHONPATH": str(Path(c360.__file__).parents[1]),  # the c360 under test
    }
    c360_cli = [sys.executable, "-m", "c360"]
    config = _prometheus_config(tmp_path, api_port, stream_port)
    running["prometheus"] = Process(
        "prometheus",
        ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prometheus_port}", "--log.level=warn"],
        env, tmp_path,
    )  # fmt: skip
    running["api"] = Process("api", [*c360_cli, "serve"], env, tmp_path)
    prometheus = f"http://127.0.0.1:{prometheus_port}"
    api = f"http://127.0.0.1:{api_port}"
    _wait(f"{prometheus}/-/ready", running["prometheus"], deadline)
    _wait(f"{api}/healthz", running["api"], deadline)

    basic = {"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()}
    bearer = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=api, timeout=10) as client:

        def load(rounds: int, start: int) -> None:
            for i in range(rounds):
                posted = client.post("/v1/batch", json=_events(start + i * 100, 100), headers=basic)
                assert posted.status_code == 200, posted.text
                assert client.get("/v1/profiles/p_1", headers=bearer).status_code == 200

        load(BACKLOG, 0)  # a backlog: the worker's first lag reading is well above 0
        running["stream"] = Process(
            "stream",
            [*c360_cli, "stream", "run", "--batch-size", "100", "--metrics-port", str(stream_port)],
            env, tmp_path,
        )  # fmt: skip
        _wait(f"http://127.0.0.1:{stream_port}/metrics", running["stream"], deadline)

        first_latency = _until(prometheus, f"sum({LATENCY})", 0, deadline)
        first_events = _until(prometheus, f"sum({EVENTS})", 0, deadline)
        load(10, BACKLOG * 100)
        _until(prometheus, f"sum({LATENCY})", first_latency, deadline)
        _until(prometheus, f"sum({EVENTS})", first_events, deadline)

    # The latency histogram: one series per bucket of the by-id route, counted where they fall.
    buckets = _query(prometheus, f'c360_http_request_duration_seconds_bucket{{route="{BY_ID}"}}')
    assert {series["metric"]["le"] for series in buckets} >= {"0.005", "0.1", "+Inf"}
    # The lag of each clickstream partition: behind at first, caught up in the end.
    lags = _query(prometheus, LAG)
    assert {series["metric"]["partition"] for series in lags} == {"0", "1"}
    assert _value(prometheus, f"max(max_over_time({LAG}[1m]))") > 0
    until_caught_up = deadline
    while _value(prometheus, f"max({LAG})") > 0:
        assert time.monotonic() < until_caught_up, "the stream lag never came back to 0"
        time.sleep(0.5)
    assert {series["metric"]["partition"] for series in _query(prometheus, LAG_SECONDS)} == {
        "0",
        "1",
    }
    for process in running.values():
        process.check()
