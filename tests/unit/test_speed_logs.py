"""What only the local log does (the shared contract is tests/conformance/test_event_log.py)."""

from __future__ import annotations

import errno
import logging
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from c360.errors import ConfigError, DataError, TerminalError, TransientError
from c360.logs import local, open_log, partition_for
from c360.logs.local import MAX_RECORD_BYTES, LocalLog, encode_record, segment_path


def test_partition_for_is_crc32_and_stable() -> None:
    # Fixed values: a change here moves every key to another partition.
    assert [partition_for(k, 4) for k in ["", "a", "anon-1", "clé"]] == [0, 3, 2, 0]
    assert [partition_for(k, 7) for k in ["", "a", "anon-1", "clé"]] == [0, 4, 3, 2]
    assert partition_for("a", 2**32) == 3904355907  # zlib.crc32(b"a"), as librdkafka's
    with pytest.raises(ValueError):
        partition_for("a", 0)


def test_open_log_picks_the_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with open_log("local://data/log", 3) as relative:
        assert isinstance(relative, LocalLog)
        assert relative.root == Path("data/log")
        assert relative.partitions("t") == 3
    assert (tmp_path / "data/log/t/topic.json").is_file()
    with open_log(f"local://{tmp_path}/abs", 2) as absolute:
        assert isinstance(absolute, LocalLog)
        assert absolute.root == tmp_path / "abs"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("kafka://127.0.0.1:9092?linger=5", "unknown parameter"),
        ("local://", "names no folder"),
        ("s3://bucket/log", "unsupported event log"),
    ],
)
def test_open_log_rejects_with_a_terminal_error(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        open_log(url, 4)
    assert isinstance(caught.value, TerminalError)
    assert caught.value.key == "log.url"


def test_a_changed_partition_count_is_refused(tmp_path: Path) -> None:
    with LocalLog(tmp_path, 4) as log:
        log.append("clicks", [("k", b"v")])
    with LocalLog(tmp_path, 8) as log, pytest.raises(ConfigError, match="has 4 partitions"):
        log.partitions("clicks")


@pytest.mark.parametrize("topic", ["", "..", "a/b", "a b", "x" * 250])
def test_topic_names_are_checked(tmp_path: Path, topic: str) -> None:
    with LocalLog(tmp_path, 1) as log, pytest.raises(DataError, match="invalid topic name"):
        log.append(topic, [("k", b"v")])


def test_oversized_records_are_refused(tmp_path: Path) -> None:
    with LocalLog(tmp_path, 1) as log, pytest.raises(DataError, match="exceeds"):
        log.append("t", [("k", b"x" * MAX_RECORD_BYTES)])


def test_a_closed_log_is_unusable(tmp_path: Path) -> None:
    log = LocalLog(tmp_path, 1)
    log.close()
    log.close()  # idempotent
    with pytest.raises(TerminalError, match="closed"):
        log.append("t", [("k", b"v")])


def test_the_torn_tail_is_truncated_on_open_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with LocalLog(tmp_path, 1) as log:
        log.append("t", [("k", b"a"), ("k", b"b")])
    path = segment_path(tmp_path, "t", 0)
    valid_size = path.stat().st_size
    with path.open("ab") as file:
        file.write(encode_record("k", b"torn", 0)[:-3])
    with caplog.at_level(logging.WARNING, "c360.logs.local"), LocalLog(tmp_path, 1) as log:
        assert log.end_offset("t", 0) == 2
        assert path.stat().st_size == valid_size  # cut on open, before any append
    assert "torn tail" in caplog.text


def test_a_reader_stops_at_a_record_still_being_written(tmp_path: Path) -> None:
    with LocalLog(tmp_path, 1) as writer, LocalLog(tmp_path, 1) as reader:
        writer.append("t", [("k", b"first")])
        assert reader.end_offset("t", 0) == 1
        whole = encode_record("k", b"second", 0)
        with segment_path(tmp_path, "t", 0).open("ab") as file:  # a writer caught mid-write
            file.write(whole[:10])
            file.flush()
            assert reader.read("t", 0, 1, 10) == []
            assert reader.end_offset("t", 0) == 1
            file.write(whole[10:])
        assert [r.value for r in reader.read("t", 0, 0, 10)] == [b"first", b"second"]


def test_batches_read_across_chunks_and_from_any_offset(tmp_path: Path) -> None:
    """Reads step over the sparse index and across the 1 MB read chunks, records of any size."""
    values = [bytes([i % 251]) * (i * 37 % 300_000) for i in range(700)]  # up to 300 KB
    with LocalLog(tmp_path, 1) as log:
        log.append("t", [(f"k{i}", value) for i, value in enumerate(values)])
    with LocalLog(tmp_path, 1) as log:  # a fresh handle: everything known from the scan
        for offset in (0, 1, 255, 256, 257, 699):
            batch = log.read_batch("t", 0, offset, 300)
            assert list(batch.offsets) == list(range(offset, min(700, offset + 300)))
            assert list(batch.values) == values[offset : offset + 300]
            assert [k.decode() for k in batch.keys] == [f"k{i}" for i in batch.offsets]
            assert batch.records() == log.read("t", 0, offset, 300)
        assert len(log.read_batch("t", 0, 700, 10)) == 0


def test_a_broken_record_inside_the_scanned_part_is_reported(tmp_path: Path) -> None:
    with LocalLog(tmp_path, 1) as log:
        log.append("t", [("k", b"a" * 100) for _ in range(10)])
        record_size = len(encode_record("k", b"a" * 100, 0))
        with segment_path(tmp_path, "t", 0).open("r+b") as file:  # another hand rewrites offset 5
            file.seek(5 * record_size)
            file.write(b"\xff\xff\xff\xff")
        assert [r.value for r in log.read("t", 0, 0, 5)] == [b"a" * 100] * 5
        with pytest.raises(DataError, match=r"corrupt near offset 5 \(t/0\)"):
            log.read("t", 0, 3, 5)


def test_threads_append_concurrently(tmp_path: Path) -> None:
    with LocalLog(tmp_path, 1) as log:

        def write(n: int) -> None:
            for i in range(40):
                log.append("t", [("k", f"{n}-{i}".encode())])

        threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        records = log.read("t", 0, 0, 1_000)
    assert [r.offset for r in records] == list(range(160))
    assert sorted(r.value for r in records) == sorted(
        f"{n}-{i}".encode() for n in range(4) for i in range(40)
    )


WRITER = """
import sys
from c360.logs.local import LocalLog
with LocalLog(sys.argv[1], 2) as log:
    for i in range(50):
        log.append("t", [("k", b"child-%d" % i), ("k", b"child-%d-b" % i)])
"""


def test_two_writer_processes_and_a_reader(tmp_path: Path) -> None:
    with LocalLog(tmp_path, 2) as log:
        log.partitions("t")  # create the topic before the child starts
        child = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)])
        try:
            for i in range(50):
                log.append("t", [("k", b"parent-%d" % i)])
        finally:
            assert child.wait(timeout=60) == 0
        partition = partition_for("k", 2)
        records = log.read("t", partition, 0, 1_000)
    assert [r.offset for r in records] == list(range(150))
    values = [r.value for r in records]
    children = [v for v in values if v.startswith(b"child")]
    assert children == [b"child-%d%s" % (i, s) for i in range(50) for s in (b"", b"-b")]
    assert [v for v in values if v.startswith(b"parent")] == [b"parent-%d" % i for i in range(50)]


# -- file-system errors leave the log classified ----------------------------------------------


def _failing(error: OSError) -> Callable[..., Any]:
    def fail(*args: object, **kwargs: object) -> Any:
        raise error

    return fail


def test_a_full_disk_on_append_is_terminal_and_leaves_no_torn_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with LocalLog(tmp_path, 1) as log:
        log.append("t", [("k", b"before")])
        with monkeypatch.context() as patch:
            patch.setattr(local.os, "write", _failing(OSError(errno.ENOSPC, "No space left")))
            with pytest.raises(TerminalError) as caught:
                log.append("t", [("k", b"lost")])
        message = str(caught.value)
        assert "t/0 (t/0)" in message and "No space left" in message and "log.url" in message
        log.append("t", [("k", b"after")])
        assert [r.value for r in log.read("t", 0, 0, 10)] == [b"before", b"after"]


@pytest.mark.parametrize(
    ("call", "what"),
    [
        (lambda log: log.read_batch("t", 0, 0, 10), "read"),
        (lambda log: log.end_offset("t", 0), "read the end of"),
        (lambda log: log.append("t", [("k", b"v")]), "append to"),
    ],
    ids=["read_batch", "end_offset", "append"],
)
def test_an_io_error_is_transient_naming_the_partition(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    call: Callable[[LocalLog], object],
    what: str,
) -> None:
    with LocalLog(tmp_path, 1) as writer:
        writer.append("t", [("k", b"v")])
    with LocalLog(tmp_path, 1) as log:
        log.partitions("t")
        log._partition("t", 0)  # opened (and scanned) before the disk starts failing
        with open(segment_path(tmp_path, "t", 0), "ab") as other:  # a write it has not seen yet
            other.write(encode_record("k", b"w", 0))
        with monkeypatch.context() as patch:
            patch.setattr(local.os, "pread", _failing(OSError(errno.EIO, "Input/output error")))
            with pytest.raises(TransientError, match=f"could not {what} .*t/0 \\(t/0\\)"):
                call(log)


def test_a_partition_file_it_may_not_open_is_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with LocalLog(tmp_path, 1) as log:
        log.partitions("t")
        with monkeypatch.context() as patch:
            patch.setattr(local.os, "open", _failing(PermissionError(errno.EACCES, "Denied")))
            with pytest.raises(TerminalError, match=r"could not open t/0 .*log\.url"):
                log.read_batch("t", 0, 0, 1)


def test_a_folder_it_may_not_create_is_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Path, "mkdir", _failing(PermissionError(errno.EACCES, "Denied")))
    with pytest.raises(TerminalError, match=r"could not create .*log\.url"):
        LocalLog(tmp_path / "log", 1)


def test_a_damaged_topic_file_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "topic.json").write_text("{not json")
    with LocalLog(tmp_path, 1) as log, pytest.raises(DataError, match="is not a topic file"):
        log.partitions("t")
