"""Opening the configured compute engine (the contract is :mod:`c360.contracts.compute`)."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from c360.config import ComputeSettings
from c360.contracts.compute import ComputeEngine, LakeInput, SqlStep
from c360.errors import ConfigError


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
    steps: Sequence[SqlStep],
    outputs: Sequence[str],
) -> dict[str, pa.Table]:
    """Run ``steps`` over ``inputs`` on a freshly opened engine and return ``outputs``."""
    engine = open_engine(settings)
    try:
        return dict(engine.run(inputs, steps, outputs))
    finally:
        engine.close()
