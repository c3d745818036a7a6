"""Spark engine (scale-out): the same named SQL steps, transpiled from DuckDB's dialect.

The steps are written once, in DuckDB's SQL; :func:`to_spark_sql` translates each with sqlglot
(unsupported constructs raise instead of being dropped silently). Every step is materialised
(cached and counted) and registered as a temporary view under its name, so later steps read
its result instead of recomputing it.

Lake inputs are read with ``spark.read.parquet`` from the same URLs (Hive-partition globs) the
DuckDB engine reads; ``basePath`` is the table folder, so ``dt`` comes from the partition path,
cast to ``date`` as DuckDB's Hive partitioning types it.

Outputs have exactly the types DuckDB gives the same steps: the steps are also run on DuckDB
over *empty* inputs of the types Spark read (milliseconds). :meth:`SparkEngine.run` hands
them back as Arrow tables cast to those schemas (:func:`as_duckdb_types`), so a lake
partition written by either engine is type-for-type the same and engines can be swapped
between days. :meth:`SparkCompute.run_into` leaves them in an in-process session without
passing the rows through the driver: the executors write each output as Parquet files to a
scratch folder (``Compute``'s ``scratch``: under the lake's staging folder, which a cluster's
executors reach), and the session appends them to its own empty result of the DuckDB run,
casting each value to DuckDB's type.

Identity's probabilistic links score on Spark through :class:`SparkCompute`: Splink's SparkAPI
on the engine's session (with Splink's similarity jar, checked), the input written by the
in-process session to the scratch folder and read by the executors, the predictions handed
back the same way (:class:`~c360.contracts.compute.Linkage`'s ``to_session``).

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
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pyarrow as pa

from c360.config import ComputeSettings
from c360.contracts.compute import LakeInput, Linkage, LocalSql, SqlStep, StepError
from c360.engines.base import EngineCompute, run_in
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
        # Parquet handed to the in-process session: timestamps as DuckDB reads them (UTC
        # instants), not the legacy INT96, which reads as a timestamp without a time zone
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
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
    _same_names(name, table.schema.names, schema.names)
    if table.schema.equals(schema):
        return table
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(
            f"step {name!r}: Spark's result does not fit DuckDB's types "
            f"({table.schema} → {schema}): {exc}"
        ) from exc


def _same_names(name: str, spark: Sequence[str], duckdb: Sequence[str]) -> None:
    if list(spark) != list(duckdb):
        raise DataError(
            f"step {name!r}: Spark names its columns {list(spark)}, DuckDB {list(duckdb)}; "
            "give every output column an alias"
        )


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
        empty = self.run_steps(inputs, steps)
        schemas = _duckdb_schemas(empty, steps, outputs)
        return {
            name: as_duckdb_types(name, self.session.table(name).toArrow(), schemas[name])
            for name in outputs
        }

    def run_steps(self, inputs: Sequence[LakeInput], steps: Sequence[SqlStep]) -> list[LakeInput]:
        """Each step materialised as a temporary view of its name, over views of ``inputs``.

        Returns the inputs as Spark read them, without files: what DuckDB runs the same steps
        over to learn its types (the columns the files have — those schema drift added
        included — of the types Spark found).
        """
        from pyspark.sql.pandas.types import to_arrow_schema

        spark = self.session
        self._release()  # a cached step of an earlier run could match a plan of this one
        for source in inputs:
            self._register(spark, source)
        for step in steps:
            self._materialise(spark, step)
        empty = []
        for source in inputs:
            schema = source.schema
            if source.urls:
                read = to_arrow_schema(spark.table(source.name).schema, timezone="UTC")
                schema = read.remove(read.get_field_index("dt"))
            empty.append(LakeInput(source.name, (), schema))
        return empty

    def _release(self) -> None:
        for frame in self._cached:
            frame.unpersist()
        self._cached.clear()

    def close(self) -> None:
        self._release()
        if self._spark is not None and self._owned:
            self._spark.stop()
        self._spark, self._owned = None, False


def _write_parquet(frame: DataFrame, folder: str) -> None:
    """``frame`` as Parquet files in ``folder``, written by the executors: its rows never pass
    through the driver."""
    frame.write.mode("overwrite").parquet(_spark_url(folder))


def _duckdb_schemas(
    empty: Sequence[LakeInput], steps: Sequence[SqlStep], outputs: Sequence[str]
) -> dict[str, pa.Schema]:
    """The output schemas DuckDB gives ``steps`` over the ``empty`` inputs.

    Zero rows, so it costs milliseconds; it makes a lake partition written by Spark
    type-for-type the one DuckDB would write (the lake's drift check compares types).
    """
    from c360.engines.duckdb import DuckDBEngine

    engine = DuckDBEngine(threads=1)
    try:
        tables = engine.run(empty, steps, outputs)
    finally:
        engine.close()
    return {name: table.schema for name, table in tables.items()}


class SparkCompute(EngineCompute):
    """The compute swap point on Spark: batch steps and Splink's scoring run on Spark; tables
    cross to and from the in-process session as Parquet files in a scratch folder."""

    name = "spark"

    def _scratch(self) -> AbstractContextManager[str]:
        """A scratch folder from ``scratch``, else (a local master: the executors are threads
        of this process) one under the system's temporary directory."""
        if self.scratch is not None:
            return self.scratch()
        if not self.settings.spark_master.startswith("local"):
            raise ConfigError(
                "compute.spark_master",
                f"{self.settings.spark_master!r}: a cluster's executors cannot reach this "
                "machine's temporary directory; open the compute with a scratch folder they "
                "share, as the identity step does (open_compute(settings.compute, "
                "lake.scratch))",
            )
        return tempfile.TemporaryDirectory(prefix="c360-scratch-")

    def run_into(
        self,
        local: LocalSql,
        inputs: Sequence[LakeInput],
        steps: Sequence[SqlStep],
        outputs: Sequence[str],
    ) -> None:
        """The steps on Spark; each output written by the executors as Parquet files to a
        scratch folder (removed afterwards) and appended by ``local`` to a table of the types
        DuckDB gives it: the same steps run in ``local`` over empty inputs of the types Spark
        read (milliseconds), and each value is cast to its column's type."""
        engine = SparkEngine(self.settings)
        try:
            with self._scratch() as folder:
                run_in(local, engine.run_steps(inputs, steps), steps, outputs)
                for name in outputs:
                    frame = engine.session.table(name)
                    typed = local.table(f"SELECT * FROM {name} LIMIT 0")
                    _same_names(name, frame.columns, typed.schema.names)
                    _write_parquet(frame, f"{folder}/{name}")
                    local.append_parquet(name, f"{folder}/{name}")
        finally:
            engine.close()

    @contextmanager
    def linkage(self, local: LocalSql, table: str) -> Iterator[Linkage]:
        """Splink's SparkAPI on a :class:`SparkEngine` session (stopped on exit), ``local``'s
        ``table`` as a DataFrame over Parquet files ``local`` writes to a scratch folder;
        ``to_session`` hands Splink's tables back through the same folder (removed on exit).
        The rows never pass through the driver (a driver with the default 1 GB heap ran out
        of memory in EM when the input was handed over from Arrow).

        The session must have Splink's similarity functions (jaro_winkler, …): a ConfigError
        naming compute.spark_conf otherwise.
        """
        engine = SparkEngine(self.settings)
        try:
            with self._scratch() as folder:
                yield self._linkage(engine.session, local, table, folder)
        finally:
            engine.close()

    @staticmethod
    def _linkage(spark: SparkSession, local: LocalSql, table: str, folder: str) -> Linkage:
        from splink.backends.spark import SparkAPI

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
        # one file, in the table's order: Spark splits it the same way on every run (Splink's
        # random samples depend on how the rows are laid out)
        local.write_parquet(f"SELECT * FROM {table}", f"{folder}/{table}.parquet")
        frame = spark.read.parquet(_spark_url(f"{folder}/{table}.parquet"))

        def to_session(splink_table: Any, name: str, columns: Sequence[str]) -> None:
            chosen = spark.table(splink_table.physical_name).select(*columns)
            _write_parquet(chosen, f"{folder}/{name}")
            local.load_parquet(name, f"{folder}/{name}")

        return Linkage(db_api, frame, to_session)


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
