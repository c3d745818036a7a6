"""The compute swap point's contract: named SQL steps over lake inputs, in DuckDB's dialect.

Each transformation is written once, as SQL (:class:`SqlStep`); an engine (``c360.engines``)
registers the inputs as views, runs the steps in order (each materialised as a temporary table)
and hands the requested outputs back as Arrow tables. A failing step raises :class:`StepError`
carrying its name and SQL. Domain code builds steps and reads Arrow tables; it never imports
an engine.

What domain code is handed is a :class:`Compute` (``c360.engines.open_compute`` opens the
configured one): batch steps on the configured engine (:meth:`Compute.run`), in-process SQL
sessions over Arrow tables (:class:`LocalSql`, DuckDB whichever engine is configured) and
Splink's database API for the configured engine (:meth:`Compute.linkage`). Only the adapters
under ``c360.engines`` import a driver.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, Self

import pyarrow as pa

from c360.errors import TerminalError


@dataclass(frozen=True)
class SqlStep:
    """One named SELECT; later steps read it by its name.

    ``params`` are bound to the SELECT's ``?`` placeholders, in order (values a user gave —
    a segment definition's — are bound, never pasted into the SQL)."""

    name: str
    sql: str
    params: tuple[object, ...] = ()


@dataclass(frozen=True)
class LakeInput:
    """A named input: Parquet file URLs (possibly globs), or no files and a schema (empty).

    Every input view also has ``dt``, the date of the lake partition a row came from.
    """

    name: str
    urls: tuple[str, ...]
    schema: pa.Schema


Scratch = Callable[[], AbstractContextManager[str]]
"""Hands out a new empty folder (its URL) that a distributed engine's workers and the
in-process session both reach, removed when the ``with`` block ends: where tables cross
between them as Parquet files (``Lake.scratch``: under the lake's staging folder)."""


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


class LocalSql(Protocol):
    """An in-process SQL session over Arrow tables and Parquet files, in DuckDB's dialect.

    Bounded by ``compute.threads`` and ``compute.memory_limit``, in UTC. Registering an Arrow
    table does not copy it; temporary tables live until :meth:`close` (or the end of ``with``).
    Errors of :meth:`execute`, :meth:`rows` and :meth:`table` are the driver's; :meth:`run`
    raises :class:`StepError`.
    """

    def register(self, name: str, table: pa.Table) -> None:
        """Make ``table`` readable as the view ``name``."""
        ...

    def unregister(self, name: str) -> None: ...

    def load(self, name: str, table: pa.Table) -> None:
        """Copy ``table`` into the session as the temporary table ``name`` (replacing one of
        that name): unlike a registered table it is the session's, and spills past its memory
        limit; the Arrow table may be dropped afterwards."""
        ...

    def register_lake(self, inputs: Sequence[LakeInput]) -> None:
        """Each lake input as a view of its name, read in place (nothing is loaded)."""
        ...

    def load_parquet(self, name: str, folder: str) -> None:
        """Copy the Parquet files in ``folder`` (a URL) into the session as the temporary
        table ``name`` (replacing one of that name), streamed: it spills past the memory
        limit, and the files may be removed afterwards."""
        ...

    def append_parquet(self, name: str, folder: str) -> None:
        """Append the Parquet files in ``folder`` to the table ``name``, column by column of
        the same names, each value cast to the table's type (a :class:`DataError` if it does
        not fit), streamed."""
        ...

    def write_parquet(self, sql: str, path: str) -> None:
        """Write the result of ``sql`` as one Parquet file at ``path`` (a URL in a folder that
        exists), in the result's order (a reader splits it by row groups), streamed."""
        ...

    def execute(self, sql: str, params: Sequence[object] = ()) -> None:
        """Run a statement (``?`` placeholders take ``params``)."""
        ...

    def rows(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """A small result as Python tuples."""
        ...

    def table(self, sql: str) -> pa.Table:
        """A result as one Arrow table."""
        ...

    def batches(self, sql: str, rows: int) -> Iterator[pa.RecordBatch]:
        """A result as a stream of Arrow batches of up to ``rows`` rows, in result order."""
        ...

    def run(self, steps: Sequence[SqlStep], outputs: Sequence[str]) -> dict[str, pa.Table]:
        """Each step materialised as a temporary table under its name; ``outputs`` as Arrow."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


@dataclass(frozen=True)
class Linkage:
    """Splink's database API for the configured engine, the input as that API takes it, and
    the way back to the session.

    ``db_api`` is a Splink ``DatabaseAPI`` (``DuckDBAPI``, ``SparkAPI``); ``table`` is what
    its ``register`` accepts (a table name of the local session, a Spark DataFrame);
    ``to_session(frame, name, columns)`` copies ``columns`` of a Splink table (a
    ``SplinkDataFrame`` of ``db_api``) into the session as the temporary table ``name``
    without passing its rows through Python. Typed loosely so that the contract needs
    neither Splink nor a driver.
    """

    db_api: Any
    table: Any
    to_session: Callable[[Any, str, Sequence[str]], None]


class Compute(Protocol):
    """The compute swap point as domain code gets it (``c360.engines.open_compute``)."""

    @property
    def name(self) -> str:
        """The configured engine: duckdb or spark."""
        ...

    def local(self) -> LocalSql:
        """A fresh in-process session (DuckDB, whichever engine is configured)."""
        ...

    def linkage(self, local: LocalSql, table: str) -> AbstractContextManager[Linkage]:
        """Splink's database API on the configured engine, with ``local``'s ``table`` as input.

        DuckDB scores in ``local`` itself; Spark reads the table from Parquet files the session
        writes to a scratch folder, and writes what ``Linkage.to_session`` hands back there
        too. Whatever the engine holds, the scratch folder included, is released when the
        ``with`` block ends.
        """
        ...

    def run(
        self, inputs: Sequence[LakeInput], steps: Sequence[SqlStep], outputs: Sequence[str]
    ) -> Mapping[str, pa.Table]:
        """Batch steps over lake inputs on the configured engine (opened for this call)."""
        ...

    def run_into(
        self,
        local: LocalSql,
        inputs: Sequence[LakeInput],
        steps: Sequence[SqlStep],
        outputs: Sequence[str],
    ) -> None:
        """Batch steps over lake inputs on the configured engine, ``outputs`` left as tables of
        ``local`` under their names, of the types DuckDB gives them: DuckDB runs them in
        ``local`` itself; Spark's executors write each output to Parquet files in a scratch
        folder, which ``local`` reads (removed afterwards). Either way the rows never become
        Arrow on the driver."""
        ...
