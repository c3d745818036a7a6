"""`c360 status`: each layer's verdict from the real store, lake and event log."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

import c360
from c360.config import load_config
from c360.contracts.log import TopicPartition
from c360.logs.local import LocalLog
from c360.pipeline.batch_lock import batch_lock
from c360.pipeline.status import LAG_AMBER, status
from c360.stores import DeadLetter, MicroBatch, StepRecord, open_store


def _c360(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("C360_")}
    env |= {
        "C360_SERVING_URL": f"sqlite:///{tmp_path / 'serving.db'}",
        "C360_LAKE_URL": str(tmp_path / "lake"),
        "C360_LOG_URL": f"local://{tmp_path / 'log'}",
        "C360_LOG_PARTITIONS": "2",
        "PYTHONPATH": str(Path(c360.__file__).parents[1]),
    }
    return subprocess.run([sys.executable, "-m", "c360", *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


@pytest.fixture
def world(tmp_path: Path) -> Path:
    settings = load_config(environ={"C360_SERVING_URL": f"sqlite:///{tmp_path / 'serving.db'}",
                                    "C360_LAKE_URL": str(tmp_path / "lake")}).settings  # fmt: skip
    store = open_store(settings.serving.url)
    store.migrate()
    store.publish_batch(
        dt.date(2025, 6, 2),
        {"person": pa.table({"person_id": ["p_1"]}),
         "identity_map": pa.table({"id_type": ["email"], "id_value": ["a@x.com"],
                                   "person_id": ["p_1"]}),
         "batch_profile": pa.table({"person_id": ["p_1"], "total_lifetime_spend": [1.0]})},
    )  # fmt: skip
    at = dt.datetime(2025, 6, 3, 3)
    store.record_step(StepRecord("2025-06-02", "publish", "succeeded", at, at, 1.0, 1, None))
    with LocalLog(tmp_path / "log", 2) as log:
        log.append("clickstream", [(f"k{i}", b"{}") for i in range(30)])
    store.dispose()
    return tmp_path


def test_each_layer_has_its_verdict(world: Path) -> None:
    settings = load_config(environ={"C360_SERVING_URL": f"sqlite:///{world / 'serving.db'}",
                                    "C360_LAKE_URL": str(world / "lake"),
                                    "C360_LOG_URL": f"local://{world / 'log'}",
                                    "C360_LOG_PARTITIONS": "2"}).settings  # fmt: skip
    store = open_store(settings.serving.url)
    try:
        published = store.latest_publish()
        assert published is not None
        layers = status(settings, store)  # published a moment ago
        assert layers["batch"].verdict == "green"
        assert layers["batch"].facts["latest_run"]["steps"] == {"publish": "succeeded"}
        lags = layers["speed"].facts["lag_records"]
        assert sum(v for k, v in lags.items() if k.startswith("clickstream/")) == 30
        assert layers["speed"].verdict == "green"
        assert layers["sources"].verdict == "amber"  # no source in the lake yet
        assert "batch_lock" not in layers["batch"].facts
        with batch_lock(store, dt.timedelta(minutes=5), owner="host-1:42:batch"):
            lock = status(settings, store)["batch"].facts["batch_lock"]
            assert lock["owner"] == "host-1:42:batch" and lock["expired"] is False
        assert "batch_lock" not in status(settings, store)["batch"].facts  # released

        stale = status(settings, store, now=published["published_at"] + dt.timedelta(hours=30))
        assert stale["batch"].verdict == "amber"
        store.commit_micro_batch("speed", store.prepare_micro_batch(MicroBatch(
            moves={TopicPartition("clickstream", 0): (0, 0)},
            dead_letters=[DeadLetter("clickstream", 0, 3, b"x", "not JSON", "not_json"),
                          DeadLetter("clickstream", 0, 4, b"{}", "missing field 'type'",
                                     "unknown_type"),
                          DeadLetter("support", 0, 5, b"[]", "not an object", "not_object"),
                          DeadLetter("support", 0, 6, b"y", "not JSON", "not_json")])))  # fmt: skip
        speed = status(settings, store)["speed"]
        assert speed.verdict == "amber"
        assert speed.facts["dead_letters_last_hour"] == {"clickstream": 2, "support": 2}
        assert speed.facts["dead_letters_by_reason"] == {
            "not_json": 2, "unknown_type": 1, "not_object": 1}  # fmt: skip
        assert "4 dead letters in the last hour (not_json 2, " in "; ".join(speed.reasons)
        fail(store)
        assert status(settings, store)["batch"].verdict == "red"
    finally:
        store.dispose()
    assert LAG_AMBER > 30


def fail(store: object) -> None:
    at = dt.datetime(2025, 6, 3, 4)
    store.record_step(  # type: ignore[attr-defined]
        StepRecord("2025-06-02", "quality", "failed", at, at, 1.0, None, "too many nulls")
    )


def test_the_command_prints_json_and_exits_1_when_red(world: Path) -> None:
    assert _c360("status", tmp_path=world).returncode == 0
    store = open_store(f"sqlite:///{world / 'serving.db'}")
    fail(store)
    store.dispose()
    done = _c360("status", "--json", tmp_path=world)
    assert done.returncode == 1, done.stderr
    layers = json.loads(done.stdout)
    assert layers["batch"]["verdict"] == "red"
    assert set(layers) == {"batch", "sources", "speed"}
    text = _c360("status", tmp_path=world)
    assert text.stdout.startswith("batch    RED")
