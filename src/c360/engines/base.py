"""Opening the configured compute engine (the contract is :mod:`c360.contracts.compute`).

:func:`open_compute` gives domain code the compute swap point (:class:`Compute`);
:func:`open_engine` and :func:`compute` run batch steps on the configured engine.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from c360.config import ComputeSettings
from c360.contracts.compute import (
    Compute,
    ComputeEngine,
    LakeInput,
    LocalSql,
    Scratch,
    SqlStep,
)
from c360.errors import ConfigError

_ENGINES = "duckdb, spark"


def open_engine(settings: ComputeSettings) -> ComputeEngine:
    if settings.engine == "duckdb":
        from c360.engines.duckdb import DuckDBEngine

        return DuckDBEngine.for_compute(settings)
    if settings.engine == "spark":
        from c360.engines.spark import SparkEngine

        return SparkEngine(settings)
    raise ConfigError("compute.engine", f"{settings.engine!r} is unknown; accepted: {_ENGINES}")


def compute(
    settings: ComputeSettings,
    inputs: Sequence[LakeInput],
    steps: Sequence[SqlStep],
    outputs: Sequence[str],
) -> dict[str, pa.Table]:
    """Run ``steps`` over ``inputs`` on a freshly opened engine and return ``outputs``."""
    engine = open_engine(settings)
    try:
        return dict(engine.run(inputs, steps, outputs))
    finally:
        engine.close()


def open_compute(settings: ComputeSettings, scratch: Scratch | None = None) -> Compute:
    """The compute swap point for ``settings``; nothing starts until it is used.

    ``scratch``: where a distributed engine and the in-process session hand tables over as
    Parquet files (the pipeline gives ``Lake.scratch``). Without it Spark uses the system's
    temporary directory, which only a local master's executors share.
    """
    if settings.engine == "duckdb":
        from c360.engines.duckdb import DuckDBCompute

        return DuckDBCompute(settings, scratch)
    if settings.engine == "spark":
        from c360.engines.spark import SparkCompute

        return SparkCompute(settings, scratch)
    raise ConfigError("compute.engine", f"{settings.engine!r} is unknown; accepted: {_ENGINES}")


def run_in(
    local: LocalSql, inputs: Sequence[LakeInput], steps: Sequence[SqlStep], outputs: Sequence[str]
) -> None:
    """``steps`` in ``local`` itself, over views of ``inputs``: ``outputs`` stay as tables of
    the session, the intermediate steps' tables are dropped (they would hold memory till the
    session ends)."""
    local.register_lake(inputs)
    local.run(steps, [])
    for step in steps:
        if step.name not in outputs:
            local.execute(f"DROP TABLE {step.name}")


class EngineCompute:
    """What every engine's :class:`Compute` shares: its settings, in-process sessions on DuckDB
    (bounded by ``compute.threads`` and ``compute.memory_limit``), batch steps run by
    :func:`compute` on a freshly opened engine, and the scratch folders it was given.
    Subclasses add ``linkage`` and ``run_into``."""

    name: str

    def __init__(self, settings: ComputeSettings, scratch: Scratch | None = None) -> None:
        self.settings = settings
        self.scratch = scratch

    def local(self) -> LocalSql:
        from c360.engines.duckdb import DuckDBSession

        return DuckDBSession.for_compute(self.settings)

    def run(
        self, inputs: Sequence[LakeInput], steps: Sequence[SqlStep], outputs: Sequence[str]
    ) -> dict[str, pa.Table]:
        return compute(self.settings, inputs, steps, outputs)
