"""Erasure in the local event log: matching records redacted in place of their offsets, the
file replaced atomically, and another writer (another process's handle) appending to the new
file afterwards, not to the replaced one."""

from __future__ import annotations

from pathlib import Path

from c360.logs import is_tombstone
from c360.logs.local import LocalLog, segment_path


def _values(log: LocalLog, topic: str = "t") -> list[tuple[str, bytes]]:
    batch = log.read_batch(topic, 0, 0, 1000)
    return [(k.decode(), v) for k, v in zip(batch.keys, batch.values, strict=True)]


def test_erased_records_keep_their_offsets_and_a_writer_follows_the_new_file(
    tmp_path: Path,
) -> None:
    writer, eraser = LocalLog(tmp_path, 1), LocalLog(tmp_path, 1)
    writer.append(
        "t", [("ann", b'{"email":"ann@x.com"}'), ("bo", b"{}"), ("cy", b'{"n":"ANN@x.com"}')]
    )
    before = segment_path(tmp_path, "t", 0).stat().st_ino

    erased = eraser.erase("t", lambda key, value: key == b"ann" or b"ann@x.com" in value.lower())

    assert (erased.records, erased.files, erased.tombstones, erased.pending) == (2, 1, 0, False)
    assert segment_path(tmp_path, "t", 0).stat().st_ino != before  # replaced, not edited in place
    assert not list((tmp_path / "t" / "0").glob(".*erasing"))
    assert _values(eraser) == [("", b""), ("bo", b"{}"), ("", b"")]
    writer.append("t", [("dee", b"{}")])  # the writer's old handle names the replaced file
    assert writer.end_offset("t", 0) == eraser.end_offset("t", 0) == 4
    assert _values(eraser)[3] == ("dee", b"{}")
    assert [is_tombstone(v) for _, v in _values(writer)] == [True, False, True, False]
    assert b"ann" not in segment_path(tmp_path, "t", 0).read_bytes().lower()
    again = eraser.erase("t", lambda key, value: key == b"ann")
    assert (again.records, again.files) == (0, 0)  # nothing left: the file is not rewritten
    reopened = LocalLog(tmp_path, 1)  # the rewritten file passes the open-time scan
    assert reopened.end_offset("t", 0) == 4
    for log in (writer, eraser, reopened):
        log.close()


def test_a_topic_never_written_has_nothing_to_erase(tmp_path: Path) -> None:
    with LocalLog(tmp_path, 2) as log:
        assert log.erase("clickstream", lambda key, value: True).records == 0
        assert not (tmp_path / "clickstream").exists()
