"""The embedded event log: a folder with one append-only file per topic-partition.

Layout::

    PATH/<topic>/topic.json          {"partitions": N}, written once, when the topic is created
    PATH/<topic>/<partition>.log     the records of one partition, back to back

A record on disk (big-endian)::

    u32 length    bytes after this 8-byte prefix
    u32 crc       CRC-32 of those bytes
    i64 timestamp_ms | u32 key_length | key (UTF-8) | value

Offsets are implicit: the n-th record of a file has offset n.

- **Durability**: one ``append`` call writes each partition's records with one ``write`` and
  ``fsync`` s the file before returning (callers batch to amortise the sync).
- **Crash recovery**: a crash mid-append leaves a torn tail, a short or CRC-failing last record.
  Opening a partition scans its file once, under the writer lock, and truncates it at the first
  invalid record (as Kafka recovers its active segment). Invalid bytes *inside* the part already
  scanned are reported as a :class:`~c360.errors.DataError`, never skipped.
- **Reading** returns only records below the end the scan verified (or this process appended)
  and does not check their CRC again, as Kafka consumers do not by default (``check.crcs``):
  the CRC guards against torn and partial writes, which the scan catches. A read still checks
  the framing of every record it passes and reports a mismatch as corruption. Records come back
  column by column (:class:`~c360.logs.base.RecordBatch`): one ``pread`` per megabyte, two
  slices per record.
- **Seeking**: that scan also builds a sparse in-memory index (the file position of every
  :data:`INDEX_INTERVAL`-th record, 8 bytes each), so a read steps over fewer than
  :data:`INDEX_INTERVAL` records to reach its offset.
- **Concurrency**: appends hold a thread lock and an exclusive ``flock`` on the file, so threads
  and several writer processes may append. Readers in other processes take no lock: before
  answering past their known end, they scan what was appended since and stop at a record still
  being written. POSIX only (``flock``, ``pread``).
- **Errors** are classified here, once: every ``OSError`` of the file system leaves as a
  :class:`~c360.errors.TerminalError` (permission denied, a read-only or full disk, a folder
  that vanished: the message names the path and ``log.url``) or a
  :class:`~c360.errors.TransientError` (an I/O error, a busy resource: retry);
  see :func:`c360.errors.classify_os_error`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import struct
import threading
import time
import zlib
from array import array
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from c360.contracts.log import RecordBatch
from c360.errors import ConfigError, DataError, NotFoundError, TerminalError, classify_os_error
from c360.logs.base import EventLog, LogErasure, RecordMatch, check_topic, partition_for

logger = logging.getLogger(__name__)

PREFIX = struct.Struct(">II")  # length, crc
BODY_HEADER = struct.Struct(">qI")  # timestamp_ms, key_length
RECORD_HEADER = struct.Struct(">IIqI")  # both: what a read parses per record
INDEX_INTERVAL = 256
MAX_RECORD_BYTES = 8 * 1024 * 1024
READ_CHUNK = 1024 * 1024
TOPIC_FILE = "topic.json"
LOG_URL = "log.url"


@contextmanager
def _classified(what: str) -> Iterator[None]:
    """The file system's ``OSError`` s of the block as transient or terminal c360 errors."""
    try:
        yield
    except OSError as exc:
        raise classify_os_error(exc, f"event log: could not {what}", LOG_URL) from exc


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def encode_record(key: str, value: bytes, timestamp_ms: int) -> bytes:
    """The on-disk bytes of one record (see the module docstring for the format)."""
    key_bytes = key.encode("utf-8")
    body = BODY_HEADER.pack(timestamp_ms, len(key_bytes)) + key_bytes + value
    if len(body) > MAX_RECORD_BYTES:
        raise DataError(f"record of {len(body)} bytes exceeds the {MAX_RECORD_BYTES}-byte limit")
    return PREFIX.pack(len(body), zlib.crc32(body)) + body


class _PartitionFile:
    """One partition's file, its sparse index and its locks."""

    def __init__(self, path: Path, topic: str, partition: int) -> None:
        self.path = path
        self.topic = topic
        self.partition = partition
        self._lock = threading.Lock()
        self._index = array("q")  # file position of offsets 0, INDEX_INTERVAL, 2*INDEX_INTERVAL…
        self._count = 0  # valid records known
        self._end = 0  # file position after the last valid record known
        created = not path.exists()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            if created:
                _fsync_dir(path.parent)
            with self._exclusive():
                self._scan()
                size = os.fstat(self._fd).st_size
                if size > self._end:
                    self._truncate_tail(size)
        except BaseException:
            os.close(self._fd)
            raise

    # -- low level ---------------------------------------------------------------------------
    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """The inter-process writer lock (held briefly: one append or the open-time recovery)."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _records(self, pos: int, stop: int) -> Iterator[tuple[int, bytes]]:
        """(position, body) of each valid record from ``pos``; ends before ``stop`` or at the
        first short, oversized or CRC-failing record."""
        buf, base = b"", pos  # base: the file position of buf[0]
        while pos + PREFIX.size <= stop:
            if pos + PREFIX.size > base + len(buf):
                buf, base = os.pread(self._fd, READ_CHUNK, pos), pos
                if len(buf) < PREFIX.size:
                    return
            length, crc = PREFIX.unpack_from(buf, pos - base)
            if length < BODY_HEADER.size or length > MAX_RECORD_BYTES:
                return
            end = pos + PREFIX.size + length
            if end > stop:
                return
            if end > base + len(buf):
                buf, base = os.pread(self._fd, max(READ_CHUNK, end - pos), pos), pos
                if len(buf) < end - pos:
                    return
            start = pos - base + PREFIX.size
            body = buf[start : start + length]
            if zlib.crc32(body) != crc:
                return
            yield pos, body
            pos = end

    def _scan(self) -> None:
        """Index the complete records appended since the last look (by any process)."""
        size = os.fstat(self._fd).st_size
        for pos, body in self._records(self._end, size):
            if self._count % INDEX_INTERVAL == 0:
                self._index.append(pos)
            self._count += 1
            self._end = pos + PREFIX.size + len(body)

    def _truncate_tail(self, size: int) -> None:
        """Cut a torn tail; only called under the writer lock, when no one can be writing."""
        logger.warning(
            "event log %s: dropping a torn tail of %d bytes after %d records (interrupted append)",
            self.path,
            size - self._end,
            self._count,
        )
        os.ftruncate(self._fd, self._end)
        os.fsync(self._fd)

    # -- operations --------------------------------------------------------------------------
    def replaced(self) -> bool:
        """Whether the path now names another file than ours (an erasure rewrote it)."""
        try:
            return os.stat(self.path).st_ino != os.fstat(self._fd).st_ino
        except FileNotFoundError:
            return False

    def append(self, encoded: Sequence[bytes]) -> int:
        """Write and sync the records; return the offset of the first."""
        data = b"".join(encoded)
        with self._lock, self._exclusive():
            if self.replaced():
                raise _Replaced
            self._scan()  # records other writer processes appended
            size = os.fstat(self._fd).st_size
            if size > self._end:  # a writer crashed mid-append; we hold the lock
                self._truncate_tail(size)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view) :]
            except OSError as exc:
                with contextlib.suppress(OSError):  # else the next append cuts the torn tail
                    os.ftruncate(self._fd, self._end)
                raise self._error("append to", exc) from exc
            try:
                os.fsync(self._fd)
            except OSError as exc:  # the bytes may or may not be on disk: the caller retries
                raise self._error("sync", exc) from exc
            first, pos = self._count, self._end
            for record in encoded:
                if self._count % INDEX_INTERVAL == 0:
                    self._index.append(pos)
                self._count += 1
                pos += len(record)
            self._end = pos
            return first

    def _error(self, action: str, exc: OSError) -> Exception:
        where = f"{self.path} ({self.topic}/{self.partition})"
        return classify_os_error(exc, f"event log: could not {action} {where}", LOG_URL)

    def known_count(self) -> int:
        return self._count

    def end_offset(self) -> int:
        with self._lock:
            self._scan()
            return self._count

    def read_batch(self, offset: int, max_records: int) -> RecordBatch:
        with self._lock:
            if offset + max_records > self._count:  # more may have been appended since
                self._scan()
            count, end = self._count, self._end
            if offset >= count or max_records <= 0:
                return RecordBatch(self.topic, self.partition)
            slot = offset // INDEX_INTERVAL
            pos, skip = self._index[slot], offset - slot * INDEX_INTERVAL
        wanted = min(max_records, count - offset)
        keys: list[bytes] = []
        values: list[bytes] = []
        stamps: list[int] = []
        unpack = RECORD_HEADER.unpack_from
        header_size = RECORD_HEADER.size
        buf, base = b"", pos  # base: the file position of buf[0]
        seen = -skip  # records of the wanted range passed so far (< 0: still skipping)
        while seen < wanted:
            at = pos - base
            if at + header_size > len(buf):
                buf, base, at = self._chunk(pos, end, header_size, offset + seen), pos, 0
            length, _, timestamp_ms, key_length = unpack(buf, at)
            stop = at + PREFIX.size + length
            if not BODY_HEADER.size + key_length <= length <= MAX_RECORD_BYTES:
                raise self._corrupt(offset + seen)
            if stop > len(buf):
                need = PREFIX.size + length
                buf, base, at, stop = self._chunk(pos, end, need, offset + seen), pos, 0, need
            if seen >= 0:
                key_start = at + header_size
                keys.append(buf[key_start : key_start + key_length])
                values.append(buf[key_start + key_length : stop])
                stamps.append(timestamp_ms)
            seen += 1
            pos = base + stop
        return RecordBatch(
            self.topic, self.partition, range(offset, offset + wanted), keys, values, stamps
        )

    def _chunk(self, pos: int, end: int, need: int, offset: int) -> bytes:
        """At least ``need`` bytes of the verified region from ``pos`` (up to ``READ_CHUNK``)."""
        size = min(max(READ_CHUNK, need), end - pos)
        buf = os.pread(self._fd, size, pos) if size >= need else b""
        if len(buf) < need:
            raise self._corrupt(offset)
        return buf

    def _corrupt(self, offset: int) -> DataError:
        return DataError(
            f"event log {self.path} is corrupt near offset {offset} "
            f"({self.topic}/{self.partition}): restore the file or move it away"
        )

    def erase(self, match: RecordMatch) -> int:
        """Rewrite the file with the records ``match`` picks redacted (empty key and value,
        same timestamp, so every offset stays), aside and renamed over it under the writer
        lock: readers see the old file or the new one. The records redacted (0: the file is
        left as it is). Two passes, the second only with a match: memory stays one chunk."""
        with self._lock, self._exclusive():
            if self.replaced():
                raise _Replaced
            self._scan()
            picked = {
                n for n, (_, body) in enumerate(self._records(0, self._end)) if _picks(match, body)
            }
            if not picked:
                return 0
            staged = self.path.with_name(f".{self.path.name}.{os.getpid()}.erasing")
            with open(staged, "wb") as handle:
                for n, (_, body) in enumerate(self._records(0, self._end)):
                    if n in picked:
                        handle.write(encode_record("", b"", BODY_HEADER.unpack_from(body)[0]))
                    else:
                        handle.write(PREFIX.pack(len(body), zlib.crc32(body)) + body)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(staged, self.path)
            _fsync_dir(self.path.parent)
            return len(picked)

    def close(self) -> None:
        os.close(self._fd)


def _picks(match: RecordMatch, body: bytes) -> bool:
    """Whether ``match`` picks a record (an already redacted one is not picked again)."""
    key_length = BODY_HEADER.unpack_from(body)[1]
    value = body[BODY_HEADER.size + key_length :]
    return bool(value) and match(body[BODY_HEADER.size : BODY_HEADER.size + key_length], value)


class _Replaced(Exception):
    """The partition's file was replaced by an erasure since this process opened it."""


class LocalLog(EventLog):
    """A durable partitioned log in a local folder (see the module docstring)."""

    def __init__(self, root: str | Path, partitions: int) -> None:
        if partitions < 1:
            raise ConfigError("log.partitions", f"must be >= 1, got {partitions}")
        self.root = Path(root)
        self.default_partitions = partitions
        self._lock = threading.Lock()
        self._topics: dict[str, int] = {}
        self._files: dict[tuple[str, int], _PartitionFile] = {}
        self._closed = False
        with _classified(f"create {self.root}"):
            self.root.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalLog({str(self.root)!r}, partitions={self.default_partitions})"

    # -- topics and files ----------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise TerminalError(f"the event log at {self.root} is closed")

    def partitions(self, topic: str) -> int:
        with self._lock, _classified(f"read topic {topic!r} in {self.root}"):
            return self._topic_partitions(topic)

    def _topic_partitions(self, topic: str) -> int:
        self._check_open()
        known = self._topics.get(topic)
        if known is not None:
            return known
        folder = self.root / check_topic(topic)
        meta = folder / TOPIC_FILE
        if meta.exists():
            try:
                count = int(json.loads(meta.read_text(encoding="utf-8"))["partitions"])
            except (ValueError, KeyError, TypeError) as exc:
                raise DataError(
                    f"event log: {meta} is not a topic file ({type(exc).__name__}: {exc}); "
                    'restore it as {"partitions": N}'
                ) from None
            if count != self.default_partitions:
                raise ConfigError(
                    "log.partitions",
                    f"topic {topic!r} in {self.root} has {count} partitions but "
                    f"{self.default_partitions} are configured; keys would change partition: "
                    f"set log.partitions = {count} or use a new log folder",
                )
        else:
            count = self.default_partitions
            folder.mkdir(parents=True, exist_ok=True)
            temporary = folder / f".{TOPIC_FILE}.{os.getpid()}.tmp"
            temporary.write_text(json.dumps({"partitions": count}), encoding="utf-8")
            os.replace(temporary, meta)
            _fsync_dir(folder)
        self._topics[topic] = count
        return count

    def _file(self, topic: str, partition: int) -> _PartitionFile:
        with self._lock, _classified(f"open {topic}/{partition} in {self.root}"):
            count = self._topic_partitions(topic)
            if not 0 <= partition < count:
                raise NotFoundError(
                    f"topic {topic!r} has partitions 0..{count - 1}; "
                    f"there is no partition {partition}"
                )
            file = self._files.get((topic, partition))
            if file is None:
                path = self.root / topic / f"{partition}.log"
                file = self._files[topic, partition] = _PartitionFile(path, topic, partition)
            return file

    # -- the interface ---------------------------------------------------------------------------
    def append(self, topic: str, records: Sequence[tuple[str, bytes]]) -> list[tuple[int, int]]:
        count = self.partitions(topic)
        timestamp_ms = time.time_ns() // 1_000_000
        by_partition: dict[int, list[int]] = {}
        encoded: list[bytes] = []
        for i, (key, value) in enumerate(records):
            encoded.append(encode_record(key, value, timestamp_ms))
            by_partition.setdefault(partition_for(key, count), []).append(i)
        positions: list[tuple[int, int]] = [(0, 0)] * len(records)
        for partition, indices in sorted(by_partition.items()):
            batch = [encoded[i] for i in indices]
            file = self._file(topic, partition)
            with _classified(f"append to {file.path} ({topic}/{partition})"):
                try:
                    first = file.append(batch)
                except _Replaced:
                    first = self._reopen(topic, partition).append(batch)
            for n, i in enumerate(indices):
                positions[i] = (partition, first + n)
        return positions

    def read_batch(self, topic: str, partition: int, offset: int, max_records: int) -> RecordBatch:
        if offset < 0:
            raise ValueError(f"offset must be >= 0, got {offset}")
        file = self._file(topic, partition)
        if offset >= file.known_count() and file.replaced():  # caught up: look for a rewrite
            file = self._reopen(topic, partition)
        with _classified(f"read {file.path} ({topic}/{partition}) at offset {offset}"):
            return file.read_batch(offset, max_records)

    def end_offset(self, topic: str, partition: int) -> int:
        file = self._file(topic, partition)
        with _classified(f"read the end of {file.path} ({topic}/{partition})"):
            return file.end_offset()

    def _reopen(self, topic: str, partition: int) -> _PartitionFile:
        """Drop this process's handle of a partition file an erasure replaced; open the new."""
        with self._lock:
            old = self._files.pop((topic, partition), None)
        if old is not None:
            old.close()
        return self._file(topic, partition)

    def erase(self, topic: str, match: RecordMatch) -> LogErasure:
        """Rewrite each partition file holding a matching record (:meth:`_PartitionFile.erase`);
        other processes reopen a replaced file at their next append, or at their next read
        once caught up."""
        if not (self.root / check_topic(topic) / TOPIC_FILE).exists():
            return LogErasure(topic)
        records = files = 0
        for partition in range(self.partitions(topic)):
            if not (self.root / topic / f"{partition}.log").exists():
                continue
            file = self._file(topic, partition)
            with _classified(f"erase records of {file.path} ({topic}/{partition})"):
                try:
                    redacted = file.erase(match)
                except _Replaced:
                    redacted = self._reopen(topic, partition).erase(match)
            if redacted:
                records, files = records + redacted, files + 1
                self._reopen(topic, partition)
        return LogErasure(topic, records=records, files=files)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            files, self._files = list(self._files.values()), {}
        for file in files:
            file.close()
