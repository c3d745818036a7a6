"""Partition writes with an atomic commit, and partition listing for readers.

File-system errors are classified here, once, as they leave the lake (whatever fsspec
implementation raised them): a passing failure (a timeout, a dropped connection, an I/O error)
is a :class:`~c360.errors.TransientError`; one a retry cannot fix (permission denied, a missing
bucket or folder, a full disk or quota, a read-only file system) a
:class:`~c360.errors.TerminalError` naming the path and ``lake.url``. A partition that is not
there is a :class:`~c360.errors.NotFoundError` when it is read, and absent from
:meth:`Lake.partitions`. Errors of the data being written (the caller's batches) pass through
unchanged, as do :class:`SchemaDriftError` and the other c360 errors.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from c360.errors import (
    C360Error,
    ConfigError,
    DataError,
    NotFoundError,
    TerminalError,
    TransientError,
    classify_os_error,
)
from c360.masking import mask_secrets

log = logging.getLogger(__name__)

MANIFEST = "_manifest.json"
STAGING = "_staging"
DATA_FILE = "part-0.parquet"
# zstd: half the size of snappy on the archived JSON payloads, and as fast to write.
COMPRESSION = "zstd"
# A staged folder this old belongs to a writer that died (writes take seconds to minutes).
STALE_STAGING = dt.timedelta(hours=6)
# How often a scratch folder in use is marked fresh (well within STALE_STAGING), and its marker.
SCRATCH_REFRESH = dt.timedelta(hours=1)
SCRATCH_MARKER = ".in-use"
STATE = "_state"
LAKE_URL = "lake.url"


# The rows of a batch to keep, given the (source, table) it is written to.
RowFilter = Callable[[str, str, pa.RecordBatch], pa.RecordBatch]


class SchemaDriftError(DataError):
    """A source column changed type or vanished: the table fails, the lake is untouched."""


@dataclass(frozen=True)
class PartitionManifest:
    """What a committed partition holds; written last, so its presence means complete."""

    source: str
    table: str
    dt: str
    rows: int
    bytes: int
    sha256: str
    schema: dict[str, str]
    high_water_mark: str | None
    committed_at: str
    added_columns: tuple[str, ...] = ()


def classify(error: BaseException, what: str) -> C360Error | None:
    """The c360 error for a file-system failure, or None when ``error`` is not one.

    ``OSError`` and its kin (``PermissionError``, ``FileNotFoundError``, ``ConnectionError``,
    ``TimeoutError``, fsspec's ``FSTimeoutError``) follow
    :func:`~c360.errors.classify_os_error`; an HTTP client error an fsspec implementation lets
    through (aiohttp's, recognised without importing it) is terminal for a 4xx answer other
    than 408/429 (credentials, a wrong URL) and transient otherwise (no answer, 5xx).
    """
    if isinstance(error, C360Error):
        return None
    if isinstance(error, OSError):
        return classify_os_error(error, what, LAKE_URL)
    if type(error).__module__.partition(".")[0] == "aiohttp":
        status = getattr(error, "status", None)
        reason = f"{type(error).__name__}" + (f" (HTTP {status})" if status else "")
        if isinstance(status, int) and 400 <= status < 500 and status not in (408, 429):
            return TerminalError(f"{what}: {reason}; check {LAKE_URL} and its credentials")
        return TransientError(f"{what}: {reason}; retry later")
    return None


class _Batches:
    """The caller's batches; remembers the error they raised, which is not the lake's."""

    def __init__(self, batches: Iterable[pa.RecordBatch]) -> None:
        self._batches = batches
        self.error: BaseException | None = None

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        try:
            yield from self._batches
        except BaseException as exc:
            self.error = exc
            raise


class Lake:
    """A lake rooted at a folder path or an fsspec URL."""

    def __init__(self, url: str, keep: RowFilter | None = None) -> None:
        self.keep = keep  # applied to every batch written to the raw zone (suppression)
        try:
            self.fs, root = fsspec.core.url_to_fs(url)
        except (ValueError, ImportError) as exc:  # an unknown protocol, a missing fsspec package
            raise ConfigError(LAKE_URL, f"{mask_secrets(url)!r}: {exc}") from None
        except Exception as exc:
            error = classify(exc, f"lake: cannot open {mask_secrets(url)!r}")
            if error is None:
                raise
            raise error from exc
        self.root = root.rstrip("/")
        self.is_local = isinstance(self.fs, LocalFileSystem)

    @contextmanager
    def _io(self, action: str, path: str, data: _Batches | None = None) -> Iterator[None]:
        """Classify the file-system errors of the block (see the module docstring)."""
        try:
            yield
        except Exception as exc:
            if data is not None and exc is data.error:
                raise
            where = path if self.is_local else self.fs.unstrip_protocol(path)
            error = classify(exc, f"lake: cannot {action} {where}")
            if error is None:
                raise
            raise error from exc

    # -- paths -----------------------------------------------------------------------------
    def table_path(self, source: str, table: str, zone: str = "raw") -> str:
        return f"{self.root}/{zone}/{source}/{table}"

    def partition_path(self, source: str, table: str, day: dt.date, zone: str = "raw") -> str:
        return f"{self.table_path(source, table, zone)}/dt={day.isoformat()}"

    def glob_url(self, source: str, table: str, zone: str = "raw") -> str:
        """A URL of every committed data file of a table (for DuckDB's read_parquet)."""
        return self.url(f"{self.table_path(source, table, zone)}/dt=*/*.parquet")

    def url(self, path: str) -> str:
        """``path`` (of this lake's filesystem) as readers outside fsspec take it: a local
        path, or a URL with its protocol (DuckDB's read_parquet, Spark)."""
        return path if self.is_local else self.fs.unstrip_protocol(path)

    @contextmanager
    def scratch(self) -> Iterator[str]:
        """A new empty folder for data in passing, as a URL (:meth:`url`), removed when the
        ``with`` block ends, however it ends.

        It lives under the lake's staging folder, so what can reach the lake reaches it (a
        compute engine's workers and the in-process session hand tables over through it),
        and a folder a killed process left behind is swept with the staged writes
        (:meth:`sweep_staging`)."""
        path = self._new_staging()
        done = threading.Event()
        keeper = threading.Thread(
            target=self._keep_fresh, args=(path, done), name="lake-scratch", daemon=True
        )
        keeper.start()
        try:
            yield self.url(path)
        finally:
            done.set()
            keeper.join()
            self._discard(path)

    def _keep_fresh(self, path: str, done: threading.Event) -> None:
        """Renew a scratch folder's modification time until ``done``: an engine may read it
        for longer than :data:`STALE_STAGING` (Splink on Spark trains and predicts from one
        folder), and :meth:`sweep_staging` takes folders by that time. A marker file is
        removed and created again each :data:`SCRATCH_REFRESH`, which changes the folder."""
        marker = f"{path}/{SCRATCH_MARKER}"
        while not done.wait(SCRATCH_REFRESH.total_seconds()):
            try:
                if self.fs.exists(marker):
                    self.fs.rm(marker)
                self.fs.touch(marker)
            except Exception as exc:  # the sweep may take it after all; the run goes on
                log.warning("lake: could not keep scratch folder %s fresh (%s)", path, exc)

    # -- writes ----------------------------------------------------------------------------
    def write_partition(
        self,
        source: str,
        table: str,
        day: dt.date,
        batches: Iterable[pa.RecordBatch] | pa.Table,
        *,
        schema: pa.Schema | None = None,
        high_water_mark: str | Callable[[], str | None] | None = None,
        zone: str = "raw",
    ) -> PartitionManifest:
        """Write one partition aside, then commit it in place of any previous version.

        ``high_water_mark`` may be a callable, asked once all batches are written (so it can
        describe what a streamed extract actually read). The schema is checked against the
        table's latest partition first: new columns are allowed (and reported), a changed or
        dropped column raises :class:`SchemaDriftError` before anything is written.
        """
        if isinstance(batches, pa.Table):
            schema = schema or batches.schema
            batches = batches.to_batches()
        if schema is None:
            raise ValueError("schema is required when writing from record batches")
        if self.keep is not None and zone == "raw":
            keep = self.keep
            batches = (keep(source, table, batch) for batch in batches)
        added = self.check_schema(source, table, schema, zone)
        self.sweep_staging()
        staging = self._new_staging()
        final = self.partition_path(source, table, day, zone)
        data = _Batches(batches)
        try:
            with self._io("write", final, data):
                manifest = self._write_staged(staging, source, table, day, data, schema)
            mark = high_water_mark() if callable(high_water_mark) else high_water_mark
            manifest = replace(manifest, high_water_mark=mark, added_columns=added)
            with self._io("write", final), self.fs.open(f"{staging}/{MANIFEST}", "w") as handle:
                json.dump(asdict(manifest), handle, indent=2)
        except BaseException:
            self._discard(staging)
            raise
        with self._io("commit", final):
            self._commit(staging, final)
        return manifest

    def rewrite_partition(
        self, source: str, table: str, day: dt.date, rows: pa.Table, zone: str = "raw"
    ) -> PartitionManifest:
        """Replace a committed partition's rows (erasure): written aside and committed like any
        write, so a reader sees the old partition or the new one, never half of one. The schema
        is the partition's own (not checked against the latest partition: an old partition may
        lack a column added since), and the manifest keeps its schema and high-water mark."""
        before = self.manifest(source, table, day, zone)
        staging = self._new_staging()
        final = self.partition_path(source, table, day, zone)
        try:
            with self._io("write", final):
                manifest = self._write_staged(
                    staging, source, table, day, rows.to_batches(), rows.schema
                )
                manifest = replace(
                    manifest,
                    # the schema as written (read back, a list's item is named "element")
                    schema=before["schema"],
                    high_water_mark=before.get("high_water_mark"),
                    added_columns=tuple(before.get("added_columns", ())),
                )
                with self.fs.open(f"{staging}/{MANIFEST}", "w") as handle:
                    json.dump(asdict(manifest), handle, indent=2)
        except BaseException:
            self._discard(staging)
            raise
        with self._io("commit", final):
            self._commit(staging, final)
        return manifest

    def tables(self) -> list[tuple[str, str, str]]:
        """(zone, source, table) of every table folder with committed partitions."""
        found = []
        for zone in self.folders(""):
            if zone.startswith("_"):
                continue
            for source in self.folders(zone):
                for table in self.folders(f"{zone}/{source}"):
                    if self.partitions(source, table, zone):
                        found.append((zone, source, table))
        return found

    def _new_staging(self) -> str:
        """A new empty folder under the staging folder (swept by :meth:`sweep_staging` if its
        writer dies)."""
        path = f"{self.root}/{STAGING}/{uuid.uuid4().hex}"
        with self._io("create", path):
            self.fs.makedirs(path, exist_ok=True)
        return path

    def _discard(self, staging: str) -> None:
        """Remove a staged folder after a failed write; the sweep removes it if this fails."""
        try:
            self.fs.rm(staging, recursive=True)
        except Exception as exc:  # the write's own error matters more
            log.warning("lake: could not remove %s (%s); a later write sweeps it", staging, exc)

    def sweep_staging(self, older_than: dt.timedelta = STALE_STAGING) -> int:
        """Remove staged folders a killed writer left behind (older than any live write)."""
        base = f"{self.root}/{STAGING}"
        limit = dt.datetime.now(dt.UTC) - older_than
        removed = 0
        with self._io("sweep", base):
            if not self.fs.exists(base):
                return 0
            for path in self.fs.ls(base, detail=False):
                try:
                    modified = self.fs.modified(path)
                except (NotImplementedError, OSError):
                    continue  # a filesystem without times (or it is gone): leave it
                if modified.tzinfo is None:
                    modified = modified.replace(tzinfo=dt.UTC)
                if modified < limit:
                    try:
                        self.fs.rm(path, recursive=True)
                    except FileNotFoundError:
                        continue  # another writer swept it
                    removed += 1
        return removed

    def _write_staged(
        self,
        staging: str,
        source: str,
        table: str,
        day: dt.date,
        batches: Iterable[pa.RecordBatch],
        schema: pa.Schema,
    ) -> PartitionManifest:
        data_path = f"{staging}/{DATA_FILE}"
        rows = 0
        with (
            self.fs.open(data_path, "wb") as handle,
            pq.ParquetWriter(handle, schema, compression=COMPRESSION) as writer,
        ):
            for batch in batches:
                writer.write_batch(batch)
                rows += batch.num_rows
        return PartitionManifest(
            source=source,
            table=table,
            dt=day.isoformat(),
            rows=rows,
            bytes=int(self.fs.size(data_path)),
            sha256=self._sha256(data_path),
            schema={field.name: str(field.type) for field in schema},
            high_water_mark=None,
            committed_at=dt.datetime.now(dt.UTC).isoformat(),
        )

    def check_schema(
        self, source: str, table: str, schema: pa.Schema, zone: str = "raw"
    ) -> tuple[str, ...]:
        """New columns of ``schema`` against the latest partition; raises on incompatible drift."""
        days = self.partitions(source, table, zone)
        if not days:
            return ()
        before: dict[str, str] = self.manifest(source, table, days[-1], zone)["schema"]
        now = {f.name: str(f.type) for f in schema}
        for name, old_type in before.items():
            if name not in now:
                raise SchemaDriftError(
                    f"{source}.{table}: column {name!r} ({old_type}) is gone from the source; "
                    "restore it or migrate the lake table"
                )
            if now[name] != old_type:
                raise SchemaDriftError(
                    f"{source}.{table}: column {name!r} changed type from {old_type} to "
                    f"{now[name]}; earlier partitions are untouched"
                )
        added = tuple(name for name in now if name not in before)
        for name in added:
            log.warning("%s.%s: new column %r (%s) added", source, table, name, now[name])
        return added

    def write_quarantine(self, source: str, table: str, day: dt.date, rejected: pa.Table) -> None:
        """Rows that failed validation, with the reason; an empty set clears the date."""
        if rejected.num_rows:
            self.write_partition(source, table, day, rejected, zone="quarantine")
            return
        self.drop_partition(source, table, day, zone="quarantine")

    def _commit(self, staging: str, final: str) -> None:
        """Swap the staged folder in; the old version is moved aside first, then deleted.

        If the swap fails, the old version is moved back (and the staged folder removed), so
        readers keep the previous partition.
        """
        self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
        retired = None
        if self.fs.exists(final):
            retired = f"{self.root}/{STAGING}/retired-{uuid.uuid4().hex}"
            self.fs.mv(final, retired, recursive=True)
        try:
            self.fs.mv(staging, final, recursive=True)
        except BaseException:
            if retired is not None:
                self._restore(retired, final)
            self._discard(staging)
            raise
        if retired:
            self._discard(retired)

    def _restore(self, retired: str, final: str) -> None:
        try:
            if self.fs.exists(final):  # half a move on an object store
                self.fs.rm(final, recursive=True)
            self.fs.mv(retired, final, recursive=True)
        except Exception as exc:
            log.error(
                "lake: the previous version of %s is at %s and could not be moved back (%s): "
                "move it back by hand",
                final,
                retired,
                exc,
            )

    def _sha256(self, path: str) -> str:
        digest = hashlib.sha256()
        with self.fs.open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()

    # -- reads -----------------------------------------------------------------------------
    def partitions(self, source: str, table: str, zone: str = "raw") -> list[dt.date]:
        """Committed partition dates of a table, oldest first ([] for a table not written)."""
        base = self.table_path(source, table, zone)
        days = []
        with self._io("list", base):
            try:
                listed = self.fs.ls(base, detail=False) if self.fs.exists(base) else []
            except FileNotFoundError:
                listed = []
            for path in listed:
                name = str(path).rstrip("/").rsplit("/", 1)[-1]
                if name.startswith("dt=") and self.fs.exists(f"{path}/{MANIFEST}"):
                    days.append(dt.date.fromisoformat(name[3:]))
        return sorted(days)

    def manifest(self, source: str, table: str, day: dt.date, zone: str = "raw") -> dict[str, Any]:
        """The manifest of a committed partition; :class:`NotFoundError` if there is none."""
        path = f"{self.partition_path(source, table, day, zone)}/{MANIFEST}"
        text = self._read_bytes(path)
        if text is None:
            missing = f"{zone}/{source}/{table} has no partition dt={day}"
            raise NotFoundError(f"lake: {missing} ({path})")
        try:
            loaded: dict[str, Any] = json.loads(text)
        except ValueError as exc:
            raise DataError(f"lake: manifest {path} is not JSON ({exc})") from None
        return loaded

    def drop_partition(self, source: str, table: str, day: dt.date, zone: str = "raw") -> None:
        path = self.partition_path(source, table, day, zone)
        with self._io("remove", path), contextlib.suppress(FileNotFoundError):  # none to drop
            self.fs.rm(path, recursive=True)

    def read_partition(
        self,
        source: str,
        table: str,
        day: dt.date,
        zone: str = "raw",
        columns: list[str] | None = None,
    ) -> pa.Table:
        """The rows of a committed partition (only ``columns``, when given);
        :class:`NotFoundError` if there is none."""
        path = f"{self.partition_path(source, table, day, zone)}/{DATA_FILE}"
        with self._io("read", path):
            try:
                with self.fs.open(path, "rb") as handle:
                    return pq.read_table(handle, columns=columns)
            except FileNotFoundError:
                missing = f"{zone}/{source}/{table} has no partition dt={day}"
                raise NotFoundError(f"lake: {missing} ({path})") from None

    def _read_bytes(self, path: str) -> bytes | None:
        """The bytes of a file, None if it is not there."""
        with self._io("read", path):
            try:
                with self.fs.open(path, "rb") as handle:
                    data: bytes = handle.read()
                    return data
            except FileNotFoundError:
                return None

    # -- artefact folders (the model registry) ----------------------------------------------------
    def write_folder(self, folder: str, files: Mapping[str, bytes]) -> str:
        """Write ``files`` (name -> bytes) as the new folder ``<root>/<folder>``: staged aside,
        then renamed into place, so a reader sees all of them or none; an existing folder is
        refused (:class:`DataError`). Returns its path."""
        final = f"{self.root}/{folder}"
        staging = f"{self.root}/{STAGING}/{uuid.uuid4().hex}"
        with self._io("write", final):
            if self.fs.exists(final):
                raise DataError(f"lake: {final} exists already; artefact folders are immutable")
            self.fs.makedirs(staging, exist_ok=True)
            for name, data in files.items():
                with self.fs.open(f"{staging}/{name}", "wb") as handle:
                    handle.write(data)
            self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
            self.fs.mv(staging, final, recursive=True)
        return self.url(final)

    def read_file(self, path: str) -> bytes | None:
        """The bytes of ``<root>/<path>``, None if it is not there."""
        return self._read_bytes(f"{self.root}/{path}")

    def folders(self, path: str) -> list[str]:
        """The names of the folders in ``<root>/<path>`` (none if it is not there), sorted."""
        where = f"{self.root}/{path}"
        with self._io("list", where):
            try:
                entries = self.fs.ls(where, detail=True)
            except FileNotFoundError:
                return []
        return sorted(
            e["name"].rstrip("/").rsplit("/", 1)[-1] for e in entries if e["type"] == "directory"
        )

    # -- small state files (the archive's offsets) ---------------------------------------------
    def read_state(self, name: str) -> dict[str, Any] | None:
        """The JSON object stored as ``_state/<name>``, None if there is none."""
        path = f"{self.root}/{STATE}/{name}"
        text = self._read_bytes(path)
        if text is None:
            return None
        try:
            loaded: dict[str, Any] = json.loads(text)
        except ValueError as exc:
            raise DataError(f"lake: state file {path} is not JSON ({exc})") from None
        return loaded

    def write_state(self, name: str, data: dict[str, Any]) -> None:
        """Store ``data`` as ``_state/<name>``: written aside, then renamed into place."""
        path = f"{self.root}/{STATE}/{name}"
        staged = f"{path}.{uuid.uuid4().hex}.tmp"
        with self._io("write", path):
            self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            with self.fs.open(staged, "w") as handle:
                json.dump(data, handle, indent=2)
            self.fs.mv(staged, path)
