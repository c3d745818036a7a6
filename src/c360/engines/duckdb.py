"""DuckDB engine (embedded default): in-process, reads the lake's Parquet directly."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import duckdb
import pyarrow as pa

from c360.engines.base import LakeInput, Step, StepError

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


class DuckDBEngine:
    name = "duckdb"

    def __init__(self, threads: int = 0, memory_limit: str = "") -> None:
        self.conn = duckdb.connect()
        if threads:
            self.conn.execute(f"SET threads = {int(threads)}")
        if memory_limit:
            self.conn.execute(f"SET memory_limit = {_quote(memory_limit)}")
        self.conn.execute("SET TimeZone = 'UTC'")

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
        self, inputs: Sequence[LakeInput], steps: Sequence[Step], outputs: Sequence[str]
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
