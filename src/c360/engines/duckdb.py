"""DuckDB (embedded default): the batch engine, every in-process session, Splink's DuckDBAPI.

:class:`DuckDBSession` is the in-process SQL session (:class:`~c360.contracts.compute.LocalSql`)
every c360 stage gets, whichever engine is configured; :func:`configure` bounds each one by
``compute.threads`` and ``compute.memory_limit``. :class:`DuckDBEngine` runs batch steps over the
lake's Parquet directly. :class:`DuckDBCompute` is the compute swap point on DuckDB: Splink
scores inside the caller's session, on its tables, without a copy.

This is the only module that imports duckdb.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Self

import duckdb
import pyarrow as pa

from c360.config import ComputeSettings
from c360.contracts.compute import LakeInput, Linkage, LocalSql, SqlStep, StepError
from c360.engines.base import EngineCompute, run_in
from c360.errors import ConfigError, DataError

_SQL_TYPES = {
    "string": "VARCHAR",
    "int64": "BIGINT",
    "int32": "INTEGER",
    "double": "DOUBLE",
    "bool": "BOOLEAN",
    "date32[day]": "DATE",
    "timestamp[us, tz=UTC]": "TIMESTAMPTZ",
}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _files(folder: str) -> str:
    """A scan of the Parquet files in ``folder`` (Spark's ``part-*`` or DuckDB's own)."""
    return f"read_parquet({_quote(folder.rstrip('/') + '/*.parquet')})"


def configure(conn: duckdb.DuckDBPyConnection, threads: int = 0, memory_limit: str = "") -> None:
    """Apply ``compute.threads`` and ``compute.memory_limit`` (0 / empty: DuckDB's defaults)."""
    if threads:
        conn.execute(f"SET threads = {int(threads)}")
    if memory_limit:
        try:
            conn.execute("SET memory_limit = ?", [memory_limit])
        except duckdb.Error as exc:
            raise ConfigError("compute.memory_limit", f"{memory_limit!r}: {exc}") from exc


class DuckDBSession:
    """An in-process DuckDB over Arrow tables and Parquet files, in UTC.

    Every DuckDB c360 opens is one: bounded by ``threads`` and ``memory_limit`` (0 / empty:
    DuckDB's defaults; a limit DuckDB rejects is a ConfigError naming compute.memory_limit).
    Past the limit its tables and operators spill to a folder of its own under the system's
    temporary directory (DuckDB's default is ``.tmp`` in the working directory), removed on
    :meth:`close`.
    """

    def __init__(self, threads: int = 0, memory_limit: str = "") -> None:
        self.conn = duckdb.connect()
        self._spill = tempfile.mkdtemp(prefix="c360-duckdb-")
        try:
            configure(self.conn, threads, memory_limit)
            self.conn.execute("SET TimeZone = 'UTC'")
            self.conn.execute("SET temp_directory = ?", [self._spill])
        except BaseException:
            self.close()
            raise

    @classmethod
    def for_compute(cls, settings: ComputeSettings) -> DuckDBSession:
        """A session bounded by the ``compute`` section (threads, memory_limit)."""
        return cls(threads=settings.threads, memory_limit=settings.memory_limit)

    def register(self, name: str, table: pa.Table) -> None:
        self.conn.register(name, table)

    def register_lake(self, inputs: Sequence[LakeInput]) -> None:
        """Each input as a view over its Parquet files (a declared column the files lack reads
        as NULL; an input without files is an empty view of its schema)."""
        for source in inputs:
            self._register_input(source)

    def _register_input(self, source: LakeInput) -> None:
        if source.urls:
            files = "[" + ", ".join(_quote(u) for u in source.urls) + "]"
            scan = f"read_parquet({files}, hive_partitioning = true, union_by_name = true)"
            present = {
                row[0] for row in self.conn.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()
            }
            # A declared column the files lack (an optional export column) reads as NULL.
            missing = "".join(
                f", CAST(NULL AS {_SQL_TYPES.get(str(f.type), 'VARCHAR')}) AS {f.name}"
                for f in source.schema
                if f.name not in present
            )
            self.conn.execute(
                f"CREATE OR REPLACE VIEW {source.name} AS SELECT *{missing} FROM {scan}"
            )
        else:
            empty = source.schema.append(pa.field("dt", pa.date32())).empty_table()
            self.conn.register(f"{source.name}__empty", empty)
            self.conn.execute(
                f"CREATE OR REPLACE VIEW {source.name} AS SELECT * FROM {source.name}__empty"
            )

    def unregister(self, name: str) -> None:
        self.conn.unregister(name)

    def load_parquet(self, name: str, folder: str) -> None:
        self.conn.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {_files(folder)}")

    def append_parquet(self, name: str, folder: str) -> None:
        columns = ", ".join(f'"{c}"' for c in self.conn.table(name).columns)
        try:
            self.conn.execute(
                f"INSERT INTO {name} ({columns}) SELECT {columns} FROM {_files(folder)}"
            )
        except duckdb.ConversionException as exc:
            raise DataError(f"{folder}: a value does not fit table {name!r}: {exc}") from exc

    def write_parquet(self, sql: str, path: str) -> None:
        self.conn.execute(f"COPY ({sql}) TO {_quote(path)} (FORMAT parquet)")

    def load(self, name: str, table: pa.Table) -> None:
        self.conn.register(f"{name}__arrow", table)
        try:
            self.conn.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {name}__arrow")
        finally:
            self.conn.unregister(f"{name}__arrow")

    def execute(self, sql: str, params: Sequence[object] = ()) -> None:
        self.conn.execute(sql, list(params))

    def rows(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, list(params)).fetchall()

    def table(self, sql: str) -> pa.Table:
        return self.conn.sql(sql).to_arrow_table()

    def batches(self, sql: str, rows: int) -> Iterator[pa.RecordBatch]:
        with self.conn.sql(sql).to_arrow_reader(rows) as reader:
            yield from reader

    def run(self, steps: Sequence[SqlStep], outputs: Sequence[str]) -> dict[str, pa.Table]:
        for step in steps:
            try:
                self.conn.execute(
                    f"CREATE OR REPLACE TEMP TABLE {step.name} AS {step.sql}", list(step.params)
                )
            except duckdb.Error as exc:
                raise StepError(step, exc) from exc
        return {name: self.table(f"SELECT * FROM {name}") for name in outputs}

    def close(self) -> None:
        self.conn.close()
        shutil.rmtree(self._spill, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DuckDBEngine:
    name = "duckdb"

    def __init__(self, threads: int = 0, memory_limit: str = "") -> None:
        self.session = DuckDBSession(threads, memory_limit)
        self.conn = self.session.conn

    @classmethod
    def for_compute(cls, settings: ComputeSettings) -> DuckDBEngine:
        """An engine bounded by the ``compute`` section (threads, memory_limit)."""
        return cls(threads=settings.threads, memory_limit=settings.memory_limit)

    def run(
        self, inputs: Sequence[LakeInput], steps: Sequence[SqlStep], outputs: Sequence[str]
    ) -> Mapping[str, pa.Table]:
        self.session.register_lake(inputs)
        return self.session.run(steps, outputs)

    def close(self) -> None:
        self.session.close()


class DuckDBCompute(EngineCompute):
    """The compute swap point on DuckDB: batch steps, sessions and Splink all in-process."""

    name = "duckdb"

    @contextmanager
    def linkage(self, local: LocalSql, table: str) -> Iterator[Linkage]:
        """Splink's DuckDBAPI on ``local``'s own connection: it scores ``table`` in place."""
        from splink import DuckDBAPI

        if not isinstance(local, DuckDBSession):
            raise TypeError(f"DuckDB links in a session of its own, not {type(local).__name__}")

        def to_session(frame: Any, name: str, columns: Sequence[str]) -> None:
            """Splink's table is one of the session's already: copied within DuckDB."""
            local.execute(
                f"CREATE OR REPLACE TEMP TABLE {name} AS "
                f"SELECT {', '.join(columns)} FROM {frame.physical_name}"
            )

        yield Linkage(DuckDBAPI(connection=local.conn), table, to_session)

    def run_into(
        self,
        local: LocalSql,
        inputs: Sequence[LakeInput],
        steps: Sequence[SqlStep],
        outputs: Sequence[str],
    ) -> None:
        """The steps in ``local`` itself, over views of the lake: nothing leaves DuckDB."""
        if not isinstance(local, DuckDBSession):
            raise TypeError(
                f"DuckDB runs steps in a session of its own, not {type(local).__name__}"
            )
        run_in(local, inputs, steps, outputs)
