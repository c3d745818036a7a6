"""The compute swap point's in-process sessions: bounded by the compute section, used by
every identity stage (which gets them only through the Compute it is handed)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest

from c360.config import ComputeSettings, IdentitySettings
from c360.contracts.compute import Compute, SqlStep, StepError
from c360.contracts.identity import ASSIGNMENT, CLUSTERS, IDENTIFIERS, RECORDS
from c360.engines import open_compute
from c360.errors import ConfigError, DataError
from c360.identity import evaluate, graph, probabilistic, records, stable_ids


def test_a_local_session_honours_threads_memory_limit_and_utc() -> None:
    compute = open_compute(ComputeSettings(threads=1, memory_limit="1GB"))
    assert compute.name == "duckdb"
    with compute.local() as local:
        settings = local.rows(
            "SELECT current_setting('threads'), current_setting('memory_limit'), "
            "current_setting('TimeZone')"
        )
    assert settings == [(1, "953.6 MiB", "UTC")]


def test_a_bad_memory_limit_is_a_config_error_naming_the_key() -> None:
    compute = open_compute(ComputeSettings(memory_limit="lots"))
    with pytest.raises(ConfigError, match=r"compute\.memory_limit") as raised:
        compute.local()
    assert raised.value.key == "compute.memory_limit"


def test_a_local_session_runs_named_steps_and_streams_batches() -> None:
    with open_compute(ComputeSettings()).local() as local:
        local.register("numbers", pa.table({"n": list(range(10))}))
        out = local.run(
            [
                SqlStep("odd", "SELECT n FROM numbers WHERE n % 2 = 1"),
                SqlStep("total", "SELECT sum(n) AS total FROM odd"),
            ],
            ["total"],
        )
        assert out["total"].to_pylist() == [{"total": 25}]
        batches = list(local.batches("SELECT n FROM numbers ORDER BY n", 4))
        assert [b.num_rows for b in batches] == [4, 4, 2]
        assert [n for b in batches for n in b.column("n").to_pylist()] == list(range(10))
        with pytest.raises(StepError, match="'broken'") as raised:
            local.run([SqlStep("broken", "SELECT no_such_column FROM numbers")], [])
        assert raised.value.step.name == "broken"


def test_a_local_session_hands_tables_over_as_parquet_files(tmp_path: Path) -> None:
    """What crosses between Spark and the session: a file the session writes, a folder of
    files it loads as they are, or appends to a table of its own types (cast, never widened)."""

    def written(name: str, sql: str) -> str:
        (tmp_path / name).mkdir()
        local.write_parquet(sql, f"{tmp_path}/{name}/part-0.parquet")
        return str(tmp_path / name)

    with open_compute(ComputeSettings()).local() as local:
        local.execute("CREATE TEMP TABLE typed AS SELECT 1::BIGINT AS n, 'a' AS s WHERE false")
        local.load_parquet(
            "loaded", written("out", "SELECT 7 AS n, 'x' AS s UNION ALL SELECT 8, 'y'")
        )
        assert local.rows("SELECT n, s FROM loaded") == [(7, "x"), (8, "y")]
        local.append_parquet("typed", written("swapped", "SELECT 'b' AS s, 2::HUGEINT AS n"))
        assert local.table("SELECT * FROM typed").to_pylist() == [{"n": 2, "s": "b"}]
        big = written("big", "SELECT 'many' AS s, 2::HUGEINT << 70 AS n")
        with pytest.raises(DataError, match="does not fit table 'typed'"):
            local.append_parquet("typed", big)


_DAY = dt.date(2025, 1, 1)
_STAGES: dict[str, Callable[[Compute], object]] = {
    "graph": lambda c: graph.deterministic_links(
        c, RECORDS.empty_table(), IDENTIFIERS.empty_table(), IdentitySettings()
    ),
    "probabilistic": lambda c: probabilistic.link_run(c, RECORDS.empty_table(), IdentitySettings()),
    "stable ids": lambda c: stable_ids.assign(
        c, CLUSTERS.empty_table(), RECORDS.empty_table(), None, _DAY
    ),
    "identity map": lambda c: stable_ids.identity_map(
        c, IDENTIFIERS.empty_table(), ASSIGNMENT.empty_table()
    ),
    "evaluate": lambda c: evaluate.evaluate(c, ASSIGNMENT.empty_table(), Path("no-truth")),
}


@pytest.mark.parametrize("stage", _STAGES)
def test_every_identity_stage_computes_in_the_sessions_it_is_handed(stage: str) -> None:
    """A memory limit DuckDB rejects reaches each stage: its DuckDB is the Compute's."""
    with pytest.raises(ConfigError, match=r"compute\.memory_limit"):
        _STAGES[stage](open_compute(ComputeSettings(memory_limit="lots")))


def test_record_positions_follow_the_keys_when_the_session_spills() -> None:
    """The stages take a record's rowid in ``records`` as its position in record_key order
    (records.records_in_order): true with two threads and rows spilled past the limit."""
    with open_compute(ComputeSettings(threads=2, memory_limit="60MB")).local() as local:
        records.records_in_order(
            local,
            "SELECT 'mysql/order:' || CAST(hash(i) AS VARCHAR) || repeat('x', 40) AS record_key "
            "FROM range(600000) t(i)",
        )
        ((out_of_order, rows),) = local.rows(
            "SELECT count(*) FILTER (WHERE previous >= record_key), count(*) FROM ("
            "SELECT record_key, lag(record_key) OVER (ORDER BY rowid) AS previous FROM records)"
        )
        spilled = local.rows("SELECT count(*) FROM duckdb_temporary_files()")
    assert rows == 600_000 and out_of_order == 0
    assert spilled[0][0] > 0
