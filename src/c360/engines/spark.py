"""Spark engine (scale-out): the same named SQL steps, transpiled from DuckDB's dialect.

The steps are written once, in DuckDB's SQL; :func:`to_spark_sql` translates each with sqlglot
(unsupported constructs raise instead of being dropped silently). Every step is materialised
(cached and counted) and registered as a temporary view under its name, so later steps read
its result instead of recomputing it.

Lake inputs are read with ``spark.read.parquet`` from the same URLs (Hive-partition globs) the
DuckDB engine reads; ``basePath`` is the table folder, so ``dt`` comes from the partition path,
cast to ``date`` as DuckDB's Hive partitioning types it.

Outputs are handed back as Arrow tables with exactly the types DuckDB returns for the same
steps: the steps are also run on DuckDB over *empty* inputs of the types Spark read, and
Spark's result is cast to that schema (:func:`as_duckdb_types`, the one place where engine
type differences are normalised). A lake partition written by either engine is therefore
type-for-type the same, and engines can be swapped between days.

Identity's probabilistic links score on Spark through :class:`SparkCompute`: Splink's SparkAPI
on the engine's session (with Splink's similarity jar, checked), the input handed over once
from the in-process session as a checkpointed DataFrame.

Sessions: the engine starts a SparkSession on first use (``compute.spark_master``) and stops
it on :meth:`SparkEngine.close`. If one is already running in the process (a notebook, the
test suite, a ``spark-submit`` driver), the engine works in a child session of it
(``newSession``: its own temporary views and SQL settings, the same SparkContext) and leaves
it running.

This is the only module that imports pyspark.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pyarrow as pa

from c360.config import ComputeSettings
from c360.contracts.compute import LakeInput, Linkage, LocalSql, SqlStep, StepError
from c360.engines.base import EngineCompute
from c360.errors import ConfigError, DataError, MissingDependencyError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# Filesystems Spark cannot reach (they live inside this Python process only).
_PROCESS_LOCAL_SCHEMES = ("memory",)
_MEMORY = re.compile(r"^\s*(?P<amount>\d+(\.\d+)?)\s*(?P<unit>[kmgt])i?b?\s*$", re.IGNORECASE)
_PARTITION = re.compile(r"^(?P<base>.+)/(?P<partition>dt=[^/]+)/(?P<files>[^/]+)$")


def _import_pyspark() -> Any:
    try:
        import pyspark.sql
    except ImportError as exc:
        raise MissingDependencyError("pyspark", "spark", "the Spark engine") from exc
    return pyspark.sql


def to_spark_sql(sql: str) -> str:
    """One step's SQL, DuckDB dialect → Spark SQL; anything sqlglot cannot carry over raises."""
    import sqlglot
    from sqlglot.errors import ErrorLevel, UnsupportedError

    statements = sqlglot.transpile(
        sql, read="duckdb", write="spark", unsupported_level=ErrorLevel.RAISE, pretty=True
    )
    if len(statements) != 1:
        raise UnsupportedError(f"a step holds one SELECT statement, found {len(statements)}")
    return statements[0]


def session_settings(settings: ComputeSettings) -> dict[str, str]:
    """The SparkSession settings for ``settings``: c360's defaults, then ``spark_conf``."""
    master = settings.spark_master
    local = master.startswith("local")
    if local and settings.threads and master == "local[*]":
        master = f"local[{settings.threads}]"
    conf = {
        "spark.master": master,
        "spark.app.name": "c360",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
    }
    if local:  # one shuffle partition per local core, not Spark's cluster-sized 200
        conf["spark.sql.shuffle.partitions"] = str(_local_cores(master))
        # Python workers run this interpreter (its packages), not whatever `python3` is on PATH
        conf["spark.pyspark.python"] = sys.executable
        if settings.memory_limit:  # local mode: everything runs in the driver's JVM
            conf["spark.driver.memory"] = jvm_memory(settings.memory_limit)
    extra = settings.spark_conf_pairs()
    jars = [j for j in (extra.pop("spark.jars", ""), splink_similarity_jar()) if j]
    if jars:  # the user's jars and Splink's, one list
        conf["spark.jars"] = ",".join(jars)
    conf.update(extra)
    return conf


def splink_similarity_jar() -> str | None:
    """Splink's Scala similarity functions (jaro_winkler, …) for the installed Spark.

    Identity's probabilistic matching compares names with them; the jar ships inside the
    splink wheel (one per Spark major version) and must be on ``spark.jars`` before the
    session starts. None when splink is not installed.
    """
    try:
        from splink.backends.spark import similarity_jar_location
    except ImportError:
        return None
    location: str = similarity_jar_location()
    return location


def _local_cores(master: str) -> int:
    """The worker threads of a local master: local → 1, local[N] / local[N, F] → N, [*] → all."""
    match = re.match(r"local\[(\*|\d+)", master)
    if match is None:
        return 1
    return (os.cpu_count() or 1) if match[1] == "*" else max(1, int(match[1]))


def jvm_memory(limit: str) -> str:
    """``compute.memory_limit`` (DuckDB style: 4GB, 512MB, 1.5GiB) as a JVM size (4g, 512m)."""
    match = _MEMORY.match(limit)
    if match is None:
        raise ConfigError(
            "compute.memory_limit", f"{limit!r} is not a size; write e.g. 4GB or 512MB"
        )
    units = "KMGT"
    amount, unit = float(match["amount"]), match["unit"].upper()
    while amount != int(amount) and unit != "K":  # the JVM takes whole numbers only
        amount, unit = amount * 1024, units[units.index(unit) - 1]
    return f"{int(amount)}{unit.lower()}"


def _session_conf(conf: Mapping[str, str]) -> dict[str, str]:
    """The settings that belong to a session (``spark.sql.*``), set on child sessions too."""
    return {k: v for k, v in conf.items() if k.startswith("spark.sql.")}


def _spark_url(url: str) -> str:
    scheme = urlsplit(url).scheme
    if scheme in _PROCESS_LOCAL_SCHEMES:
        raise ConfigError(
            "lake.url",
            f"the Spark engine cannot read a {scheme}:// lake (it exists only inside this "
            "process); use a folder or a shared filesystem (s3a://, gs://, hdfs://, abfss://)",
        )
    if len(scheme) > 1:  # a URL; one letter is a Windows drive
        return url
    return "file://" + os.path.abspath(url)


@dataclass(frozen=True)
class _ParquetRead:
    """How Spark reads one input: the table folder (``basePath``), paths and a file pattern."""

    base: str
    paths: tuple[str, ...]
    pattern: str | None


def _parquet_read(source: LakeInput) -> _ParquetRead:
    """Split the input's ``…/TABLE/dt=DATE/*.parquet`` URLs into what Spark's reader takes.

    Partition folders plus ``pathGlobFilter`` rather than globs: Spark then discovers ``dt``
    under ``basePath`` the same way, without probing each glob for a streaming-sink log.
    """
    bases: set[str] = set()
    patterns: set[str] = set()
    folders: list[str] = []
    for url in source.urls:
        match = _PARTITION.match(_spark_url(url))
        if match is None:
            raise DataError(
                f"lake input {source.name!r}: {url!r} is not in a Hive partition (…/dt=DATE/…)"
            )
        bases.add(match["base"])
        folders.append(f"{match['base']}/{match['partition']}")
        patterns.add(match["files"])
    if len(bases) != 1:
        raise DataError(f"lake input {source.name!r} spans several tables: {sorted(bases)}")
    pattern = patterns.pop() if len(patterns) == 1 else ""
    if not any(c in pattern for c in "*?[{"):
        return _ParquetRead(bases.pop(), tuple(_spark_url(u) for u in source.urls), None)
    return _ParquetRead(bases.pop(), tuple(folders), pattern)


def as_duckdb_types(name: str, table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Spark's Arrow output cast to ``schema``, the Arrow schema DuckDB gives the same step.

    The one place where engine type differences are normalised. They are of spelling (Spark
    may use large strings/lists, not-null fields, ``item`` for list children) and of SQL typing
    rules: SUM(DECIMAL(p, s)) is DECIMAL(38, s) in DuckDB but DECIMAL(p + 10, s) in Spark;
    SUM(BIGINT) is HUGEINT (Arrow decimal128(38, 0)) in DuckDB, BIGINT in Spark; row_number()
    and length() are BIGINT in DuckDB, INT in Spark. Casts are Arrow's safe casts: one that
    would overflow or truncate a value raises rather than change it.
    """
    if table.schema.names != schema.names:
        raise DataError(
            f"step {name!r}: Spark names its columns {table.schema.names}, DuckDB "
            f"{schema.names}; give every output column an alias"
        )
    if table.schema.equals(schema):
        return table
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(
            f"step {name!r}: Spark's result does not fit DuckDB's types "
            f"({table.schema} → {schema}): {exc}"
        ) from exc


class SparkEngine:
    name = "spark"

    def __init__(self, settings: ComputeSettings, spark: SparkSession | None = None) -> None:
        """``spark``: run in a child session of this one (it is left running on close).

        Fails fast, without starting anything, when pyspark is not installed.
        """
        self._sql = _import_pyspark()
        self._conf = session_settings(settings)
        self._parent = spark
        self._spark: SparkSession | None = None
        self._owned = False
        self._cached: list[DataFrame] = []

    @property
    def session(self) -> SparkSession:
        """The engine's SparkSession, started on first use."""
        if self._spark is None:
            parent = self._parent or _running_session(self._sql.SparkSession)
            if parent is not None:
                self._spark = parent.newSession()
            else:
                builder = self._sql.SparkSession.builder
                for key, value in self._conf.items():
                    builder = builder.config(key, value)
                try:
                    self._spark = builder.getOrCreate()
                except _spark_errors() as exc:
                    raise ConfigError(
                        "compute.spark_master",
                        f"Spark did not start on {self._conf['spark.master']!r}: {exc}; check "
                        "Java 17+ (JAVA_HOME), compute.spark_conf and compute.memory_limit",
                    ) from exc
                self._owned = True
            for key, value in _session_conf(self._conf).items():
                if self._spark.conf.isModifiable(key):  # static ones are the parent's
                    self._spark.conf.set(key, value)
        return self._spark

    def _register(self, spark: SparkSession, source: LakeInput) -> None:
        from pyspark.sql.pandas.types import from_arrow_schema, from_arrow_type

        if source.urls:
            from pyspark.sql import functions as f

            read = _parquet_read(source)
            reader = spark.read.option("basePath", read.base)
            if read.pattern is not None:
                reader = reader.option("pathGlobFilter", read.pattern)
            if len(read.paths) > 1:  # partitions may differ by added columns (schema drift)
                reader = reader.option("mergeSchema", "true")
            try:
                frame = reader.parquet(*read.paths).withColumn("dt", f.col("dt").cast("date"))
            except _spark_errors() as exc:
                raise DataError(
                    f"lake input {source.name!r} ({len(read.paths)} partitions under "
                    f"{read.base!r}) could not be read: {exc}"
                ) from exc
            # A declared column the files lack (an optional export column) reads as NULL.
            for column in source.schema:
                if column.name not in frame.columns:
                    kind = from_arrow_type(column.type, prefer_timestamp_ntz=True)
                    frame = frame.withColumn(column.name, f.lit(None).cast(kind))
        else:
            schema = source.schema.append(pa.field("dt", pa.date32()))
            frame = spark.createDataFrame([], from_arrow_schema(schema, prefer_timestamp_ntz=True))
        frame.createOrReplaceTempView(source.name)

    def _materialise(self, spark: SparkSession, step: SqlStep) -> None:
        sql = None
        try:
            sql = to_spark_sql(step.sql)
            frame = (
                spark.sql(sql, args=list(step.params)) if step.params else spark.sql(sql)
            ).cache()
            self._cached.append(frame)
            frame.count()
            frame.createOrReplaceTempView(step.name)
        except (*_spark_errors(), *_sqlglot_errors()) as exc:
            shown = step.sql if sql is None else f"{sql}\n--- written (DuckDB) as ---\n{step.sql}"
            raise StepError(SqlStep(step.name, shown, step.params), exc) from exc

    def run(
        self, inputs: Sequence[LakeInput], steps: Sequence[SqlStep], outputs: Sequence[str]
    ) -> Mapping[str, pa.Table]:
        spark = self.session
        self._release()  # a cached step of an earlier run could match a plan of this one
        for source in inputs:
            self._register(spark, source)
        for step in steps:
            self._materialise(spark, step)
        schemas = self._duckdb_schemas(spark, inputs, steps, outputs)
        return {
            name: as_duckdb_types(name, spark.table(name).toArrow(), schemas[name])
            for name in outputs
        }

    def _duckdb_schemas(
        self,
        spark: SparkSession,
        inputs: Sequence[LakeInput],
        steps: Sequence[SqlStep],
        outputs: Sequence[str],
    ) -> dict[str, pa.Schema]:
        """The output schemas DuckDB gives the same steps over empty inputs of the same types.

        Zero rows, so it costs milliseconds; it makes a lake partition written by Spark
        type-for-type the one DuckDB would write (the lake's drift check compares types).
        """
        from pyspark.sql.pandas.types import to_arrow_schema

        from c360.engines.duckdb import DuckDBEngine

        empty = []
        for source in inputs:
            schema = source.schema
            if source.urls:  # what Spark found in the files (columns added by drift included)
                read = to_arrow_schema(spark.table(source.name).schema, timezone="UTC")
                schema = read.remove(read.get_field_index("dt"))
            empty.append(LakeInput(source.name, (), schema))
        engine = DuckDBEngine(threads=1)
        try:
            tables = engine.run(empty, steps, outputs)
        finally:
            engine.close()
        return {name: table.schema for name, table in tables.items()}

    def _release(self) -> None:
        for frame in self._cached:
            frame.unpersist()
        self._cached.clear()

    def close(self) -> None:
        self._release()
        if self._spark is not None and self._owned:
            self._spark.stop()
        self._spark, self._owned = None, False


class SparkCompute(EngineCompute):
    """The compute swap point on Spark: batch steps and Splink's scoring run on Spark."""

    name = "spark"

    @contextmanager
    def linkage(self, local: LocalSql, table: str) -> Iterator[Linkage]:
        """Splink's SparkAPI on a :class:`SparkEngine` session (stopped on exit), ``local``'s
        ``table`` as a DataFrame.

        The session must have Splink's similarity functions (jaro_winkler, …): a ConfigError
        naming compute.spark_conf otherwise.
        """
        engine = SparkEngine(self.settings)
        try:
            from splink.backends.spark import SparkAPI

            spark = engine.session
            spark_api: Any = SparkAPI  # splink's constructor is untyped
            db_api = spark_api(spark_session=spark, break_lineage_method="persist")
            try:
                spark.sql("SELECT jaro_winkler('a', 'a')").collect()
            except Exception as exc:  # AnalysisException: the jar is not on the session
                raise ConfigError(
                    "compute.spark_conf",
                    "Splink's similarity functions (jaro_winkler) are missing from the Spark "
                    "session; start it through c360 (which adds the jar) or add "
                    "spark.jars=<splink.backends.spark.similarity_jar_location()>",
                ) from exc
            # Materialised once, so that no query plan carries the rows along as local data (a
            # driver with the default 1 GB heap ran out of memory in EM otherwise).
            frame = spark.createDataFrame(local.table(f"SELECT * FROM {table}")).localCheckpoint()
            yield Linkage(db_api, frame)
        finally:
            engine.close()


def _running_session(session_class: Any) -> SparkSession | None:
    """The SparkSession already running in this process (active or default), if any."""
    from pyspark.errors import PySparkRuntimeError

    try:
        running: SparkSession = session_class.active()
    except PySparkRuntimeError:  # NO_ACTIVE_OR_DEFAULT_SESSION
        return None
    return running


def _spark_errors() -> tuple[type[Exception], ...]:
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    return (PySparkException, Py4JError)


def _sqlglot_errors() -> tuple[type[Exception], ...]:
    from sqlglot.errors import SqlglotError

    return (SqlglotError,)
