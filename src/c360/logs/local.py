"""The embedded event log: a folder of append-only segment files per topic-partition.

Layout (as Kafka's, one folder per partition, each segment named by its base offset)::

    PATH/<topic>/topic.json                       {"partitions": N}, written once
    PATH/<topic>/<partition>/00000000000000000000.log   offsets 0 … B-1
    PATH/<topic>/<partition>/0000000000000000B.log      offsets B … (the active segment)

A record on disk (big-endian)::

    u32 length    bytes after this 8-byte prefix
    u32 crc       CRC-32 of those bytes
    i64 timestamp_ms | u32 key_length | key (UTF-8) | value

Offsets are implicit: the n-th record of the segment whose base offset is B has offset B + n.
Offsets are stable and monotonic across segments: a segment's base is the end offset of the one
before it, and nothing renumbers records (erasure redacts in place, retention drops whole
segments from the oldest, so the *log start offset* — the first segment's base — only grows).

- **Segments**: appends go to the newest segment, the *active* one. An append rolls it — opens
  a new segment at the current end offset — when the active segment holds records and would
  pass ``segment_bytes`` with the batch, or its first record is ``segment_ms`` or more older
  than the batch (``log.segment_bytes``, ``log.segment_hours``; Kafka's ``segment.bytes`` and
  ``segment.ms``). A batch is never split: a segment exceeds its size by at most one batch.
- **Durability**: one ``append`` call writes each partition's records with one ``write`` and
  ``fsync`` s the segment before returning (callers batch to amortise the sync); a roll creates
  the new segment and ``fsync`` s the folder before writing to it.
- **Crash recovery**: a crash mid-append leaves a torn tail, a short or CRC-failing last record,
  on the active segment. Opening a partition scans its segments once, under the writer lock,
  and truncates the active one at the first invalid record (as Kafka recovers its active
  segment). A crash mid-roll leaves an empty newest segment, which then is the active one (the
  next append fills it). A sealed segment (not the newest) holds exactly the records up to the
  next one's base: anything else is corruption, reported as a :class:`~c360.errors.DataError`
  naming the file, never truncated. Invalid bytes *inside* the part already scanned are
  reported the same way, never skipped.
- **Retention** (:meth:`LocalLog.drop_before`, the :class:`~c360.logs.base.Truncatable`
  capability used by :mod:`c360.pipeline.retention`) deletes whole segments wholly below an
  offset, oldest first, one ``unlink`` and folder ``fsync`` each, under the writer lock: a
  crash midway leaves a shorter prefix deleted, a readable log. Never the active segment, nor
  the newest segment holding records (so the log start never passes the last record).
- **Reading before the log start** (a consumer whose committed offset lies in a deleted
  segment): the read resumes at the log start, as a Kafka consumer with
  ``auto.offset.reset=earliest``. The records in between are gone; the reset is logged as a
  warning (topic, partition, the offset asked, the log start, how many records were skipped)
  and counted in :attr:`LocalLog.offset_resets`. The returned batch carries its real offsets,
  so the stream worker's compare-and-set moves its stored offset from the old position to
  after the batch, and the reset happens once.
- **Reading** returns only records below the end the scans verified (or this process appended)
  and does not check their CRC again, as Kafka consumers do not by default (``check.crcs``):
  the CRC guards against torn and partial writes, which the scan catches. A read still checks
  the framing of every record it passes and reports a mismatch as corruption. Records come back
  column by column (:class:`~c360.logs.base.RecordBatch`): one ``pread`` per megabyte, two
  slices per record; a read may span segments.
- **Seeking**: the scan also builds a sparse in-memory index per segment (the file position of
  every :data:`INDEX_INTERVAL`-th record, 8 bytes each), so a read steps over fewer than
  :data:`INDEX_INTERVAL` records to reach its offset.
- **Concurrency**: appends, rolls, erasure and retention hold a thread lock and an exclusive
  ``flock`` on the partition's folder, so threads and several writer processes may append.
  Readers in other processes take no lock: each read lists the partition's folder (segments
  rolled or deleted since) and checks that the segments it reads are the files on disk (an
  erasure renames a rewritten segment over the old one: a changed inode is reopened); before
  answering past their known end, they scan what was appended since and stop at a record still
  being written. A deleted segment's file is closed once no read in this process still uses it.
  POSIX only (``flock``, ``pread``).
- **Upgrading**: a partition written by an earlier version is one file, ``<partition>.log``;
  opening it moves that file into the partition's folder as segment 0 (one ``rename``, under
  the folder's lock; a crash before or after it leaves a log that opens). Stop every process
  that writes the log before upgrading: an older one would go on appending to the moved file.
- **Errors** are classified here, once: every ``OSError`` of the file system leaves as a
  :class:`~c360.errors.TerminalError` (permission denied, a read-only or full disk, a folder
  that vanished: the message names the path and ``log.url``) or a
  :class:`~c360.errors.TransientError` (an I/O error, a busy resource: retry);
  see :func:`c360.errors.classify_os_error`.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import json
import logging
import os
import re
import struct
import threading
import time
import weakref
import zlib
from array import array
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from c360.config import DEFAULT_LOG_SEGMENT_BYTES, DEFAULT_LOG_SEGMENT_HOURS
from c360.contracts.log import RecordBatch, TopicPartition
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
SEGMENT_SUFFIX = ".log"
SEGMENT_NAME = re.compile(r"(\d{20})\.log")
DEFAULT_SEGMENT_BYTES = DEFAULT_LOG_SEGMENT_BYTES
DEFAULT_SEGMENT_MS = DEFAULT_LOG_SEGMENT_HOURS * 3600 * 1000


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


def segment_name(base: int) -> str:
    """The file name of the segment whose first offset is ``base`` (Kafka's: 20 digits)."""
    return f"{base:020d}{SEGMENT_SUFFIX}"


def segment_path(root: str | Path, topic: str, partition: int, base: int = 0) -> Path:
    """Where the segment of ``topic``/``partition`` starting at ``base`` lives under ``root``."""
    return Path(root) / topic / str(partition) / segment_name(base)


class _Segment:
    """One segment file: its records from offset ``base`` on, their end and sparse index.

    The file stays open while this object lives: a read that took it keeps it readable even
    if retention deletes the file meanwhile; it is closed when the last reference goes.
    """

    def __init__(self, path: Path, base: int, fd: int) -> None:
        self.path = path
        self.base = base
        self.fd = fd
        self.ino = os.fstat(fd).st_ino
        self.index = array("q")  # file position of records 0, INDEX_INTERVAL, 2*INDEX_INTERVAL…
        self.count = 0  # valid records known
        self.end = 0  # file position after the last valid record known
        self.first_ms: int | None = None  # the first record's timestamp (age-based rolls)
        self._closer = weakref.finalize(self, os.close, fd)

    @classmethod
    def open(cls, path: Path, base: int, *, create: bool = False) -> _Segment:
        flags = os.O_RDWR | os.O_APPEND | (os.O_CREAT | os.O_EXCL if create else 0)
        fd = os.open(path, flags, 0o644)
        try:
            segment = cls(path, base, fd)
        except BaseException:
            os.close(fd)
            raise
        try:
            segment.scan()
        except BaseException:
            segment.close()  # through its finalizer, which would close the fd a second time
            raise
        return segment

    def close(self) -> None:
        self._closer()

    def replaced(self) -> bool:
        """Whether the path now names another file (an erasure renamed a rewrite over it)."""
        try:
            return os.stat(self.path).st_ino != self.ino
        except FileNotFoundError:
            return False

    def records(self, pos: int, stop: int) -> Iterator[tuple[int, bytes]]:
        """(position, body) of each valid record from ``pos``; ends before ``stop`` or at the
        first short, oversized or CRC-failing record."""
        buf, base = b"", pos  # base: the file position of buf[0]
        while pos + PREFIX.size <= stop:
            if pos + PREFIX.size > base + len(buf):
                buf, base = os.pread(self.fd, READ_CHUNK, pos), pos
                if len(buf) < PREFIX.size:
                    return
            length, crc = PREFIX.unpack_from(buf, pos - base)
            if length < BODY_HEADER.size or length > MAX_RECORD_BYTES:
                return
            end = pos + PREFIX.size + length
            if end > stop:
                return
            if end > base + len(buf):
                buf, base = os.pread(self.fd, max(READ_CHUNK, end - pos), pos), pos
                if len(buf) < end - pos:
                    return
            start = pos - base + PREFIX.size
            body = buf[start : start + length]
            if zlib.crc32(body) != crc:
                return
            yield pos, body
            pos = end

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def scan(self) -> None:
        """Index the complete records appended since the last look (by any process)."""
        size = self.size()
        if size <= self.end:
            return
        for pos, body in self.records(self.end, size):
            if self.count % INDEX_INTERVAL == 0:
                self.index.append(pos)
            if self.count == 0:
                self.first_ms = BODY_HEADER.unpack_from(body)[0]
            self.count += 1
            self.end = pos + PREFIX.size + len(body)

    def truncate_tail(self, size: int, where: str) -> None:
        """Cut a torn tail; only called under the writer lock, when no one can be writing."""
        logger.warning(
            "event log %s: dropping a torn tail of %d bytes after %d records (interrupted "
            "append) at %s",
            where,
            size - self.end,
            self.count,
            self.path,
        )
        os.ftruncate(self.fd, self.end)
        os.fsync(self.fd)

    def write(self, data: bytes, encoded: Sequence[bytes], first_ms: int) -> int:
        """Write and sync ``data`` (the ``encoded`` records, joined); the first one's offset
        within the segment. On a failed write the bytes written are cut again."""
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError:
            with contextlib.suppress(OSError):  # else the next append cuts the torn tail
                os.ftruncate(self.fd, self.end)
            raise
        os.fsync(self.fd)  # an OSError here: the bytes may or may not be on disk; retry
        first, pos = self.count, self.end
        if first == 0:
            self.first_ms = first_ms
        for record in encoded:
            if self.count % INDEX_INTERVAL == 0:
                self.index.append(pos)
            self.count += 1
            pos += len(record)
        self.end = pos
        return first

    def timestamps(self) -> Iterator[int]:
        """The append time of each record, in offset order (retention's look-up by time)."""
        for _, body in self.records(0, self.end):
            yield BODY_HEADER.unpack_from(body)[0]


class _Piece:
    """The part of one segment a read takes: from the ``skip``-th record after file position
    ``pos`` (an index entry), ``wanted`` records, all before file position ``end``."""

    __slots__ = ("end", "first", "pos", "segment", "skip", "wanted")

    def __init__(self, segment: _Segment, first: int, wanted: int) -> None:
        relative = first - segment.base
        slot = relative // INDEX_INTERVAL
        self.segment, self.first, self.wanted = segment, first, wanted
        self.pos, self.skip, self.end = segment.index[slot], relative % INDEX_INTERVAL, segment.end


class _Partition:
    """One partition's segments, oldest first, and its locks."""

    def __init__(
        self, folder: Path, topic: str, partition: int, segment_bytes: int, segment_ms: int
    ) -> None:
        self.folder = folder
        self.topic = topic
        self.partition = partition
        self.where = f"{topic}/{partition}"
        self.segment_bytes = segment_bytes
        self.segment_ms = segment_ms
        self._lock = threading.Lock()
        self.segments: list[_Segment] = []
        created = not folder.exists()
        folder.mkdir(exist_ok=True)
        if created:
            _fsync_dir(folder.parent)
        self._dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            with self._exclusive():
                self._upgrade()
                self._refresh()
                if not self.segments:
                    self.segments.append(self._create(0))
                self._recover()
        except BaseException:
            self.close()
            raise

    # -- low level ---------------------------------------------------------------------------
    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """The inter-process writer lock: appends, rolls, erasure, retention, recovery."""
        fcntl.flock(self._dir_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._dir_fd, fcntl.LOCK_UN)

    def _upgrade(self) -> None:
        """Move an earlier version's single file (``<partition>.log`` beside the folder) in as
        segment 0: one atomic rename, under the folder's lock."""
        legacy = self.folder.parent / f"{self.partition}{SEGMENT_SUFFIX}"
        if not legacy.exists():
            return
        if self._bases():
            raise DataError(
                f"event log {self.where}: both {legacy} (an earlier version's file) and "
                f"segments in {self.folder} exist; keep the one with the records you want and "
                "move the other away"
            )
        os.rename(legacy, self.folder / segment_name(0))
        _fsync_dir(self.folder)
        _fsync_dir(self.folder.parent)
        logger.info("event log %s: moved %s in as its first segment", self.where, legacy)

    def _bases(self) -> list[int]:
        found = (SEGMENT_NAME.fullmatch(name) for name in os.listdir(self.folder))
        return sorted(int(match[1]) for match in found if match)

    def _refresh(self) -> None:
        """Follow the folder: segments deleted (retention) leave, segments rolled by another
        process join. Under the thread lock."""
        bases = self._bases()
        known = {segment.base: segment for segment in self.segments}
        if [s.base for s in self.segments] == bases:
            return
        segments = []
        for base in bases:
            segment = known.get(base)
            if segment is None:
                try:
                    segment = _Segment.open(self.folder / segment_name(base), base)
                except FileNotFoundError:  # deleted since the listing
                    continue
            segments.append(segment)
        if self.segments and not segments:
            raise DataError(
                f"event log {self.where}: every segment file of {self.folder} is gone (deleted "
                "outside c360?); restore them, or move the folder away to start the partition "
                "again at offset 0"
            )
        self.segments = segments

    def _create(self, base: int) -> _Segment:
        segment = _Segment.open(self.folder / segment_name(base), base, create=True)
        os.fsync(self._dir_fd)
        return segment

    def _recover(self) -> None:
        """Cut the active segment's torn tail; check that every sealed one is whole."""
        active = self._current(len(self.segments) - 1)
        size = active.size()
        if size > active.end:
            active.truncate_tail(size, self.where)
        for i in range(len(self.segments) - 1):
            self._sealed(i)

    def _current(self, i: int) -> _Segment:
        """Segment ``i``, reopened if an erasure replaced its file; scanned to its end."""
        segment = self.segments[i]
        if segment.replaced():
            segment = self.segments[i] = _Segment.open(segment.path, segment.base)
        else:
            segment.scan()
        return segment

    def _sealed(self, i: int) -> _Segment:
        """Sealed segment ``i`` (not the newest), checked to hold exactly the records below
        the next one's base."""
        segment = self._current(i)
        expected = self.segments[i + 1].base - segment.base
        if segment.count != expected or segment.end != segment.size():
            raise DataError(
                f"event log {self.where}: segment {segment.path} holds {segment.count} valid "
                f"records of {expected} expected (offsets {segment.base}-"
                f"{segment.base + expected - 1}) and {segment.size() - segment.end} bytes "
                "after them: it is corrupt; restore the file or move the partition away"
            )
        return segment

    def _active_end(self) -> int:
        active = self._current(len(self.segments) - 1)
        return active.base + active.count

    # -- operations --------------------------------------------------------------------------
    def append(self, encoded: Sequence[bytes], timestamp_ms: int) -> int:
        """Write and sync the records (rolling first if due); return the offset of the first."""
        data = b"".join(encoded)
        with self._lock, self._exclusive():
            self._refresh()  # segments other writer processes rolled
            active = self._current(len(self.segments) - 1)
            size = active.size()
            if size > active.end:  # a writer crashed mid-append; we hold the lock
                active.truncate_tail(size, self.where)
            if self._due(active, len(data), timestamp_ms):
                active = self._create(active.base + active.count)
                self.segments.append(active)
                logger.info(
                    "event log %s: rolled a new segment at offset %d", self.where, active.base
                )
            return active.base + active.write(data, encoded, timestamp_ms)

    def _due(self, active: _Segment, size: int, timestamp_ms: int) -> bool:
        """Whether the batch goes to a new segment: the active one holds records, and would
        pass the size with it, or its first record is old enough."""
        if not active.count:
            return False
        if active.end + size > self.segment_bytes:
            return True
        first_ms = active.first_ms
        return (
            self.segment_ms > 0
            and first_ms is not None
            and timestamp_ms - first_ms >= self.segment_ms
        )

    def end_offset(self) -> int:
        with self._lock:
            self._refresh()
            return self._active_end()

    def start_offset(self) -> int:
        with self._lock:
            self._refresh()
            return self.segments[0].base

    def read_batch(self, offset: int, max_records: int) -> tuple[RecordBatch, int]:
        """Up to ``max_records`` records from ``offset`` on (from the log start if ``offset``
        is before it), and how many records before the log start were skipped."""
        with self._lock:
            self._refresh()
            segments = self.segments
            skipped = 0
            if offset < segments[0].base:
                skipped, offset = segments[0].base - offset, segments[0].base
            i = bisect.bisect_right([s.base for s in segments], offset) - 1
            pieces: list[_Piece] = []
            at, left = offset, max_records
            while left > 0 and i < len(segments):
                segment = self._current(i)  # scanned, and reopened if an erasure replaced it
                if segment.base > at:  # the segment before ends short of this one's base
                    raise self._corrupt(segments[i - 1], at)
                take = min(left, segment.base + segment.count - at)
                if take > 0:
                    pieces.append(_Piece(segment, at, take))
                    at, left = at + take, left - take
                i += 1
        if not pieces:
            return RecordBatch(self.topic, self.partition), skipped
        keys: list[bytes] = []
        values: list[bytes] = []
        stamps: list[int] = []
        for piece in pieces:
            self._read(piece, keys, values, stamps)
        batch = RecordBatch(self.topic, self.partition, range(offset, at), keys, values, stamps)
        return batch, skipped

    def _read(
        self, piece: _Piece, keys: list[bytes], values: list[bytes], stamps: list[int]
    ) -> None:
        segment, pos, end, wanted = piece.segment, piece.pos, piece.end, piece.wanted
        unpack = RECORD_HEADER.unpack_from
        header_size = RECORD_HEADER.size
        buf, base = b"", pos  # base: the file position of buf[0]
        seen = -piece.skip  # records of the wanted range passed so far (< 0: still skipping)
        while seen < wanted:
            at = pos - base
            if at + header_size > len(buf):
                buf, base, at = (
                    self._chunk(segment, pos, end, header_size, piece.first + seen),
                    pos,
                    0,
                )
            length, _, timestamp_ms, key_length = unpack(buf, at)
            stop = at + PREFIX.size + length
            if not BODY_HEADER.size + key_length <= length <= MAX_RECORD_BYTES:
                raise self._corrupt(segment, piece.first + seen)
            if stop > len(buf):
                need = PREFIX.size + length
                buf, base, at, stop = (
                    self._chunk(segment, pos, end, need, piece.first + seen),
                    pos,
                    0,
                    need,
                )
            if seen >= 0:
                key_start = at + header_size
                keys.append(buf[key_start : key_start + key_length])
                values.append(buf[key_start + key_length : stop])
                stamps.append(timestamp_ms)
            seen += 1
            pos = base + stop

    def _chunk(self, segment: _Segment, pos: int, end: int, need: int, offset: int) -> bytes:
        """At least ``need`` bytes of the verified region from ``pos`` (up to ``READ_CHUNK``)."""
        size = min(max(READ_CHUNK, need), end - pos)
        buf = os.pread(segment.fd, size, pos) if size >= need else b""
        if len(buf) < need:
            raise self._corrupt(segment, offset)
        return buf

    def _corrupt(self, segment: _Segment, offset: int) -> DataError:
        return DataError(
            f"event log {segment.path} is corrupt near offset {offset} "
            f"({self.where}): restore the file or move it away"
        )

    def erase(self, match: RecordMatch) -> tuple[int, int]:
        """Redact the records ``match`` picks in every segment holding one (empty key and
        value, same timestamp, so every offset stays): the segment is rewritten aside and
        renamed over itself under the writer lock, so readers see the old file or the new one.
        The records redacted and segments rewritten. Two passes per segment, the second only
        with a match: memory stays one chunk."""
        records = files = 0
        with self._lock, self._exclusive():
            self._refresh()
            for i in range(len(self.segments)):
                segment = self._current(i)
                redacted = _erase_segment(segment, match)
                if redacted:
                    self.segments[i] = _Segment.open(segment.path, segment.base)
                    records, files = records + redacted, files + 1
        return records, files

    def offset_at(self, timestamp_ms: int) -> int:
        """The first offset appended at or after ``timestamp_ms``; the end offset if none."""
        with self._lock:
            self._refresh()
            for i in range(len(self.segments)):
                segment = self._current(i)
                for n, stamp in enumerate(segment.timestamps()):
                    if stamp >= timestamp_ms:
                        return segment.base + n
            return self._active_end()

    def drop_before(self, offset: int) -> int:
        """Delete the segments wholly below ``offset``, oldest first — never the active
        segment, nor the newest holding records. How many records went."""
        dropped = 0
        with self._lock, self._exclusive():
            self._refresh()
            self._current(len(self.segments) - 1)
            keep = max((i for i, s in enumerate(self.segments) if s.count), default=0)
            keep = min(keep, len(self.segments) - 1)
            while keep > 0 and self.segments[1].base <= offset:
                segment, end = self.segments[0], self.segments[1].base
                os.unlink(segment.path)
                os.fsync(self._dir_fd)  # each deletion durable before the next: a prefix goes
                self.segments.pop(0)  # its file closes once no read of this process holds it
                dropped += end - segment.base
                keep -= 1
                logger.info(
                    "event log %s: retention deleted segment %s (offsets %d-%d)",
                    self.where,
                    segment.path.name,
                    segment.base,
                    end - 1,
                )
        return dropped

    def segment_paths(self) -> list[Path]:
        with self._lock:
            self._refresh()
            return [segment.path for segment in self.segments]

    def close(self) -> None:
        for segment in self.segments:
            segment.close()
        self.segments = []
        os.close(self._dir_fd)


def _erase_segment(segment: _Segment, match: RecordMatch) -> int:
    """Rewrite one segment with the records ``match`` picks redacted; how many (0: the file is
    left as it is)."""
    picked = {
        n for n, (_, body) in enumerate(segment.records(0, segment.end)) if _picks(match, body)
    }
    if not picked:
        return 0
    staged = segment.path.with_name(f".{segment.path.name}.{os.getpid()}.erasing")
    with open(staged, "wb") as handle:
        for n, (_, body) in enumerate(segment.records(0, segment.end)):
            if n in picked:
                handle.write(encode_record("", b"", BODY_HEADER.unpack_from(body)[0]))
            else:
                handle.write(PREFIX.pack(len(body), zlib.crc32(body)) + body)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(staged, segment.path)
    _fsync_dir(segment.path.parent)
    return len(picked)


def _picks(match: RecordMatch, body: bytes) -> bool:
    """Whether ``match`` picks a record (an already redacted one is not picked again)."""
    key_length = BODY_HEADER.unpack_from(body)[1]
    value = body[BODY_HEADER.size + key_length :]
    return bool(value) and match(body[BODY_HEADER.size : BODY_HEADER.size + key_length], value)


class LocalLog(EventLog):
    """A durable partitioned log in a local folder (see the module docstring).

    ``segment_bytes`` and ``segment_ms`` (0: no age limit) say when the active segment of a
    partition rolls (``log.segment_bytes``, ``log.segment_hours``).
    """

    def __init__(
        self,
        root: str | Path,
        partitions: int,
        *,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        segment_ms: int = DEFAULT_SEGMENT_MS,
    ) -> None:
        if partitions < 1:
            raise ConfigError("log.partitions", f"must be >= 1, got {partitions}")
        if segment_bytes < 1:
            raise ConfigError("log.segment_bytes", f"must be >= 1, got {segment_bytes}")
        if segment_ms < 0:
            raise ConfigError("log.segment_hours", f"must be >= 0, got {segment_ms} ms")
        self.root = Path(root)
        self.default_partitions = partitions
        self.segment_bytes = segment_bytes
        self.segment_ms = segment_ms
        # Reads that asked for an offset before the log start and resumed there, per partition.
        self.offset_resets: dict[TopicPartition, int] = {}
        self._lock = threading.Lock()
        self._topics: dict[str, int] = {}
        self._partitions: dict[tuple[str, int], _Partition] = {}
        self._closed = False
        with _classified(f"create {self.root}"):
            self.root.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalLog({str(self.root)!r}, partitions={self.default_partitions})"

    # -- topics and partitions -----------------------------------------------------------------
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

    def _partition(self, topic: str, partition: int) -> _Partition:
        with self._lock, _classified(f"open {topic}/{partition} in {self.root}"):
            count = self._topic_partitions(topic)
            if not 0 <= partition < count:
                raise NotFoundError(
                    f"topic {topic!r} has partitions 0..{count - 1}; "
                    f"there is no partition {partition}"
                )
            found = self._partitions.get((topic, partition))
            if found is None:
                found = self._partitions[topic, partition] = _Partition(
                    self.root / topic / str(partition),
                    topic,
                    partition,
                    self.segment_bytes,
                    self.segment_ms,
                )
            return found

    def _exists(self, topic: str, partition: int) -> bool:
        """Whether the partition was ever written (in this layout or an earlier version's)."""
        folder = self.root / topic
        return (folder / str(partition)).is_dir() or (folder / f"{partition}.log").exists()

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
            found = self._partition(topic, partition)
            with _classified(f"append to {found.folder} ({topic}/{partition})"):
                first = found.append(batch, timestamp_ms)
            for n, i in enumerate(indices):
                positions[i] = (partition, first + n)
        return positions

    def read_batch(self, topic: str, partition: int, offset: int, max_records: int) -> RecordBatch:
        """See :meth:`EventLog.read_batch`; an ``offset`` before the log start (retention
        deleted its segment) reads from the log start, logged and counted in
        :attr:`offset_resets` (``auto.offset.reset=earliest``)."""
        if offset < 0:
            raise ValueError(f"offset must be >= 0, got {offset}")
        found = self._partition(topic, partition)
        if max_records <= 0:
            return RecordBatch(topic, partition)
        with _classified(f"read {found.folder} ({topic}/{partition}) at offset {offset}"):
            batch, skipped = found.read_batch(offset, max_records)
        if skipped:
            tp = TopicPartition(topic, partition)
            with self._lock:
                self.offset_resets[tp] = self.offset_resets.get(tp, 0) + 1
            logger.warning(
                "event log %s/%d: offset %d is before the log start %d (retention deleted its "
                "segment): reading from %d, %d records skipped (auto.offset.reset=earliest)",
                topic,
                partition,
                offset,
                offset + skipped,
                offset + skipped,
                skipped,
            )
        return batch

    def end_offset(self, topic: str, partition: int) -> int:
        found = self._partition(topic, partition)
        with _classified(f"read the end of {found.folder} ({topic}/{partition})"):
            return found.end_offset()

    def start_offset(self, topic: str, partition: int) -> int:
        """The log start offset: the first offset retention has kept (0 until it drops one)."""
        found = self._partition(topic, partition)
        with _classified(f"read the start of {found.folder} ({topic}/{partition})"):
            return found.start_offset()

    def segment_paths(self, topic: str, partition: int) -> list[Path]:
        """The partition's segment files, oldest first (the last is the active segment)."""
        found = self._partition(topic, partition)
        with _classified(f"list the segments of {found.folder} ({topic}/{partition})"):
            return found.segment_paths()

    def erase(self, topic: str, match: RecordMatch) -> LogErasure:
        """Redact the records ``match`` picks in each segment holding one
        (:meth:`_Partition.erase`); other processes reopen a replaced segment at their next
        read of it or their next append to it."""
        if not (self.root / check_topic(topic) / TOPIC_FILE).exists():
            return LogErasure(topic)
        records = files = 0
        for partition in range(self.partitions(topic)):
            if not self._exists(topic, partition):
                continue
            found = self._partition(topic, partition)
            with _classified(f"erase records of {found.folder} ({topic}/{partition})"):
                redacted, rewritten = found.erase(match)
            records, files = records + redacted, files + rewritten
        return LogErasure(topic, records=records, files=files)

    # -- retention (c360.logs.base.Truncatable) ------------------------------------------------
    def offset_at(self, topic: str, partition: int, timestamp_ms: int) -> int:
        """The first offset appended at or after ``timestamp_ms``, the end offset if none
        (reads the append times of the segments up to it)."""
        found = self._partition(topic, partition)
        with _classified(f"look up {found.folder} ({topic}/{partition}) by time"):
            return found.offset_at(timestamp_ms)

    def drop_before(self, topic: str, partition: int, offset: int) -> int:
        """Delete the segments wholly below ``offset`` (never the active one, nor the newest
        holding records): the records that went, which may be fewer than ``offset`` minus the
        log start — a segment reaching past ``offset`` stays whole."""
        found = self._partition(topic, partition)
        with _classified(f"delete old segments of {found.folder} ({topic}/{partition})"):
            return found.drop_before(offset)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            partitions, self._partitions = list(self._partitions.values()), {}
        for found in partitions:
            found.close()
