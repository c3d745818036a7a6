"""DuckDB engine (embedded default): in-process, reads the lake's Parquet directly."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import duckdb
import pyarrow as pa

from c360.config import ComputeSettings
from c360.contracts.compute import LakeInput, SqlStep, StepError
from c360.errors import ConfigError

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


def configure(conn: duckdb.DuckDBPyConnection, threads: int = 0, memory_limit: str = "") -> None:
    """Apply ``compute.threads`` and ``compute.memory_limit`` (0 / empty: DuckDB's defaults)."""
    if threads:
        conn.execute(f"SET threads = {int(threads)}")
    if memory_limit:
        try:
            conn.execute("SET memory_limit = ?", [memory_limit])
        except duckdb.Error as exc:
            raise ConfigError("compute.memory_limit", f"{memory_limit!r}: {exc}") from exc


class DuckDBEngine:
    name = "duckdb"

    def __init__(self, threads: int = 0, memory_limit: str = "") -> None:
        self.conn = duckdb.connect()
        configure(self.conn, threads, memory_limit)
        self.conn.execute("SET TimeZone = 'UTC'")

    @classmethod
    def for_compute(cls, settings: ComputeSettings) -> DuckDBEngine:
        """An engine bounded by the ``compute`` section (threads, memory_limit)."""
        return cls(threads=settings.threads, memory_limit=settings.memory_limit)

    def _register(self, source: LakeInput) -> None:
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

    def run(
        self, inputs: Sequence[LakeInput], steps: Sequence[SqlStep], outputs: Sequence[str]
    ) -> Mapping[str, pa.Table]:
        for source in inputs:
            self._register(source)
        for step in steps:
            try:
                self.conn.execute(f"CREATE OR REPLACE TEMP TABLE {step.name} AS {step.sql}")
            except duckdb.Error as exc:
                raise StepError(step, exc) from exc
        return {name: self.conn.sql(f"SELECT * FROM {name}").to_arrow_table() for name in outputs}

    def close(self) -> None:
        self.conn.close()
