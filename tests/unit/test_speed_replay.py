"""Publishing a JSON-lines file into the event log: every line kept, keyed, optionally paced."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from c360.errors import DataError
from c360.logs import partition_for
from c360.logs.local import LocalLog
from c360.pipeline.stream_publish import publish_file

LINES = [
    orjson.dumps({"type": "page", "anonymousId": "a1", "messageId": "1"}),
    orjson.dumps({"type": "page", "userId": "u9", "messageId": "2"}),
    b"not json at all",
    b"   ",
    orjson.dumps({"type": "page", "anonymousId": "a1", "userId": "u9", "messageId": "3"}),
    b"",
    b'{"type": "page", "anonymousId": "a2", "messageId": "4"}\r',
]


def _all(log: LocalLog) -> list[tuple[str, bytes]]:
    records = [r for p in range(2) for r in log.read("clickstream", p, 0, 100)]
    return [(r.key, r.value) for r in sorted(records, key=lambda r: r.value)]


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_every_non_blank_line_is_appended_with_its_key(tmp_path: Path, compressed: bool) -> None:
    data = b"\n".join(LINES) + b"\n"
    path = tmp_path / ("events.jsonl.gz" if compressed else "events.jsonl")
    path.write_bytes(gzip.compress(data) if compressed else data)
    with LocalLog(tmp_path / "log", 2) as log:
        stats = publish_file(log, path, batch_size=2)
        assert (stats.records, stats.not_json, stats.blank, stats.appends) == (5, 1, 2, 3)
        assert _all(log) == sorted(
            [
                ("a1", LINES[0]),
                ("u9", LINES[1]),
                ("", b"not json at all"),
                ("a1", LINES[4]),
                ("a2", LINES[6].rstrip(b"\r")),
            ],
            key=lambda kv: kv[1],
        )
        a1 = log.read("clickstream", partition_for("a1", 2), 0, 100)
        assert [orjson.loads(r.value)["messageId"] for r in a1 if r.key == "a1"] == ["1", "3"]


def test_a_truncated_gzip_file_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n".join(LINES) * 50)[:-20])
    with LocalLog(tmp_path / "log", 2) as log, pytest.raises(DataError, match="not a complete"):
        publish_file(log, path)


def test_rate_paces_the_appends(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps({"anonymousId": f"a{i}"}) for i in range(45)))
    now = [100.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    with LocalLog(tmp_path / "log", 2) as log:
        stats = publish_file(log, path, rate=20, clock=lambda: now[0], sleep=sleep)
    # 20 events/s: appends of 2 records; record n is due at n / 20 s.
    assert (stats.records, stats.appends) == (45, 23)
    assert sum(sleeps) == pytest.approx(44 / 20)
    assert stats.seconds == pytest.approx(44 / 20)


def test_rate_must_be_positive(tmp_path: Path) -> None:
    with LocalLog(tmp_path / "log", 2) as log, pytest.raises(ValueError):
        publish_file(log, tmp_path / "missing.jsonl", rate=0)
