"""Partition writes with an atomic commit, and partition listing for readers."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from c360.errors import DataError

log = logging.getLogger(__name__)

MANIFEST = "_manifest.json"
STAGING = "_staging"
DATA_FILE = "part-0.parquet"
# zstd: half the size of snappy on the archived JSON payloads, and as fast to write.
COMPRESSION = "zstd"
# A staged folder this old belongs to a writer that died (writes take seconds to minutes).
STALE_STAGING = dt.timedelta(hours=6)


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


class Lake:
    """A lake rooted at a folder path or an fsspec URL."""

    def __init__(self, url: str) -> None:
        self.fs, root = fsspec.core.url_to_fs(url)
        self.root = root.rstrip("/")
        self.is_local = isinstance(self.fs, LocalFileSystem)

    # -- paths -----------------------------------------------------------------------------
    def table_path(self, source: str, table: str, zone: str = "raw") -> str:
        return f"{self.root}/{zone}/{source}/{table}"

    def partition_path(self, source: str, table: str, day: dt.date, zone: str = "raw") -> str:
        return f"{self.table_path(source, table, zone)}/dt={day.isoformat()}"

    def glob_url(self, source: str, table: str, zone: str = "raw") -> str:
        """A URL of every committed data file of a table (for DuckDB's read_parquet)."""
        path = f"{self.table_path(source, table, zone)}/dt=*/*.parquet"
        return path if self.is_local else self.fs.unstrip_protocol(path)

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
        added = self.check_schema(source, table, schema, zone)
        self.sweep_staging()
        staging = f"{self.root}/{STAGING}/{uuid.uuid4().hex}"
        self.fs.makedirs(staging, exist_ok=True)
        try:
            manifest = self._write_staged(staging, source, table, day, batches, schema)
            mark = high_water_mark() if callable(high_water_mark) else high_water_mark
            manifest = replace(manifest, high_water_mark=mark, added_columns=added)
            with self.fs.open(f"{staging}/{MANIFEST}", "w") as handle:
                json.dump(asdict(manifest), handle, indent=2)
        except BaseException:
            self.fs.rm(staging, recursive=True)
            raise
        self._commit(staging, self.partition_path(source, table, day, zone))
        return manifest

    def sweep_staging(self, older_than: dt.timedelta = STALE_STAGING) -> int:
        """Remove staged folders a killed writer left behind (older than any live write)."""
        base = f"{self.root}/{STAGING}"
        if not self.fs.exists(base):
            return 0
        limit = dt.datetime.now(dt.UTC) - older_than
        removed = 0
        for path in self.fs.ls(base, detail=False):
            try:
                modified = self.fs.modified(path)
            except (NotImplementedError, FileNotFoundError, OSError):
                continue  # a filesystem without times: leave it
            if modified.tzinfo is None:
                modified = modified.replace(tzinfo=dt.UTC)
            if modified < limit:
                self.fs.rm(path, recursive=True)
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
        """Swap the staged folder in; the old version is moved aside first, then deleted."""
        self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
        retired = None
        if self.fs.exists(final):
            retired = f"{self.root}/{STAGING}/retired-{uuid.uuid4().hex}"
            self.fs.mv(final, retired, recursive=True)
        self.fs.mv(staging, final, recursive=True)
        if retired:
            self.fs.rm(retired, recursive=True)

    def _sha256(self, path: str) -> str:
        digest = hashlib.sha256()
        with self.fs.open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()

    # -- reads -----------------------------------------------------------------------------
    def partitions(self, source: str, table: str, zone: str = "raw") -> list[dt.date]:
        """Committed partition dates of a table, oldest first."""
        base = self.table_path(source, table, zone)
        if not self.fs.exists(base):
            return []
        days = []
        for path in self.fs.ls(base, detail=False):
            name = str(path).rstrip("/").rsplit("/", 1)[-1]
            if name.startswith("dt=") and self.fs.exists(f"{path}/{MANIFEST}"):
                days.append(dt.date.fromisoformat(name[3:]))
        return sorted(days)

    def manifest(self, source: str, table: str, day: dt.date, zone: str = "raw") -> dict[str, Any]:
        with self.fs.open(f"{self.partition_path(source, table, day, zone)}/{MANIFEST}") as f:
            loaded: dict[str, Any] = json.load(f)
        return loaded

    def drop_partition(self, source: str, table: str, day: dt.date, zone: str = "raw") -> None:
        path = self.partition_path(source, table, day, zone)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    def read_partition(self, source: str, table: str, day: dt.date, zone: str = "raw") -> pa.Table:
        path = f"{self.partition_path(source, table, day, zone)}/{DATA_FILE}"
        with self.fs.open(path, "rb") as handle:
            return pq.read_table(handle)
