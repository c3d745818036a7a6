"""The lake's partition commit: atomic, idempotent, described by a manifest."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from c360.lake import Lake

DAY = dt.date(2025, 3, 1)
SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string())])


def batch(ids: list[int]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([{"id": i, "name": f"n{i}"} for i in ids], schema=SCHEMA)


@pytest.fixture(params=["local", "memory"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Lake]:
    if request.param == "local":
        yield Lake(str(tmp_path / "lake"))
        return
    root = f"memory://lake-{uuid.uuid4().hex}"
    lake = Lake(root)
    yield lake
    if lake.fs.exists(lake.root):
        lake.fs.rm(lake.root, recursive=True)


def test_partition_layout_and_manifest(lake: Lake) -> None:
    manifest = lake.write_partition(
        "shop",
        "orders",
        DAY,
        [batch([1, 2]), batch([3])],
        schema=SCHEMA,
        high_water_mark="2025-03-01T23:59:59",
    )
    assert lake.partitions("shop", "orders") == [DAY]
    assert lake.partition_path("shop", "orders", DAY).endswith("raw/shop/orders/dt=2025-03-01")
    stored = lake.manifest("shop", "orders", DAY)
    assert stored["rows"] == manifest.rows == 3
    assert stored["schema"] == {"id": "int64", "name": "string"}
    assert stored["high_water_mark"] == "2025-03-01T23:59:59"
    with lake.fs.open(f"{lake.partition_path('shop', 'orders', DAY)}/part-0.parquet", "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == stored["sha256"]
    assert lake.read_partition("shop", "orders", DAY).column("id").to_pylist() == [1, 2, 3]


def test_rewrite_replaces_exactly(lake: Lake) -> None:
    lake.write_partition("shop", "orders", DAY, pa.Table.from_batches([batch([1, 2, 3])]))
    lake.write_partition("shop", "orders", DAY, pa.Table.from_batches([batch([7])]))
    assert lake.read_partition("shop", "orders", DAY).column("id").to_pylist() == [7]
    assert lake.partitions("shop", "orders") == [DAY]


def test_failure_mid_write_leaves_previous_partition_and_no_debris(lake: Lake) -> None:
    lake.write_partition("shop", "orders", DAY, pa.Table.from_batches([batch([1, 2])]))

    def failing() -> Iterator[pa.RecordBatch]:
        yield batch([10, 11])
        raise RuntimeError("source connection dropped")

    with pytest.raises(RuntimeError, match="dropped"):
        lake.write_partition("shop", "orders", DAY, failing(), schema=SCHEMA)
    assert lake.read_partition("shop", "orders", DAY).column("id").to_pylist() == [1, 2]
    assert lake.fs.ls(f"{lake.root}/_staging", detail=False) == []


def test_a_partition_without_manifest_is_not_listed(lake: Lake) -> None:
    lake.write_partition("shop", "orders", DAY, pa.Table.from_batches([batch([1])]))
    half = lake.partition_path("shop", "orders", DAY + dt.timedelta(days=1))
    lake.fs.makedirs(half, exist_ok=True)
    with lake.fs.open(f"{half}/part-0.parquet", "wb") as f:
        f.write(b"PAR1 truncated")
    assert lake.partitions("shop", "orders") == [DAY]


def test_writing_batches_needs_a_schema(lake: Lake) -> None:
    with pytest.raises(ValueError, match="schema"):
        lake.write_partition("shop", "orders", DAY, [batch([1])])


def test_incompatible_drift_fails_the_table_and_keeps_the_lake(lake: Lake) -> None:
    from c360.lake import SchemaDriftError

    lake.write_partition("shop", "orders", DAY, pa.Table.from_batches([batch([1])]))
    changed = pa.table({"id": ["1"], "name": ["n1"]})
    with pytest.raises(SchemaDriftError, match="'id' changed type from int64 to string"):
        lake.write_partition("shop", "orders", DAY + dt.timedelta(days=1), changed)
    with pytest.raises(SchemaDriftError, match=r"'name' .* is gone"):
        lake.write_partition("shop", "orders", DAY + dt.timedelta(days=1), pa.table({"id": [1]}))
    assert lake.partitions("shop", "orders") == [DAY]
    widened = pa.table({"id": [2], "name": ["n2"], "coupon": ["X"]})
    manifest = lake.write_partition("shop", "orders", DAY + dt.timedelta(days=1), widened)
    assert manifest.added_columns == ("coupon",)


def test_folders_left_by_a_killed_writer_are_swept(tmp_path: Path) -> None:
    import os
    import time

    lake = Lake(str(tmp_path / "lake"))
    stale = tmp_path / "lake" / "_staging" / "dead-writer"
    stale.mkdir(parents=True)
    (stale / "part-0.parquet").write_bytes(b"PAR1 half")
    old = time.time() - 7 * 3600
    os.utime(stale, (old, old))
    fresh = tmp_path / "lake" / "_staging" / "live-writer"
    fresh.mkdir()
    lake.write_partition("shop", "orders", DAY, pa.Table.from_batches([batch([1])]))
    assert not stale.exists() and fresh.exists()
