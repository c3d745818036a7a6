"""The daily pipeline as a Dagster code location (``pip install 'c360[dagster]'``).

``dagster dev -m c360.orchestration.dagster_defs`` (in the folder of ``c360.toml``, or with
``C360_CONFIG``) shows c360's daily batch as **daily-partitioned assets**, one partition per
batch date D (the facts before the end of D, UTC)::

    ingest_<source> (one per enabled source) ─► identity ─► features ─► score ─► quality
        ─► publish ─► segments ─► gold

Each asset runs the pipeline's own step (:data:`c360.pipeline.steps.STEPS`, the ingest step
per source) through :func:`c360.pipeline.daily.run_locked_step`: under the batch lock (so
Dagster and ``c360 batch run|schedule`` never run two batches at once), recorded in the run
log (``c360 batch status``, ``c360 status``) and with the batch metrics written after it. The
quality step's data-quality results are **asset checks** of the ``quality`` asset; a failed
critical check fails it, so nothing downstream (publish) runs and yesterday's profiles keep
serving. ``c360_daily_batch`` materialises every asset for yesterday at
``SCHEDULE_HOUR:SCHEDULE_MINUTE`` UTC (the schedule, off until turned on in the UI), and a
**backfill** over a date range runs as one run in which each step goes through its dates in
order (a day's identity builds on the day before's).

Dagster is imported here only; the rest of c360 never needs it.
"""

import datetime as dt
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSelection,
    BackfillPolicy,
    BetaWarning,
    ConfigurableResource,
    DailyPartitionsDefinition,
    Definitions,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
    build_schedule_from_partitioned_job,
    define_asset_job,
)
from pydantic import Field

from c360.batch.quality import check_names
from c360.config import Settings, load_config
from c360.ingest.run import enabled_sources
from c360.pipeline.daily import StepResult, run_locked_step
from c360.pipeline.steps import STEPS, Step, ingest_source, watched_sources

PREFIX = "c360"
GROUP = "c360_daily"
JOB = "c360_daily_batch"
SCHEDULE_HOUR, SCHEDULE_MINUTE = 2, 0
# How long a step waits for the batch lock: the ingest assets run side by side and take it in
# turn; a batch of `c360 batch run|schedule` running meanwhile delays them up to this.
LOCK_WAIT = dt.timedelta(minutes=30)
AFTER_INGEST = tuple(name for name in STEPS if name != "ingest")  # the pipeline's order


class C360(ConfigurableResource):  # type: ignore[type-arg]
    """c360's settings for the assets: ``config_file`` (else ``$C360_CONFIG``, else
    ``./c360.toml``), the ``C360_*`` environment and ``overrides`` (dotted keys), in c360's
    usual precedence (``c360 config show``)."""

    config_file: str | None = Field(default=None, description="c360.toml to read")
    overrides: dict[str, str] = Field(default_factory=dict, description="dotted keys to set")

    def settings(self) -> Settings:
        return load_config(self.config_file, overrides=self.overrides).settings


def step_of(name: str) -> Step:
    """The pipeline's step behind asset ``name`` (``ingest_<source>``: that source's ingest)."""
    return STEPS.get(name) or ingest_source(name.removeprefix("ingest_"))


def check_name(name: str) -> str:
    """A quality check's name as a Dagster asset check's ("freshness shop.orders" →
    "freshness_shop_orders")."""
    return "".join(c if c.isalnum() else "_" for c in name.lower())


def _metadata(result: StepResult) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "status": MetadataValue.text(result.status),
        "seconds": MetadataValue.float(round(result.seconds, 3)),
        "detail": MetadataValue.text(result.detail or ""),
    }
    if result.rows is not None:
        metadata["rows"] = MetadataValue.int(result.rows)
    return metadata


def _check_results(result: StepResult) -> Iterator[AssetCheckResult]:
    for check in result.checks:
        yield AssetCheckResult(
            check_name=check_name(check.name),
            passed=check.passed,
            severity=AssetCheckSeverity.ERROR if check.critical else AssetCheckSeverity.WARN,
            metadata={"detail": MetadataValue.text(check.detail)},
        )


def _run_days(
    context: AssetExecutionContext, resource: C360, name: str
) -> Iterator[MaterializeResult[None] | AssetCheckResult]:
    """Run step ``name`` for each date of the run's partitions, oldest first. The asset checks
    are those of the newest date, or of the date that failed (each date's are in the log)."""
    settings = resource.settings()
    step = step_of(name)
    days = sorted(dt.date.fromisoformat(key) for key in context.partition_keys)
    for day in days:
        result = run_locked_step(settings, day, name, step, wait=LOCK_WAIT)
        context.log.info("batch %s: step %s %s: %s", day, name, result.status, result.detail)
        if result.status == "failed" or day == days[-1]:
            yield from _check_results(result)
        if result.status == "failed":
            raise Failure(
                description=f"batch {day}: step {name} failed: {result.detail}",
                metadata=_metadata(result),
            )
    metadata = _metadata(result) if len(days) == 1 else {"dates": MetadataValue.int(len(days))}
    yield MaterializeResult(metadata=metadata)


def _step_asset(
    name: str,
    deps: Sequence[AssetKey],
    partitions: DailyPartitionsDefinition,
    checks: Sequence[str],
) -> AssetsDefinition:
    step = step_of(name)
    key = AssetKey([PREFIX, name])

    # single_run: a backfill is one run whose every step takes its dates in order (Dagster
    # marks the parameter beta; it has been stable since 1.7).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BetaWarning)
        return _asset(name, key, deps, partitions, checks, step.__doc__)


def _asset(
    name: str,
    key: AssetKey,
    deps: Sequence[AssetKey],
    partitions: DailyPartitionsDefinition,
    checks: Sequence[str],
    doc: str | None,
) -> AssetsDefinition:
    @asset(
        key=key,
        deps=list(deps),
        partitions_def=partitions,
        backfill_policy=BackfillPolicy.single_run(),
        group_name=GROUP,
        description=(doc or f"The daily pipeline's step {name}.").strip(),
        check_specs=[AssetCheckSpec(check_name(check), asset=key) for check in checks],
        kinds={"python"},
    )
    def run(
        context: AssetExecutionContext, c360: C360
    ) -> Iterator[MaterializeResult[None] | AssetCheckResult]:
        yield from _run_days(context, c360, name)

    return run


def build_definitions(settings: Settings, resource: C360 | None = None) -> Definitions:
    """The code location for ``settings`` (which sources get an ingest asset, the first
    partition ``batch.first_date``); ``resource`` gives the assets their settings (default:
    read again at each step, as ``settings`` were)."""
    partitions = DailyPartitionsDefinition(
        start_date=settings.batch.first_date.isoformat(), timezone="UTC"
    )
    ingest = [
        _step_asset(f"ingest_{source}", [], partitions, []) for source in enabled_sources(settings)
    ]
    assets: list[AssetsDefinition] = list(ingest)
    upstream = [a.key for a in ingest]
    for name in AFTER_INGEST:
        checks = check_names(watched_sources(settings)) if name == "quality" else []
        assets.append(_step_asset(name, upstream, partitions, checks))
        upstream = [assets[-1].key]
    job = define_asset_job(JOB, selection=AssetSelection.groups(GROUP))
    schedule = build_schedule_from_partitioned_job(
        job, hour_of_day=SCHEDULE_HOUR, minute_of_hour=SCHEDULE_MINUTE
    )
    return Definitions(
        assets=assets,
        jobs=[job],
        schedules=[schedule],
        resources={"c360": resource or C360()},
    )


defs = build_definitions(load_config().settings)
