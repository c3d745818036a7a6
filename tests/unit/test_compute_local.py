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
from c360.errors import ConfigError
from c360.identity import evaluate, graph, probabilistic, stable_ids


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
