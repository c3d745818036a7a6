"""The event archive: log records into the lake by event date, exactly once."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson
import pytest

from c360.config import Settings, load_config
from c360.ingest import archive
from c360.lake import Lake
from c360.logs import open_log

D1, D2 = dt.date(2025, 5, 1), dt.date(2025, 5, 2)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    env = {
        "C360_LAKE_URL": str(tmp_path / "lake"),
        "C360_LOG_URL": f"local://{tmp_path / 'log'}",
        "C360_LOG_PARTITIONS": "3",
    }
    return load_config(environ=env).settings


def page(message_id: str, anonymous_id: str, timestamp: str) -> tuple[str, bytes]:
    message = {
        "type": "page",
        "messageId": message_id,
        "anonymousId": anonymous_id,
        "timestamp": timestamp,
    }
    return anonymous_id, orjson.dumps(message)


def append(settings: Settings, topic: str, records: list[tuple[str, bytes]]) -> None:
    with open_log(settings.log.url, settings.log.partitions) as log:
        log.append(topic, records)


def archived(settings: Settings, day: dt.date) -> list[str]:
    lake = Lake(settings.lake.url)
    table = lake.read_partition("events", "clickstream", day)
    return sorted(orjson.loads(p)["messageId"] for p in table.column("payload").to_pylist())


def test_records_land_by_event_date_once_even_when_rerun(settings: Settings) -> None:
    append(
        settings,
        "clickstream",
        [
            page("m1", "a", "2025-05-01T10:00:00Z"),
            page("m2", "b", "2025-05-01T23:59:59.999Z"),
            page("m3", "c", "2025-05-02T00:00:00Z"),
            (("d", b"{not json")),
        ],
    )
    append(
        settings,
        "support",
        [
            (
                "x@y.com",
                orjson.dumps(
                    {
                        "type": "zen:event-type:ticket.created",
                        "id": "e1",
                        "time": "2025-05-01T08:00:00Z",
                    }
                ),
            )
        ],
    )
    reports = {r.table: r for r in archive.archive(settings, D1)}
    assert (reports["clickstream"].rows, reports["clickstream"].quarantined) == (3, 1)
    assert reports["support"].rows == 1
    assert archived(settings, D1) == ["m1", "m2"]
    assert archived(settings, D2) == ["m3"]
    again = {r.table: r for r in archive.archive(settings, D1)}
    assert again["clickstream"].rows == 0
    assert archived(settings, D1) == ["m1", "m2"]
    lake = Lake(settings.lake.url)
    quarantined = lake.read_partition("events", "clickstream", D1, zone="quarantine").to_pylist()
    assert quarantined[0]["record"] == "{not json"


def test_an_event_time_beyond_the_append_time_plus_the_skew_is_quarantined(
    settings: Settings,
) -> None:
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=60)
    append(
        settings,
        "clickstream",
        [
            page("m1", "a", "2025-05-01T10:00:00Z"),
            page("soon", "a", soon.isoformat()),  # within events.max_clock_skew_seconds
            page("far", "a", "2999-01-01T00:00:00Z"),
        ],
    )
    (report,) = archive.archive(settings, D1, topics=("clickstream",))
    assert (report.rows, report.quarantined) == (2, 1)
    lake = Lake(settings.lake.url)
    assert lake.partitions("events", "clickstream") == [D1, soon.date()]
    (quarantined,) = lake.read_partition("events", "clickstream", D1, zone="quarantine").to_pylist()
    assert "event time 2999-01-01T00:00:00.000Z is after" in quarantined["reason"]
    assert "(events.max_clock_skew_seconds)" in quarantined["reason"]


def test_late_events_join_their_day_and_a_crash_before_the_state_commit_is_harmless(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    append(settings, "clickstream", [page("m1", "a", "2025-05-01T10:00:00Z")])
    archive.archive(settings, D1, topics=("clickstream",))
    append(
        settings,
        "clickstream",
        [page("late", "e", "2025-05-01T22:00:00Z"), page("m4", "a", "2025-05-02T09:00:00Z")],
    )

    def crash(*_: object) -> None:
        raise OSError("injected: killed before the state commit")

    monkeypatch.setattr(archive._State, "commit", crash)
    with pytest.raises(OSError, match="injected"):
        archive.archive(settings, D2, topics=("clickstream",))
    monkeypatch.undo()
    reports = archive.archive(settings, D2, topics=("clickstream",))
    assert reports[0].rows == 0  # the crashed run had already merged both
    assert archived(settings, D1) == ["late", "m1"]
    assert archived(settings, D2) == ["m4"]


def test_backfill_from_a_file_matches_the_archive_and_is_idempotent(
    settings: Settings, tmp_path: Path
) -> None:
    import gzip

    from c360.ingest.backfill import backfill_file

    lines = [
        page("m1", "a", "2025-05-01T10:00:00Z")[1],
        page("m2", "b", "2025-05-02T01:00:00Z")[1],
        b'{"type": "page", "messageId": "m3"}',
        b"not json",
    ]
    path = tmp_path / "history.jsonl.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(b"\n".join(lines) + b"\n")
    lake = Lake(settings.lake.url)
    report = backfill_file(lake, path, "clickstream", D2)
    assert (report.rows, report.partitions, report.quarantined) == (2, 2, 2)
    assert archived(settings, D1) == ["m1"] and archived(settings, D2) == ["m2"]
    row = lake.read_partition("events", "clickstream", D1).to_pylist()[0]
    assert (row["type"], row["anonymous_id"], row["partition"]) == ("page", "a", -1)
    assert backfill_file(lake, path, "clickstream", D2).rows == 0
    reasons = lake.read_partition("events", "clickstream_backfill", D2, zone="quarantine")
    assert sorted(reasons.column("record").to_pylist()) == sorted(
        ['{"type": "page", "messageId": "m3"}', "not json"]
    )


def test_backfill_streams_by_day_and_stays_right_on_an_unordered_file(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tiny batches force every path: settled days, the row cap, a day that comes back."""
    from c360.ingest import backfill

    merges: list[dt.date] = []
    real_merge = backfill.merge

    def counting_merge(lake: Lake, topic: str, day: dt.date, new: object) -> int:
        merges.append(day)
        return real_merge(lake, topic, day, new)  # type: ignore[arg-type]

    monkeypatch.setattr(backfill, "BATCH_ROWS", 2)
    monkeypatch.setattr(backfill, "SETTLE_BATCHES", 1)
    monkeypatch.setattr(backfill, "MAX_BUFFERED_ROWS", 3)
    monkeypatch.setattr(backfill, "merge", counting_merge)
    duplicate = page("d2b", "b", "2025-05-02T11:00:00Z")[1]
    lines = [
        page("d1a", "a", "2025-05-01T10:00:00Z")[1],
        page("d1b", "a", "2025-05-01T10:01:00Z")[1],
        page("d2a", "b", "2025-05-02T10:00:00Z")[1],
        duplicate,
        duplicate,
        b"{broken",
        page("d2c", "b", "2025-05-02T12:00:00Z")[1],
        page("d1late", "c", "2025-05-01T23:00:00Z")[1],
    ]
    path = tmp_path / "unordered.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    lake = Lake(settings.lake.url)
    report = backfill.backfill_file(lake, path, "clickstream", D2)
    assert (report.rows, report.partitions, report.quarantined) == (6, 2, 1)
    assert merges.count(D1) == 2, "day 1 is merged when settled, then again for its late line"
    assert archived(settings, D1) == ["d1a", "d1b", "d1late"]
    assert archived(settings, D2) == ["d2a", "d2b", "d2c"]
    assert backfill.backfill_file(lake, path, "clickstream", D2).rows == 0
