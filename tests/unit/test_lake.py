"""The lake's partition commit: atomic, idempotent, described by a manifest."""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from c360.errors import ConfigError, NotFoundError, TerminalError, TransientError
from c360.lake import Lake, store
from c360.lake.store import classify

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


def _hand_over(lake: Lake, folder: str) -> None:
    """What an engine leaves in a scratch folder: a folder of files."""
    handed = f"{lake.fs._strip_protocol(folder)}/handed"
    lake.fs.makedirs(handed, exist_ok=True)
    lake.fs.pipe(f"{handed}/part-0.parquet", b"PAR1")


def test_a_scratch_folder_is_new_empty_and_gone_afterwards(lake: Lake) -> None:
    with lake.scratch() as one, lake.scratch() as two:
        assert one != two
        for folder in (one, two):
            path = lake.fs._strip_protocol(folder)
            assert path.startswith(f"{lake.root}/_staging/") and lake.fs.ls(path) == []
        _hand_over(lake, one)
    assert lake.fs.ls(f"{lake.root}/_staging", detail=False) == []


def test_a_scratch_folder_is_removed_when_its_block_fails(lake: Lake) -> None:
    with pytest.raises(RuntimeError, match="midway"), lake.scratch() as folder:
        _hand_over(lake, folder)
        raise RuntimeError("midway")
    assert lake.fs.ls(f"{lake.root}/_staging", detail=False) == []


def test_a_scratch_folder_in_use_is_never_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An engine may read a scratch folder for longer than the sweep's age (Splink on Spark):
    while the block runs, the folder is kept fresh, so another write's sweep leaves it."""
    monkeypatch.setattr(store, "SCRATCH_REFRESH", dt.timedelta(milliseconds=20))
    lake = Lake(str(tmp_path / "lake"))
    with lake.scratch() as folder:
        path = lake.fs._strip_protocol(folder)
        _hand_over(lake, folder)
        a_day_ago = time.time() - 86_400
        os.utime(path, (a_day_ago, a_day_ago))
        deadline = time.monotonic() + 5
        while os.stat(path).st_mtime < time.time() - 3600 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert lake.sweep_staging() == 0
        assert lake.fs.exists(f"{path}/handed/part-0.parquet")
    assert lake.fs.ls(f"{lake.root}/_staging", detail=False) == []


# -- file-system errors, classified once at the lake's boundary ---------------------------------


def fail_writes(
    monkeypatch: pytest.MonkeyPatch, lake: Lake, error: BaseException, *, after: int = 0
) -> None:
    """Make writes of data files fail with ``error`` after ``after`` bytes (reads still work)."""
    real_open = lake.fs.open

    class Failing:
        def __init__(self, handle: Any) -> None:
            self.handle, self.written = handle, 0

        def write(self, data: bytes) -> int:
            if self.written + len(data) > after:
                raise error
            self.written += len(data)
            return int(self.handle.write(data))

        def __getattr__(self, name: str) -> Any:
            return getattr(self.handle, name)

        def __enter__(self) -> Failing:
            return self

        def __exit__(self, *exc: object) -> None:
            self.handle.close()

    def opening(path: str, mode: str = "rb", **kwargs: Any) -> Any:
        handle = real_open(path, mode, **kwargs)
        return Failing(handle) if "w" in mode and path.endswith(".parquet") else handle

    monkeypatch.setattr(lake.fs, "open", opening)


@pytest.mark.parametrize(
    ("error", "kind", "message"),
    [
        (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), TransientError, ""),
        (TimeoutError("read timed out"), TransientError, "retry later"),
        (OSError(errno.EIO, "Input/output error"), TransientError, "retry later"),
        (PermissionError(errno.EACCES, "Permission denied"), TerminalError, "change lake.url"),
        (PermissionError("Access Denied"), TerminalError, "change lake.url"),  # s3fs-style
        (OSError(errno.ENOSPC, "No space left on device"), TerminalError, "lake.url"),
        (FileNotFoundError("The specified bucket does not exist"), TerminalError, "bucket"),
    ],
    ids=["reset", "timeout", "eio", "eacces", "denied", "enospc", "no-bucket"],
)
def test_a_failure_mid_write_is_classified_and_keeps_the_previous_partition(
    lake: Lake,
    monkeypatch: pytest.MonkeyPatch,
    error: OSError,
    kind: type[Exception],
    message: str,
) -> None:
    lake.write_partition("shop", "orders", DAY, pa.Table.from_batches([batch([1, 2])]))
    fail_writes(monkeypatch, lake, error, after=100)

    with pytest.raises(kind) as caught:
        lake.write_partition("shop", "orders", DAY, [batch([10]), batch([11])], schema=SCHEMA)

    assert caught.value.__cause__ is error
    assert not isinstance(caught.value, TerminalError if kind is TransientError else TransientError)
    text = str(caught.value)
    assert text.startswith("lake: cannot write ") and "raw/shop/orders/dt=2025-03-01" in text
    assert message in text
    monkeypatch.undo()
    assert lake.read_partition("shop", "orders", DAY).column("id").to_pylist() == [1, 2]
    assert lake.fs.ls(f"{lake.root}/_staging", detail=False) == []


def test_the_callers_own_errors_pass_through_unclassified(lake: Lake) -> None:
    def source() -> Iterator[pa.RecordBatch]:
        yield batch([1])
        raise ConnectionResetError("the orders DB hung up")  # the source's, not the lake's

    with pytest.raises(ConnectionResetError, match="orders DB"):
        lake.write_partition("shop", "orders", DAY, source(), schema=SCHEMA)
    assert lake.partitions("shop", "orders") == []


def test_a_failed_swap_puts_the_previous_partition_back(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake.write_partition("shop", "orders", DAY, pa.Table.from_batches([batch([1, 2])]))
    real_mv = lake.fs.mv

    def mv(source: str, target: str, **kwargs: Any) -> None:
        if "/_staging/" in source and "retired-" not in source:  # the new version moving in
            raise ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
        real_mv(source, target, **kwargs)

    monkeypatch.setattr(lake.fs, "mv", mv)
    with pytest.raises(TransientError, match=r"lake: cannot commit .*dt=2025-03-01"):
        lake.write_partition("shop", "orders", DAY, pa.Table.from_batches([batch([7])]))
    monkeypatch.undo()
    assert lake.read_partition("shop", "orders", DAY).column("id").to_pylist() == [1, 2]
    assert lake.partitions("shop", "orders") == [DAY]
    assert lake.fs.ls(f"{lake.root}/_staging", detail=False) == []


def test_reads_classify_too(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    lake.write_partition("shop", "orders", DAY, pa.Table.from_batches([batch([1])]))

    def refused(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(lake.fs, "ls", refused)
    with pytest.raises(TerminalError, match=r"lake: cannot list .*raw/shop/orders.*lake\.url"):
        lake.partitions("shop", "orders")
    monkeypatch.setattr(lake.fs, "open", refused)
    with pytest.raises(TerminalError, match="lake: cannot read"):
        lake.read_partition("shop", "orders", DAY)
    with pytest.raises(TerminalError, match="lake: cannot read"):
        lake.manifest("shop", "orders", DAY)


def test_a_partition_that_is_not_there_is_not_found_and_not_listed(lake: Lake) -> None:
    assert lake.partitions("shop", "nothing") == []
    with pytest.raises(NotFoundError, match="raw/shop/orders has no partition dt=2025-03-01"):
        lake.read_partition("shop", "orders", DAY)
    with pytest.raises(NotFoundError, match="no partition"):
        lake.manifest("shop", "orders", DAY)
    lake.drop_partition("shop", "orders", DAY)  # nothing to drop is fine


def test_an_http_client_error_from_an_fsspec_backend_is_classified() -> None:
    def aiohttp_error(name: str, status: int | None) -> Exception:
        error_type = type(name, (Exception,), {"__module__": "aiohttp.client_exceptions"})
        error = error_type("boom")
        error.status = status  # type: ignore[attr-defined]
        return error

    dropped = classify(aiohttp_error("ServerDisconnectedError", None), "lake: cannot read x")
    unavailable = classify(aiohttp_error("ClientResponseError", 503), "lake: cannot read x")
    forbidden = classify(aiohttp_error("ClientResponseError", 403), "lake: cannot read x")
    assert isinstance(dropped, TransientError) and isinstance(unavailable, TransientError)
    assert isinstance(forbidden, TerminalError) and "lake.url" in str(forbidden)
    assert classify(ValueError("not ours"), "lake: x") is None


def test_an_unknown_protocol_is_a_config_error_without_the_password() -> None:
    with pytest.raises(ConfigError, match=r"lake\.url") as caught:
        Lake("nosuchfs://user:hunter2@host/lake")
    assert "hunter2" not in str(caught.value)


def test_the_state_files_round_trip(lake: Lake) -> None:
    assert lake.read_state("archive/clicks.json") is None
    lake.write_state("archive/clicks.json", {"next": {"0": 5}})
    lake.write_state("archive/clicks.json", {"next": {"0": 9}})
    assert lake.read_state("archive/clicks.json") == {"next": {"0": 9}}
