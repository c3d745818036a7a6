"""On Spark the identity step's tables stay on the executors: they cross to and from the step's
in-process session as Parquet files in a scratch folder under the lake, never as rows on the
driver, and the folder is gone afterwards — after a failure too.

(That Spark's outputs are the same as DuckDB's, type for type, is test_engine_parity's job.)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tiny_world import DAY, build

from c360.config import ComputeSettings, Settings
from c360.engines import open_compute
from c360.engines.duckdb import DuckDBSession
from c360.errors import ConfigError
from c360.identity import probabilistic, records
from c360.lake import Lake
from c360.pipeline.daily import run_batch
from c360.pipeline.identity import resolve

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def world(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The tiny world's lake for D (sources ingested by a DuckDB run), Spark configured."""
    settings = build(tmp_path_factory.mktemp("handover"), {"C360_COMPUTE_ENGINE": "spark"})
    run_batch(settings.model_copy(update={"compute": ComputeSettings(engine="duckdb")}), DAY)
    return settings


@dataclass
class Driver:
    """What crossed the driver: the columns of every result collected from Spark, and every
    DataFrame made from the driver's data (what from, rows, columns)."""

    collected: list[list[str]] = field(default_factory=list)
    created: list[tuple[str, int, list[str]]] = field(default_factory=list)

    def records(self) -> list[list[str]]:
        """The columns of what crossed that carried records (records, profiles and
        predictions do: a record key), either way."""
        crossed = [*self.collected, *(columns for _, _, columns in self.created)]
        return [c for c in crossed if any("record_key" in name for name in c)]


@pytest.fixture
def driver(spark: Any, monkeypatch: pytest.MonkeyPatch) -> Driver:
    seen = Driver()
    frame, session = type(spark.range(1)), type(spark)

    def spy(name: str) -> None:
        original = getattr(frame, name)

        def collecting(self: Any, *args: Any, **kwargs: Any) -> Any:
            seen.collected.append(list(self.columns))
            return original(self, *args, **kwargs)

        monkeypatch.setattr(frame, name, collecting)

    for name in ("toArrow", "toPandas", "collect"):
        spy(name)
    create = session.createDataFrame

    def created(self: Any, data: Any, *args: Any, **kwargs: Any) -> Any:
        made = create(self, data, *args, **kwargs)
        seen.created.append((type(data).__name__, len(data), list(made.columns)))
        return made

    monkeypatch.setattr(session, "createDataFrame", created)
    return seen


@dataclass
class Handed:
    """The lake, its scratch folders watched: what each held when its block ended."""

    lake: Lake
    folders: list[set[str]] = field(default_factory=list)

    def staging(self) -> list[str]:
        return self.lake.fs.ls(f"{self.lake.root}/_staging", detail=False)


@pytest.fixture
def handed(world: Settings, monkeypatch: pytest.MonkeyPatch) -> Handed:
    lake = Lake(world.lake.url)
    watched = Handed(lake)
    scratch = lake.scratch

    @contextmanager
    def watching() -> Iterator[str]:
        with scratch() as folder:
            try:
                yield folder
            finally:
                watched.folders.append({p.name for p in Path(folder).iterdir()})

    monkeypatch.setattr(lake, "scratch", watching)
    return watched


def test_the_identity_step_on_spark_hands_tables_over_as_files(
    world: Settings, driver: Driver, handed: Handed
) -> None:
    report = resolve(world, handed.lake, DAY)

    assert report.persons == 5  # as on DuckDB
    assert driver.records() == [], "records crossed the driver"
    # Splink makes small frames of its own (m and u counts per level); none from Arrow
    assert {kind for kind, _, _ in driver.created} <= {"list"}, driver.created
    assert handed.folders == [
        set(records.RAW_OUTPUTS),  # the extraction's outputs, written by the executors
        {
            "profiles.parquet",
            "predictions",
        },  # Splink's input from the session, its predictions back
    ]
    assert handed.staging() == []


@pytest.mark.parametrize("failing", ["extraction", "splink"])
def test_the_scratch_folder_is_removed_when_the_step_fails(
    world: Settings, handed: Handed, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    def fail(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError(f"{failing} failed midway")

    if failing == "extraction":  # Spark wrote its outputs, the session fails to read them
        monkeypatch.setattr(DuckDBSession, "append_parquet", fail)
    else:  # the profiles were handed to Spark, training fails
        monkeypatch.setattr(probabilistic, "_train", fail)
    with pytest.raises(RuntimeError, match="failed midway"):
        resolve(world, handed.lake, DAY)
    assert handed.folders[-1]  # something was handed over before the failure
    assert handed.staging() == []


def test_a_cluster_needs_a_scratch_folder_its_executors_share() -> None:
    """Without one (outside the identity step) Spark would write to its executors' own disks
    and the session read nothing: refused, before anything starts."""
    compute = open_compute(ComputeSettings(engine="spark", spark_master="spark://cluster:7077"))
    with compute.local() as local:
        with pytest.raises(ConfigError, match=r"compute\.spark_master.*scratch folder"):
            compute.run_into(local, [], [], [])
        with (
            pytest.raises(ConfigError, match=r"compute\.spark_master.*scratch folder"),
            compute.linkage(local, "profiles"),
        ):
            pass
