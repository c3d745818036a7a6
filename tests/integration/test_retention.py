"""Retention on real files: raw event partitions older than ``retention.raw_event_days`` leave
the lake (and nothing the batch still reads, nor any other table), through the daily batch's
step and ``c360 retention``; the event log gives up only records the archive has copied; the
configuration refuses a period shorter than what the batch reads, naming the key."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest
from click.testing import CliRunner

from c360.cli.main import cli
from c360.config import load_config, raw_events_needed_days
from c360.contracts.log import TopicPartition
from c360.errors import ConfigError, TerminalError
from c360.lake import Lake
from c360.logs import open_configured
from c360.logs.kafka import KafkaLog
from c360.logs.local import LocalLog
from c360.pipeline import retention
from c360.pipeline.steps import STEPS
from c360.pipeline.stream_worker import run as run_worker
from c360.stores import open_store
from kafka_mock import MockCluster, mock_cluster
from plugins.services import service_fixture

DAY = dt.date(2026, 12, 5)
KEEP = 330  # the default configuration's minimum
EVENT_TABLES = [("events", "clickstream"), ("events", "support"), ("zendesk", "events")]


def _environ(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "C360_LAKE_URL": str(tmp_path / "lake"),
        "C360_SERVING_URL": f"sqlite:///{tmp_path / 'serving.db'}",
        "C360_LOG_URL": f"local://{tmp_path / 'log'}",
        **extra,
    }


def _table(day: dt.date) -> pa.Table:
    return pa.table({"event_date": [day.isoformat()], "payload": ['{"email": "a@b.example"}']})


def fill(lake: Lake) -> list[dt.date]:
    """Raw events on dates around the period's edge, and other tables on the same dates."""
    edge = DAY - dt.timedelta(days=KEEP - 1)  # the oldest date kept
    days = [edge - dt.timedelta(days=400), edge - dt.timedelta(days=1), edge, DAY]
    for day in days:
        for source, table in EVENT_TABLES:
            lake.write_partition(source, table, day, _table(day))
        lake.write_quarantine("events", "clickstream", day, _table(day))
        lake.write_partition("shop", "orders", day, _table(day))  # not raw events
        lake.write_partition("profile", "batch_profile", day, _table(day), zone="features")
    return days


def test_the_configuration_refuses_a_period_the_batch_still_reads(tmp_path: Path) -> None:
    settings = load_config(environ=_environ(tmp_path)).settings
    assert raw_events_needed_days(settings) == KEEP  # 5 x 30 + 90 horizon + 90 window
    with pytest.raises(ConfigError) as refused:
        load_config(environ=_environ(tmp_path, C360_RETENTION_RAW_EVENT_DAYS="90"))
    assert refused.value.key == "retention.raw_event_days"
    assert "at least 330" in str(refused.value) and "C360_RETENTION_RAW_EVENT_DAYS" in str(
        refused.value
    )
    shorter_training = {"C360_CHURN_SNAPSHOTS": "2", "C360_RETENTION_RAW_EVENT_DAYS": "210"}
    assert load_config(environ=_environ(tmp_path, **shorter_training)).settings.retention
    with pytest.raises(ConfigError, match=r"retention\.log_days"):
        load_config(environ=_environ(tmp_path, C360_RETENTION_LOG_DAYS="0"))


def _removed(lake: Lake) -> dict[tuple[str, str, str], list[dt.date]]:
    tables = [*(("raw", s, t) for s, t in EVENT_TABLES), ("quarantine", "events", "clickstream")]
    tables += [("raw", "shop", "orders"), ("features", "profile", "batch_profile")]
    return {(z, s, t): lake.partitions(s, t, z) for z, s, t in tables}


def test_the_step_removes_whole_partitions_older_than_the_period_and_nothing_else(
    tmp_path: Path,
) -> None:
    assert list(STEPS)[-1] == "retention"  # after every step that reads the lake
    environ = _environ(tmp_path, C360_RETENTION_RAW_EVENT_DAYS=str(KEEP))
    settings = load_config(environ=environ).settings
    lake = Lake(settings.lake.url)
    old, older, edge, today = fill(lake)

    planned = retention.enforce(settings, lake, DAY, dry_run=True)
    assert {p.day for p in planned.partitions} == {old, older}
    assert all(len(days) == 4 for days in _removed(lake).values())  # a dry run removes nothing

    outcome = STEPS["retention"](settings, lake, DAY)
    assert outcome.status == "succeeded" and outcome.rows == 8  # 2 dates x (3 raw + quarantine)
    assert "8 raw event partitions before" in (outcome.detail or "")
    after = _removed(lake)
    for (zone, source, _), days in after.items():
        kept = [edge, today] if zone in ("raw", "quarantine") and source != "shop" else None
        assert days == (kept or [old, older, edge, today])
    assert not any((tmp_path / "lake" / "raw" / "events" / "clickstream").glob(f"dt={old}*"))
    again = STEPS["retention"](settings, lake, DAY)
    assert again.rows == 0  # idempotent


def test_c360_retention_runs_the_step_alone_and_records_it(tmp_path: Path) -> None:
    environ = _environ(tmp_path, C360_RETENTION_RAW_EVENT_DAYS=str(KEEP))
    lake = Lake(str(tmp_path / "lake"))
    fill(lake)
    runner = CliRunner()
    args = ["retention", "--date", DAY.isoformat(), "--json"]
    dry = runner.invoke(cli, [*args, "--dry-run"], env=environ)
    assert dry.exit_code == 0, dry.output
    assert len(json.loads(dry.stdout)["partitions_removed"]) == 8
    done = runner.invoke(cli, args, env=environ)
    assert done.exit_code == 0, done.output
    report: dict[str, Any] = json.loads(done.stdout)
    assert report["keep_from"] == (DAY - dt.timedelta(days=KEEP - 1)).isoformat()
    assert "raw/events/clickstream/dt=" in report["partitions_removed"][0]
    store = open_store(environ["C360_SERVING_URL"])
    try:
        step = store.step_records(DAY)["retention"]
    finally:
        store.dispose()
    assert step.status == "succeeded" and step.rows == 8


def _click(n: int) -> bytes:
    """A valid Segment page view, ~1 KB (so a 1 MiB segment holds ~1,000)."""
    return orjson.dumps(
        {
            "type": "page",
            "messageId": f"m{n}",
            "anonymousId": f"a{n % 7}",
            "timestamp": "2026-12-01T10:00:00Z",
            "properties": {"path": "/p/" + "x" * 900},
        }
    )


def test_the_local_log_deletes_whole_archived_segments_and_a_worker_behind_resumes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The step on the local log (1 MiB segments, the smallest setting): whole segments below
    the archive's offset go, the active one stays; a stream worker whose stored offset was in a
    deleted segment resumes at the log start, logged and counted, and commits from there."""
    environ = _environ(
        tmp_path,
        C360_RETENTION_LOG_DAYS="1",
        C360_LOG_PARTITIONS="1",
        C360_LOG_SEGMENT_BYTES="1048576",
    )
    settings = load_config(environ=environ).settings
    lake = Lake(settings.lake.url)
    with open_configured(settings.log) as log:
        for start in range(0, 3_000, 100):
            log.append("clickstream", [("k", _click(n)) for n in range(start, start + 100)])
        assert isinstance(log, LocalLog)
        segments = log.segment_paths("clickstream", 0)
        bases = [int(path.stem) for path in segments]
    assert len(segments) >= 3 and bases[0] == 0
    store = open_store(settings.serving.url)
    store.migrate()
    try:
        with open_configured(settings.log) as log:  # a worker that read the first 50 records
            run_worker(log, store, stop_when_caught_up=True, batch_size=50, should_stop=_once())
        assert store.offsets("speed", "clickstream") == {0: 50}
        later = dt.date.today() + dt.timedelta(days=3)  # every record is older than a day

        lake.write_state("archive/clickstream.json", {"runs": {"d": {"0": bases[2] + 5}}})
        removed, detail = retention.trim_log(settings, lake, later)
        assert detail == f"{removed} event log records older than 1 days removed"
        assert removed == bases[2]  # the segments wholly below the archive's offset
        assert [p.name for p in sorted(segments[0].parent.glob("*.log"))] == [
            p.name for p in segments[2:]
        ]
        lake.write_state("archive/clickstream.json", {"runs": {"d": {"0": 3_000}}})
        assert retention.trim_log(settings, lake, later)[0] == bases[-1] - bases[2]
        assert [p.name for p in segments[0].parent.glob("*.log")] == [segments[-1].name]

        with open_configured(settings.log) as log:
            assert isinstance(log, LocalLog)
            with caplog.at_level(logging.WARNING, "c360.logs.local"):
                stats = run_worker(log, store, stop_when_caught_up=True)
            assert log.offset_resets == {TopicPartition("clickstream", 0): 1}
        assert stats.records == 3_000 - bases[-1]
        assert store.offsets("speed", "clickstream") == {0: 3_000}
        assert f"offset 50 is before the log start {bases[-1]}" in caplog.text
    finally:
        store.dispose()


def _once() -> Callable[[], bool]:
    """``should_stop`` that lets exactly one micro-batch be submitted."""
    calls = iter([False])
    return lambda: next(calls, True)


class _TrimmedLocalLog(LocalLog):
    """The local log with the retention capability's bookkeeping (the record files stay): what
    the step asks a truncatable log (Kafka) to drop, per partition."""

    def __init__(self, root: Path, starts: dict[tuple[str, int], int]) -> None:
        super().__init__(root, 1)
        self.starts = starts

    def offset_at(self, topic: str, partition: int, timestamp_ms: int) -> int:
        batch = self.read_batch(topic, partition, 0, 1_000_000)
        later = [
            o for o, t in zip(batch.offsets, batch.timestamps_ms, strict=True) if t >= timestamp_ms
        ]
        return later[0] if later else self.end_offset(topic, partition)

    def drop_before(self, topic: str, partition: int, offset: int) -> int:
        start = self.starts.get((topic, partition), 0)
        self.starts[topic, partition] = max(start, offset)
        return max(0, offset - start)


def test_the_log_gives_up_only_records_the_archive_has_copied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    environ = _environ(tmp_path, C360_RETENTION_LOG_DAYS="1", C360_LOG_PARTITIONS="1")
    settings = load_config(environ=environ).settings
    lake = Lake(settings.lake.url)
    starts: dict[tuple[str, int], int] = {}
    with LocalLog(tmp_path / "log", 1) as log:
        log.append("clickstream", [("k", b"v")] * 10)
        log.append("support", [("k", b"v")] * 4)
    monkeypatch.setattr(
        retention, "open_configured", lambda _: _TrimmedLocalLog(tmp_path / "log", starts)
    )
    later = dt.date.today() + dt.timedelta(days=3)  # every record is older than a day by then

    assert retention.trim_log(settings, lake, later)[0] == 0  # nothing archived: nothing goes
    lake.write_state(
        "archive/clickstream.json",
        {"next": {"0": 10}, "runs": {"2026-12-04": {"0": 3}, "2026-12-05": {"0": 6}}},
    )
    removed, detail = retention.trim_log(settings, lake, later)
    assert removed == 6 and starts == {("clickstream", 0): 6, ("support", 0): 0}
    assert detail == "6 event log records older than 1 days removed"
    # records younger than the period stay, archived or not
    starts.clear()
    assert retention.trim_log(settings, lake, dt.date.today())[0] == 0
    assert starts == {("clickstream", 0): 0, ("support", 0): 0}


@service_fixture("kafka", scope="module")
def kafka_cluster() -> Iterator[MockCluster]:
    yield from mock_cluster()


@pytest.mark.kafka
@pytest.mark.xfail(
    strict=True,
    raises=TerminalError,
    reason="librdkafka's mock cluster does not support DeleteRecords (nor offsets by time): "
    "Kafka's trim is tested up to the request, which the mock refuses as unsupported",
)
def test_kafka_trims_through_delete_records(kafka_cluster: MockCluster, tmp_path: Path) -> None:
    kafka_cluster.create_topic("clickstream", 1)
    kafka_cluster.create_topic("support", 1)
    environ = _environ(tmp_path, C360_RETENTION_LOG_DAYS="1", C360_LOG_PARTITIONS="1")
    environ["C360_LOG_URL"] = kafka_cluster.url
    settings = load_config(environ=environ).settings
    lake = Lake(settings.lake.url)
    with KafkaLog.from_url(kafka_cluster.url, 1) as log:
        log.append("clickstream", [("k", b"v")] * 10)
    lake.write_state("archive/clickstream.json", {"next": {"0": 10}, "runs": {"d": {"0": 6}}})
    later = dt.date.today() + dt.timedelta(days=3)
    assert retention.trim_log(settings, lake, later)[0] == 6  # on a broker that supports it
