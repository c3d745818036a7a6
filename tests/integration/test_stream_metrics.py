"""The stream worker's Prometheus metrics: counts of what it consumed and dead-lettered, batch
durations, and its lag per partition, which moves while it works and is 0 once caught up —
in-process, and scraped from ``c360 stream run --metrics-port``."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client import REGISTRY

import c360
import c360.pipeline.stream_metrics as stream_metrics
from c360.logs.local import LocalLog
from c360.pipeline.stream_metrics import StreamMetrics
from c360.pipeline.stream_worker import BatchResult
from c360.pipeline.stream_worker import run as run_worker
from c360.stores import open_store
from ports import free_port


def _page(i: int) -> tuple[str, bytes]:
    message = {"type": "page", "messageId": f"m{i}", "anonymousId": f"a{i % 7}",
               "timestamp": "2025-03-01T10:00:00Z", "name": "Home"}  # fmt: skip
    return f"a{i % 7}", orjson.dumps(message)


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_counts_durations_and_a_lag_that_moves_then_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream_metrics, "LAG_EVERY_S", 0.0)  # measure after every commit
    group = "metrics-test"
    store = open_store(f"sqlite:///{tmp_path / 'serving.db'}")
    store.migrate()
    lags: list[float] = []

    def after_commit(_: BatchResult) -> None:
        lags.append(value("c360_stream_lag_records", group=group, topic="clickstream",
                          partition="0"))  # fmt: skip

    with LocalLog(tmp_path / "log", 1) as log:
        log.append("clickstream", [_page(i) for i in range(100)] + [("k", b"not json")] * 3)
        run_worker(log, store, group, ("clickstream",), stop_when_caught_up=True, batch_size=20,
                   metrics=StreamMetrics(group), on_commit=after_commit)  # fmt: skip
    store.dispose()

    assert value("c360_stream_records_total", group=group) == 103
    assert value("c360_stream_events_total", group=group) == 100
    dead = {"group": group, "topic": "clickstream", "reason": "not_json"}
    assert value("c360_stream_dead_letters_total", **dead) == 3
    assert value("c360_stream_batches_total", group=group) == 6
    assert value("c360_stream_batch_duration_seconds_count", group=group) == 6
    assert value("c360_stream_state_rows_total", group=group) >= 7
    assert lags[0] == 83  # 103 records, 20 committed
    assert lags == sorted(lags, reverse=True) and lags[-1] == 0
    seconds = value("c360_stream_lag_seconds", group=group, topic="clickstream", partition="0")
    assert seconds == 0.0  # caught up


def test_stream_run_serves_its_metrics(tmp_path: Path) -> None:
    with LocalLog(tmp_path / "log", 2) as log:
        log.append("clickstream", [_page(i) for i in range(50)])
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("C360_")}
    env |= {"C360_SERVING_URL": f"sqlite:///{tmp_path / 'serving.db'}",
            "C360_LOG_URL": f"local://{tmp_path / 'log'}", "C360_LOG_PARTITIONS": "2",
            "C360_LAKE_URL": str(tmp_path / "lake"),
            "PYTHONPATH": str(Path(c360.__file__).parents[1])}  # fmt: skip
    errors = tmp_path / "stream.err"
    with errors.open("wb") as stderr:
        worker = subprocess.Popen(
            [sys.executable, "-m", "c360", "stream", "run", "--metrics-port", str(port)],
            env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
    try:
        deadline, text = time.monotonic() + 60, ""
        while 'c360_stream_events_total{group="speed"} 50.0' not in text:
            assert worker.poll() is None, errors.read_text()
            assert time.monotonic() < deadline, text or errors.read_text()
            with contextlib.suppress(httpx.HTTPError):  # not listening yet
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            time.sleep(0.2)
        assert (
            'c360_stream_lag_records{group="speed",partition="0",topic="clickstream"} 0.0' in text
        )
    finally:
        worker.terminate()
        worker.wait(timeout=30)
