"""The local log's segments, on real files: rolls by size and by age, offsets across segments,
retention deleting whole segments, a consumer behind the log start, erasure across segments,
crashes mid-roll and mid-deletion (a killed writer, files left as a crash leaves them), and
logs written by earlier versions (one file per partition)."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from c360.contracts.log import TopicPartition
from c360.errors import DataError
from c360.logs.local import LocalLog, encode_record, segment_name, segment_path

RECORD = b"x" * 100  # with key "k": 125 bytes on disk
ON_DISK = len(encode_record("k", RECORD, 0))
SMALL = 4 * (ON_DISK + 3) + 10  # a segment size with room for 4 of _fill's records


def _segments(root: Path, topic: str = "t", partition: int = 0) -> list[str]:
    return sorted(p.name for p in (root / topic / str(partition)).glob("*.log"))


def _fill(log: LocalLog, batches: int, per_batch: int = 2, topic: str = "t") -> list[bytes]:
    values = []
    for b in range(batches):
        batch = [b"%d-%d" % (b, i) + RECORD for i in range(per_batch)]
        log.append(topic, [("k", v) for v in batch])
        values += batch
    return values


def test_segments_roll_at_the_size_and_offsets_run_on_across_them(tmp_path: Path) -> None:
    # Room for 4 records a segment: batches of 2 fill one, the third batch rolls.
    with LocalLog(tmp_path, 1, segment_bytes=SMALL) as log:
        values = _fill(log, 7)
        assert _segments(tmp_path) == [segment_name(b) for b in (0, 4, 8, 12)]
        assert (tmp_path / "t" / "0" / "00000000000000000004.log").is_file()  # Kafka's names
        assert log.end_offset("t", 0) == 14 and log.start_offset("t", 0) == 0
        for offset in range(15):  # every start, across segment boundaries
            batch = log.read_batch("t", 0, offset, 6)
            assert list(batch.offsets) == list(range(offset, min(14, offset + 6)))
            assert list(batch.values) == values[offset : offset + 6]
    with LocalLog(tmp_path, 1, segment_bytes=SMALL) as reopened:
        assert reopened.read_batch("t", 0, 0, 100).values == values
        reopened.append("t", [("k", b"more")])
        assert reopened.end_offset("t", 0) == 15
        assert _segments(tmp_path)[-1] == segment_name(12)  # the active one had room


def test_a_batch_is_never_split_and_an_empty_segment_never_rolls(tmp_path: Path) -> None:
    with LocalLog(tmp_path, 1, segment_bytes=2 * ON_DISK) as log:
        log.append("t", [("k", RECORD)] * 5)  # larger than a segment: one segment holds it
        log.append("t", [("k", RECORD)])
        assert _segments(tmp_path) == [segment_name(0), segment_name(5)]
        assert len(log.read_batch("t", 0, 0, 100)) == 6


def test_segments_roll_at_their_age(tmp_path: Path) -> None:
    with LocalLog(tmp_path, 1, segment_ms=30) as log:
        log.append("t", [("k", b"a")])
        log.append("t", [("k", b"b")])  # within 30 ms of the first record: same segment
        time.sleep(0.05)
        log.append("t", [("k", b"c")])
        assert _segments(tmp_path) == [segment_name(0), segment_name(2)]
    with LocalLog(tmp_path, 1, segment_ms=0) as by_size_only:
        time.sleep(0.05)
        by_size_only.append("t", [("k", b"d")])
        assert _segments(tmp_path) == [segment_name(0), segment_name(2)]
        assert [r.value for r in by_size_only.read("t", 0, 0, 10)] == [b"a", b"b", b"c", b"d"]


def test_another_handle_follows_rolls_and_deletions(tmp_path: Path) -> None:
    small = SMALL
    with LocalLog(tmp_path, 1, segment_bytes=small) as writer:
        writer.append("t", [("k", RECORD)])
        with LocalLog(tmp_path, 1, segment_bytes=small) as reader:
            assert reader.end_offset("t", 0) == 1
            values = [RECORD, *_fill(writer, 5)]  # rolled twice since the reader looked
            assert reader.end_offset("t", 0) == 11
            assert list(reader.read_batch("t", 0, 0, 100).values) == values
            # segments 0-2 (the first record came alone), 3-6, 7-10
            kept = segment_path(tmp_path, "t", 0, 7)
            assert writer.drop_before("t", 0, 8) == 7
            assert reader.start_offset("t", 0) == 7
            assert list(reader.read_batch("t", 0, 7, 100).values) == values[7:]
            assert _segments(tmp_path) == [kept.name]
            # the reader closed the deleted segments' files: nothing of ours holds them
            held = {os.path.realpath(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")}
            assert not any(path.endswith(segment_name(0)) for path in held)


def test_retention_deletes_whole_segments_only_never_the_active_one(tmp_path: Path) -> None:
    with LocalLog(tmp_path, 1, segment_bytes=SMALL) as log:
        _fill(log, 7)  # segments at 0, 4, 8, 12 (active: 12-13)
        assert log.drop_before("t", 0, 7) == 4  # 4-7 reaches past 7: it stays whole
        assert _segments(tmp_path) == [segment_name(b) for b in (4, 8, 12)]
        assert log.drop_before("t", 0, 7) == 0  # idempotent
        assert log.drop_before("t", 0, 1_000) == 8  # everything but the active segment
        assert _segments(tmp_path) == [segment_name(12)]
        assert log.start_offset("t", 0) == 12 and log.end_offset("t", 0) == 14
        log.append("t", [("k", b"next")])
        assert log.read("t", 0, 14, 1)[0].value == b"next"  # offsets go on


def test_the_newest_segment_holding_records_stays_behind_an_empty_active_one(
    tmp_path: Path,
) -> None:
    """A crash mid-roll leaves the new segment empty: it is the active one, and the records
    before it still bound the log (the start never passes the last record)."""
    with LocalLog(tmp_path, 1, segment_bytes=SMALL) as log:
        _fill(log, 4)  # segments 0 and 4, 8 records
    segment_path(tmp_path, "t", 0, 8).touch()  # the roll created its file, then the crash
    with LocalLog(tmp_path, 1, segment_bytes=SMALL) as log:
        assert log.end_offset("t", 0) == 8
        assert log.drop_before("t", 0, 1_000) == 4
        assert _segments(tmp_path) == [segment_name(4), segment_name(8)]
        log.append("t", [("k", b"after")])  # fills the empty segment: no second roll
        assert _segments(tmp_path) == [segment_name(4), segment_name(8)]
        assert log.read("t", 0, 8, 1)[0].value == b"after"


def test_a_consumer_behind_the_log_start_resumes_there_logged_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with LocalLog(tmp_path, 1, segment_bytes=SMALL) as log:
        values = _fill(log, 6)
        log.drop_before("t", 0, 8)
        with caplog.at_level(logging.WARNING, "c360.logs.local"):
            batch = log.read_batch("t", 0, 3, 3)
        assert list(batch.offsets) == [8, 9, 10] and list(batch.values) == values[8:11]
        assert log.offset_resets == {TopicPartition("t", 0): 1}
        assert "offset 3 is before the log start 8" in caplog.text
        assert "5 records skipped" in caplog.text
        assert "auto.offset.reset=earliest" in caplog.text
        log.read_batch("t", 0, 11, 3)  # from where the batch ended: no reset
        assert log.offset_resets == {TopicPartition("t", 0): 1}


def test_erasure_rewrites_only_the_segments_holding_a_match(tmp_path: Path) -> None:
    small = SMALL
    with LocalLog(tmp_path, 1, segment_bytes=small) as writer:
        writer.append("t", [("ann", b'{"e":"ann@x"}' + RECORD), ("bo", RECORD)])
        _fill(writer, 3)
        writer.append("t", [("bo", RECORD), ("ann", b"again" + RECORD)])  # segments 0, 4, 8
        with LocalLog(tmp_path, 1, segment_bytes=small) as reader:
            assert len(reader.read_batch("t", 0, 0, 100)) == 10  # holds every segment open
            inodes = [segment_path(tmp_path, "t", 0, b).stat().st_ino for b in (0, 4, 8)]
            with LocalLog(tmp_path, 1, segment_bytes=small) as eraser:
                erased = eraser.erase("t", lambda key, value: key == b"ann")
            assert (erased.records, erased.files) == (2, 2)
            after = [segment_path(tmp_path, "t", 0, b).stat().st_ino for b in (0, 4, 8)]
            assert [a == b for a, b in zip(after, inodes, strict=True)] == [False, True, False]
            batch = reader.read_batch("t", 0, 0, 100)  # a sealed segment replaced: reopened
            assert list(batch.offsets) == list(range(10))
            assert [k for k in batch.keys] == [b"", b"bo", *[b"k"] * 6, b"bo", b""]
            writer.append("t", [("cy", b"c")])  # the active segment was replaced too
            assert reader.read("t", 0, 10, 1)[0].key == "cy"
    for path in (tmp_path / "t" / "0").iterdir():
        assert b"ann" not in path.read_bytes()


def test_a_damaged_sealed_segment_is_reported_naming_it(tmp_path: Path) -> None:
    with LocalLog(tmp_path, 1, segment_bytes=SMALL) as log:
        _fill(log, 4)
    sealed = segment_path(tmp_path, "t", 0, 0)
    with sealed.open("r+b") as file:
        file.truncate(3 * (ON_DISK + 3) + 7)  # not a torn tail: a later segment exists
    with LocalLog(tmp_path, 1) as log, pytest.raises(DataError, match=segment_name(0)) as caught:
        log.end_offset("t", 0)
    assert "3 valid records of 4 expected" in str(caught.value)


# -- logs written by earlier versions: one file per partition ---------------------------------


def _legacy(root: Path, values: list[bytes]) -> Path:
    """A partition as versions before segments wrote it: ``<topic>/<partition>.log``."""
    (root / "t").mkdir(parents=True)
    (root / "t" / "topic.json").write_text('{"partitions": 1}')
    path = root / "t" / "0.log"
    path.write_bytes(b"".join(encode_record("k", v, 1_000) for v in values))
    return path


def test_an_earlier_single_file_log_opens_as_its_first_segment(tmp_path: Path) -> None:
    legacy = _legacy(tmp_path, [b"old-%d" % i for i in range(5)])
    inode = legacy.stat().st_ino
    # (by size only: the old records' age would roll the segment at once)
    with LocalLog(tmp_path, 1, segment_bytes=6 * ON_DISK, segment_ms=0) as log:
        assert [r.value for r in log.read("t", 0, 0, 10)] == [b"old-%d" % i for i in range(5)]
        assert not legacy.exists()
        assert segment_path(tmp_path, "t", 0).stat().st_ino == inode  # moved, not copied
        log.append("t", [("k", RECORD)] * 3)
        assert log.end_offset("t", 0) == 8 and _segments(tmp_path) == [segment_name(0)]
        log.append("t", [("k", RECORD)] * 3)
        assert _segments(tmp_path) == [segment_name(0), segment_name(8)]


RELEASED = Path(__file__).parent / "release_logs" / "log-before-segments"


def test_a_log_the_version_before_segments_wrote_reads_the_same_and_takes_appends(
    tmp_path: Path,
) -> None:
    shutil.copytree(RELEASED, tmp_path / "log")
    with LocalLog(tmp_path / "log", 2) as log:
        records = [r for p in (0, 1) for r in log.read("clickstream", p, 0, 100)]
        assert sorted(r.key for r in records) == sorted(
            [f"anon-{i}" for i in range(10)] + ["anon-1"]
        )
        for p in (0, 1):
            assert [r.offset for r in log.read("clickstream", p, 0, 100)] == list(
                range(log.end_offset("clickstream", p))
            )
            assert not (tmp_path / "log" / "clickstream" / f"{p}.log").exists()
            assert _segments(tmp_path / "log", "clickstream", p) == [segment_name(0)]
        late = [r for r in records if r.value == b'{"type":"page","messageId":"late"}']
        assert len(late) == 1 and late[0].offset > 0
        partition, offset = log.append("clickstream", [("anon-1", b"new")])[0]
        assert partition == late[0].partition and offset == late[0].offset + 1


def test_an_upgrade_interrupted_before_the_move_finishes_on_the_next_open(
    tmp_path: Path,
) -> None:
    _legacy(tmp_path, [b"a", b"b"])
    (tmp_path / "t" / "0").mkdir()  # the crash: the folder made, the file not moved yet
    with LocalLog(tmp_path, 1) as log:
        assert [r.value for r in log.read("t", 0, 0, 10)] == [b"a", b"b"]


def test_an_earlier_file_beside_segments_is_refused(tmp_path: Path) -> None:
    with LocalLog(tmp_path, 1) as log:
        log.append("t", [("k", b"new")])
    (tmp_path / "t" / "0.log").write_bytes(encode_record("k", b"old", 0))
    with LocalLog(tmp_path, 1) as log, pytest.raises(DataError, match="an earlier version"):
        log.end_offset("t", 0)


# -- crashes: a writer killed while it rolls --------------------------------------------------

ROLLING_WRITER = """
import sys
from c360.logs.local import LocalLog
with LocalLog(sys.argv[1], 1, segment_bytes=300) as log:
    print("ready", flush=True)
    for i in range(1_000_000):
        log.append("t", [("k", b"%d" % i + b"x" * 90), ("k", b"%d-b" % i + b"x" * 90)])
"""


def test_a_writer_killed_while_rolling_leaves_a_readable_log(tmp_path: Path) -> None:
    """Segments of two batches roll on every other append; SIGKILL lands mid-append or mid-roll
    (a torn tail, an empty new segment, a segment without its folder's fsync): the log opens,
    offsets run on, and what it holds is a prefix of what the writer appended."""
    child = subprocess.Popen(
        [sys.executable, "-c", ROLLING_WRITER, str(tmp_path)], stdout=subprocess.PIPE
    )
    assert child.stdout is not None and child.stdout.readline() == b"ready\n"
    time.sleep(0.4)
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL
    child.stdout.close()
    with LocalLog(tmp_path, 1, segment_bytes=300) as log:
        end = log.end_offset("t", 0)
        assert end > 4 and len(_segments(tmp_path)) > 2
        values = list(log.read_batch("t", 0, 0, end + 10).values)
        assert len(values) == end
        expected = [
            b"%d%s" % (n // 2, b"" if n % 2 == 0 else b"-b") + b"x" * 90 for n in range(end)
        ]
        assert values == expected
        log.append("t", [("k", b"after")])
        assert log.read("t", 0, end, 1)[0].value == b"after"


def test_a_crash_midway_through_deleting_segments_leaves_a_readable_log(tmp_path: Path) -> None:
    """Retention deletes oldest first, one unlink at a time: a crash between two leaves a
    shorter prefix gone, which opens and reads from its new start; a re-run finishes."""
    small = SMALL
    with LocalLog(tmp_path, 1, segment_bytes=small) as log:
        values = _fill(log, 7)
    segment_path(tmp_path, "t", 0, 0).unlink()  # the first deletion done, then the crash
    with LocalLog(tmp_path, 1, segment_bytes=small) as log:
        assert log.start_offset("t", 0) == 4
        assert list(log.read_batch("t", 0, 4, 100).values) == values[4:]
        assert log.drop_before("t", 0, 12) == 8  # the re-run
        assert _segments(tmp_path) == [segment_name(12)]


def test_segments_deleted_behind_its_back_are_reported(tmp_path: Path) -> None:
    with LocalLog(tmp_path, 1) as log:
        log.append("t", [("k", b"v")])
        segment_path(tmp_path, "t", 0).unlink()
        with pytest.raises(DataError, match=r"every segment file of .* is gone"):
            log.append("t", [("k", b"w")])


ROLLING_PEER = """
import sys
from c360.logs.local import LocalLog
with LocalLog(sys.argv[1], 1, segment_bytes=400) as log:
    for i in range(200):
        log.append("t", [("k", b"child-%d" % i + b"x" * 60)])
"""


def test_two_writer_processes_roll_the_same_partition(tmp_path: Path) -> None:
    """Each process rolls on its own view; the folder's lock and listing keep one sequence:
    offsets contiguous, every record once, each writer's in its order, no segment empty."""
    with LocalLog(tmp_path, 1, segment_bytes=400) as log:
        log.partitions("t")
        child = subprocess.Popen([sys.executable, "-c", ROLLING_PEER, str(tmp_path)])
        try:
            for i in range(200):
                log.append("t", [("k", b"parent-%d" % i + b"x" * 60)])
                if i % 50 == 0:
                    log.read_batch("t", 0, 0, 1_000)  # a reader following the rolls
        finally:
            assert child.wait(timeout=60) == 0
        batch = log.read_batch("t", 0, 0, 1_000)
        assert list(batch.offsets) == list(range(400)) == list(range(log.end_offset("t", 0)))
        for who in (b"parent", b"child"):
            mine = [v for v in batch.values if v.startswith(who)]
            assert mine == [b"%s-%d" % (who, i) + b"x" * 60 for i in range(200)]
    names = _segments(tmp_path)
    bases = [int(name[:-4]) for name in names]
    assert len(names) > 50 and bases == sorted(set(bases))
    assert all((tmp_path / "t" / "0" / name).stat().st_size for name in names)
    with LocalLog(tmp_path, 1, segment_bytes=400) as reopened:  # every sealed segment whole
        assert reopened.end_offset("t", 0) == 400


def test_a_sealed_segment_cut_short_while_open_is_reported_on_read(tmp_path: Path) -> None:
    with LocalLog(tmp_path, 1, segment_bytes=SMALL) as log:
        _fill(log, 4)  # segments 0-3 and 4-7
        with segment_path(tmp_path, "t", 0, 0).open("r+b") as file:
            file.truncate(2 * (ON_DISK + 3))  # offsets 2 and 3 gone under an open log
        fresh = LocalLog(tmp_path, 1, segment_bytes=SMALL)
        with fresh, pytest.raises(DataError, match="2 valid records of 4 expected"):
            fresh.read_batch("t", 0, 0, 10)
        assert len(log.read_batch("t", 0, 0, 2)) == 2
        with pytest.raises(DataError, match=r"corrupt near offset 2 \(t/0\)"):
            log.read_batch("t", 0, 0, 10)
