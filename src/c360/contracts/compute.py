"""The compute swap point's contract: named SQL steps over lake inputs, in DuckDB's dialect.

Each transformation is written once, as SQL (:class:`SqlStep`); an engine (``c360.engines``)
registers the inputs as views, runs the steps in order (each materialised as a temporary table)
and hands the requested outputs back as Arrow tables. A failing step raises :class:`StepError`
carrying its name and SQL. Domain code builds steps and reads Arrow tables; it never imports
an engine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa

from c360.errors import TerminalError


@dataclass(frozen=True)
class SqlStep:
    """One named SELECT; later steps read it by its name."""

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
    def __init__(self, step: SqlStep, cause: Exception) -> None:
        self.step = step
        super().__init__(f"SQL step {step.name!r} failed: {cause}\n--- SQL ---\n{step.sql}")


class ComputeEngine(Protocol):
    name: str

    def run(
        self, inputs: Sequence[LakeInput], steps: Sequence[SqlStep], outputs: Sequence[str]
    ) -> Mapping[str, pa.Table]: ...

    def close(self) -> None: ...
