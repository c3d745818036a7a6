"""What a compute engine runs: named SQL steps over lake inputs, in DuckDB's SQL dialect.

Each transformation is written once, as SQL; an engine registers the inputs as views, runs the
steps in order (each materialised as a temporary table) and hands the requested outputs back
as Arrow tables. A failing step raises :class:`StepError` carrying its name and SQL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa

from c360.config import ComputeSettings
from c360.errors import ConfigError, TerminalError


@dataclass(frozen=True)
class Step:
    name: str
    sql: str


@dataclass(frozen=True)
class LakeInput:
    """A named input: Parquet file URLs (possibly globs), or no files and a schema (empty).

    Every input view also has ``dt``, the date of the lake partition a row came from.
    """

    name: str
    urls: tuple[str, ...]
    schema: pa.Schema


class StepError(TerminalError):
    def __init__(self, step: Step, cause: Exception) -> None:
        self.step = step
        super().__init__(f"batch step {step.name!r} failed: {cause}\n--- SQL ---\n{step.sql}")


class ComputeEngine(Protocol):
    name: str

    def run(
        self, inputs: Sequence[LakeInput], steps: Sequence[Step], outputs: Sequence[str]
    ) -> Mapping[str, pa.Table]: ...

    def close(self) -> None: ...


def open_engine(settings: ComputeSettings) -> ComputeEngine:
    if settings.engine == "duckdb":
        from c360.engines.duckdb import DuckDBEngine

        return DuckDBEngine.for_compute(settings)
    if settings.engine == "spark":
        from c360.engines.spark import SparkEngine

        return SparkEngine(settings)
    raise ConfigError("compute.engine", f"{settings.engine!r} is unknown; accepted: duckdb, spark")


def compute(
    settings: ComputeSettings,
    inputs: Sequence[LakeInput],
    steps: Sequence[Step],
    outputs: Sequence[str],
) -> dict[str, pa.Table]:
    """Run ``steps`` over ``inputs`` on a freshly opened engine and return ``outputs``."""
    engine = open_engine(settings)
    try:
        return dict(engine.run(inputs, steps, outputs))
    finally:
        engine.close()
