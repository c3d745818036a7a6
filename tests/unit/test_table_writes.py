"""Session tables written to the lake two at a time: the files one stream per table writes,
and a failure anywhere leaves no table with half a partition."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from c360.config import ComputeSettings
from c360.contracts.compute import LocalSql
from c360.engines import open_compute
from c360.lake import Lake
from c360.lake.store import DATA_FILE, STAGING
from c360.pipeline.table_writes import ROW_GROUP_ROWS, Output, write_tables

DAY = dt.date(2025, 3, 1)
SOURCE, ZONE = "identity", "features"
BATCH_ROWS = 250_000
WIDE = pa.schema([("key", pa.string()), ("n", pa.int64()), ("note", pa.string())])
NARROW = pa.schema([("key", pa.string())])
ROWS = 9 * ROW_GROUP_ROWS + 1_234  # three slices and more
PART = 300_000


@pytest.fixture(scope="module")
def local() -> Iterator[LocalSql]:
    with open_compute(ComputeSettings(threads=2)).local() as session:
        # Two tables' rows, so that a row group short of DuckDB's size sits in the middle.
        rows = (
            "SELECT 'mysql/order:' || range AS key, range * 7 AS n, "
            "CASE WHEN range % 5 = 0 THEN NULL ELSE 'x' || (range % 97) END AS note "
            "FROM range({}, {})"
        )
        session.execute(f"CREATE TEMP TABLE part_a AS {rows.format(0, PART)}")
        session.execute(f"CREATE TEMP TABLE part_b AS {rows.format(PART, ROWS)}")
        session.execute(
            "CREATE TEMP TABLE wide AS SELECT * FROM part_a UNION ALL SELECT * FROM part_b"
        )
        session.execute("CREATE TEMP TABLE wide_copy AS SELECT * FROM wide")
        session.execute("CREATE TEMP TABLE small AS SELECT 'k' || range AS key FROM range(10)")
        session.execute("CREATE TEMP TABLE empty AS SELECT 'k' AS key WHERE false")
        session.execute("CREATE TEMP VIEW odd AS SELECT key FROM wide WHERE n % 2 = 1")
        # A text column the schema calls an integer: the cast fails in the fourth row group.
        session.execute(
            "CREATE TEMP TABLE bad AS SELECT key, CASE WHEN n = 7 * 400000 THEN 'x' "
            "ELSE n::VARCHAR END AS n, note FROM wide"
        )
        yield session


OUTPUTS: list[Output] = [
    ("wide", "wide", WIDE),
    ("small", "small", NARROW),
    ("empty", "empty", NARROW),
    ("odd", "odd", NARROW),
    ("wide_copy", "wide_copy", WIDE),
]


def _one_stream_each(local: LocalSql, lake: Lake, outputs: Sequence[Output]) -> None:
    """The writes as they were: one table after another, each one stream."""
    for name, table, schema in outputs:
        sql = f"SELECT {', '.join(schema.names)} FROM {table}"
        batches = (batch.cast(schema) for batch in local.batches(sql, BATCH_ROWS))
        lake.write_partition(SOURCE, name, DAY, batches, schema=schema, zone=ZONE)


def _committed(lake: Lake) -> dict[str, dict[str, Any]]:
    return {
        table: lake.manifest(SOURCE, table, DAY, ZONE)
        for table in lake.folders(f"{ZONE}/{SOURCE}")
        if lake.partitions(SOURCE, table, ZONE)
    }


def _row_groups(lake: Lake, table: str) -> list[int]:
    path = f"{lake.partition_path(SOURCE, table, DAY, ZONE)}/{DATA_FILE}"
    metadata = pq.ParquetFile(path).metadata
    return [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]


def _staged(lake: Lake) -> list[str]:
    return lake.folders(STAGING)


def test_the_files_are_those_one_stream_per_table_writes(local: LocalSql, tmp_path: Path) -> None:
    together, alone = Lake(str(tmp_path / "together")), Lake(str(tmp_path / "alone"))
    write_tables(local, together, DAY, OUTPUTS, source=SOURCE, zone=ZONE, batch_rows=BATCH_ROWS)
    _one_stream_each(local, alone, OUTPUTS)

    written, expected = _committed(together), _committed(alone)
    assert sorted(written) == sorted(name for name, _, _ in OUTPUTS)
    for name in written:
        assert written[name]["sha256"] == expected[name]["sha256"], name
        assert written[name]["rows"] == expected[name]["rows"], name
    assert written["wide"]["rows"] == ROWS
    groups = _row_groups(together, "wide")
    assert groups[2] == PART - 2 * ROW_GROUP_ROWS  # the short one, not at a slice end
    assert written["empty"]["rows"] == 0
    assert together.read_partition(SOURCE, "odd", DAY, ZONE).num_rows == ROWS // 2
    assert _staged(together) == []


def test_a_failing_writer_stops_the_writes_and_commits_no_half_partition(
    local: LocalSql, tmp_path: Path
) -> None:
    lake = Lake(str(tmp_path / "lake"))
    outputs: list[Output] = [
        ("wide", "wide", WIDE),
        ("bad", "bad", WIDE),
        ("small", "small", NARROW),
    ]
    with pytest.raises(pa.ArrowInvalid):
        write_tables(local, lake, DAY, outputs, source=SOURCE, zone=ZONE, batch_rows=BATCH_ROWS)

    committed = _committed(lake)
    assert "bad" not in committed
    assert "small" not in committed  # never started: the writes stop at the failure
    # The table written alongside was either finished before the failure or aborted.
    assert committed.get("wide", {"rows": ROWS})["rows"] == ROWS
    assert _staged(lake) == []


class _FailingReads:
    """A session whose reads of one table fail after its first slice."""

    def __init__(self, local: LocalSql, table: str) -> None:
        self._local = local
        self._table = table
        self.reads = 0

    def rows(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return self._local.rows(sql, params)

    def batches(self, sql: str, rows: int) -> Iterator[pa.RecordBatch]:
        if f"FROM {self._table} " in f"{sql} ":
            self.reads += 1
            if self.reads > 1:
                raise RuntimeError("the session went away")
        return self._local.batches(sql, rows)


def test_a_failing_read_aborts_the_writers_and_raises(local: LocalSql, tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    reads = _FailingReads(local, "wide_copy")
    outputs: list[Output] = [("wide_copy", "wide_copy", WIDE), ("wide", "wide", WIDE)]
    with pytest.raises(RuntimeError, match="the session went away"):
        write_tables(
            reads,  # type: ignore[arg-type]  # only rows and batches are used
            lake,
            DAY,
            outputs,
            source=SOURCE,
            zone=ZONE,
            batch_rows=BATCH_ROWS,
        )
    assert reads.reads == 2
    committed = _committed(lake)
    assert "wide_copy" not in committed
    assert committed.get("wide", {"rows": ROWS})["rows"] == ROWS
    assert _staged(lake) == []
