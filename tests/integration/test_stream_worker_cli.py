"""`c360 stream publish` and `c360 stream run --once`, configured through C360_* variables."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from c360.cli.main import cli
from c360.cli.stream import stop_on_signals
from c360.errors import TransientError
from c360.stores import open_store

LINES = [
    orjson.dumps(
        {"type": "page", "messageId": "1", "timestamp": "2025-03-01T10:00:00Z", "anonymousId": "a"}
    ),
    b"not json",
    orjson.dumps(
        {"type": "page", "messageId": "2", "timestamp": "2025-03-01T10:01:00Z", "anonymousId": "a"}
    ),
]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str | None]:
    monkeypatch.chdir(tmp_path)  # no stray ./c360.toml
    return {
        "C360_CONFIG": None,
        "C360_LOG_URL": f"local://{tmp_path}/log",
        "C360_LOG_PARTITIONS": "3",
        "C360_SERVING_URL": f"sqlite:///{tmp_path}/serving.db",
    }


def test_publish_then_run_once(tmp_path: Path, env: dict[str, str | None]) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(LINES))
    runner = CliRunner()

    published = runner.invoke(cli, ["stream", "publish", str(events), "--json"], env=env)
    assert published.exit_code == 0, published.output
    assert json.loads(published.stdout) | {"seconds": 0} == {
        "topic": "clickstream",
        "records": 3,
        "not_json": 1,
        "blank": 0,
        "appends": 1,
        "seconds": 0,
    }

    ran = runner.invoke(cli, ["stream", "run", "--once", "--json"], env=env)
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.stdout) == {
        "group": "speed",
        "topics": ["clickstream", "support"],
        "records": 3,
        "events": 2,
        "duplicates": 0,
        "dead_lettered": 1,
        "orders": 0,
        "suppressed": 0,
        "batches": 1,
        "conflicts": 0,
        "recomputed": 0,
        "retries": 0,
    }

    again = runner.invoke(cli, ["stream", "run", "--once"], env=env)
    assert again.exit_code == 0, again.output
    assert again.output.startswith("0 records: 0 events applied")

    store = open_store(f"sqlite:///{tmp_path}/serving.db")
    try:
        rows = store.query("SELECT id_value, current_session_page_views FROM realtime_state")
    finally:
        store.dispose()
    assert rows == [{"id_value": "a", "current_session_page_views": 2}]


@pytest.mark.kafka
def test_an_unreachable_kafka_is_a_transient_error(env: dict[str, str | None]) -> None:
    unreachable = "kafka://127.0.0.1:9?timeout_ms=1000"
    result = CliRunner().invoke(
        cli, ["stream", "run", "--once"], env={**env, "C360_LOG_URL": unreachable}
    )
    assert isinstance(result.exception, TransientError)
    assert "got no assignment" in str(result.exception)


def test_ctrl_c_asks_the_worker_to_stop_after_its_batch() -> None:
    before = signal.getsignal(signal.SIGINT)
    with stop_on_signals() as stop:
        assert not stop.is_set()
        signal.raise_signal(signal.SIGINT)
        assert stop.is_set()
    assert signal.getsignal(signal.SIGINT) is before
