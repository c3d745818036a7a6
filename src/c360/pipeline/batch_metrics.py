"""The daily batch's metrics for Prometheus, left where Prometheus expects a batch job's.

A batch run is not up when Prometheus scrapes, so after each :func:`~c360.pipeline.daily.run_day`
its metrics go to the node exporter's textfile directory (``metrics.textfile_dir``, written
atomically) and/or a Pushgateway (``metrics.pushgateway_url``, job ``c360_batch``):

- ``c360_batch_step_last_success_timestamp_seconds{step}``: when each step last succeeded, on any
  batch date (from the run log, so a failed run does not reset it);
- ``c360_batch_step_duration_seconds{step}``, ``c360_batch_step_rows{step}`` and
  ``c360_batch_step_status{step, status}`` (1 for the step's status in this run: succeeded,
  failed, skipped, done-before) of the run just finished;
- ``c360_batch_last_run_timestamp_seconds`` and ``c360_batch_date_timestamp_seconds`` (the batch
  date's midnight, UTC);
- what the steps of the run measured (their outcomes' ``counts`` and ``checks``):
  ``c360_batch_quality_check_passed{check}`` (1 passed, 0 failed), the identity step's
  ``c360_batch_identity_persons``, ``_merges``, ``_splits``, ``_refused_links``,
  ``_flagged_clusters``, ``_largest_cluster_records`` and ``_giant_clusters`` (1 when a giant
  cluster stopped the step), and ``c360_batch_published_profiles`` — each present only when its
  step ran.

Labels are step names, statuses and the quality checks' fixed names only. A failure to write
or push is logged, never raised: the batch's own outcome stands.
"""

from __future__ import annotations

import calendar
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, write_to_textfile

from c360.config import MetricsSettings
from c360.masking import mask_secrets
from c360.stores import ServingStore

if TYPE_CHECKING:
    from c360.pipeline.daily import DayResult

log = logging.getLogger(__name__)

JOB = "c360_batch"
TEXTFILE = "c360_batch.prom"
STATUSES = ("succeeded", "failed", "skipped", "done-before")
# The steps' named counts exported, (step, count) -> (metric, help): a fixed list, so a step
# adding a count to its outcome does not add a metric by accident.
COUNTS = {
    ("identity", "persons"): ("c360_batch_identity_persons", "Persons the identity step resolved"),
    ("identity", "merges"): ("c360_batch_identity_merges", "Persons merged into another"),
    ("identity", "splits"): ("c360_batch_identity_splits", "Persons split into several"),
    ("identity", "refused_links"): (
        "c360_batch_identity_refused_links", "Links the cluster guards refused",
    ),
    ("identity", "flagged_clusters"): (
        "c360_batch_identity_flagged_clusters", "Clusters flagged for review",
    ),
    ("identity", "largest_cluster"): (
        "c360_batch_identity_largest_cluster_records", "Records in the largest cluster",
    ),
    ("identity", "giant_clusters"): (
        "c360_batch_identity_giant_clusters", "Giant clusters that stopped the identity step",
    ),
    ("publish", "profiles"): ("c360_batch_published_profiles", "Profiles the publish made current"),
}  # fmt: skip


def registry_of(result: DayResult, store: ServingStore) -> CollectorRegistry:
    """The run's metrics in a registry of their own."""
    registry = CollectorRegistry()
    last_success = Gauge(
        "c360_batch_step_last_success_timestamp_seconds",
        "When the step last succeeded (any batch date)", ["step"], registry=registry,
    )  # fmt: skip
    for name, finished in store.last_successes().items():
        last_success.labels(name).set(calendar.timegm(finished.timetuple()))
    duration = Gauge(
        "c360_batch_step_duration_seconds", "The step's duration in the last run", ["step"],
        registry=registry,
    )  # fmt: skip
    rows = Gauge(
        "c360_batch_step_rows", "Rows the step wrote in the last run", ["step"], registry=registry
    )
    status = Gauge(
        "c360_batch_step_status", "1 for the step's status in the last run", ["step", "status"],
        registry=registry,
    )  # fmt: skip
    for step in result.steps:
        duration.labels(step.step).set(step.seconds)
        if step.rows is not None:
            rows.labels(step.step).set(step.rows)
        for state in STATUSES:
            status.labels(step.step, state).set(1 if step.status == state else 0)
    _measured(result, registry)
    Gauge(
        "c360_batch_last_run_timestamp_seconds", "When the last batch run ended",
        registry=registry,
    ).set(time.time())  # fmt: skip
    Gauge(
        "c360_batch_date_timestamp_seconds", "The last run's batch date (midnight UTC)",
        registry=registry,
    ).set(calendar.timegm(result.batch_date.timetuple()))  # fmt: skip
    return registry


def _measured(result: DayResult, registry: CollectorRegistry) -> None:
    """The steps' counts and quality checks (of the steps that ran)."""
    checks = Gauge(
        "c360_batch_quality_check_passed", "1 when the data-quality check passed in the last run",
        ["check"], registry=registry,
    )  # fmt: skip
    for step in result.steps:
        for check in step.checks:
            checks.labels(check.name).set(1 if check.passed else 0)
        for name, value in step.counts.items():
            known = COUNTS.get((step.step, name))
            if known is not None:
                Gauge(*known, registry=registry).set(value)


def export(settings: MetricsSettings, result: DayResult, store: ServingStore) -> None:
    """Write and/or push the run's metrics where the settings say (nothing when neither)."""
    if settings.textfile_dir is None and settings.pushgateway_url is None:
        return
    registry = registry_of(result, store)
    if settings.textfile_dir is not None:
        try:
            folder = Path(settings.textfile_dir)
            folder.mkdir(parents=True, exist_ok=True)
            write_to_textfile(str(folder / TEXTFILE), registry)
        except OSError as exc:
            log.warning("batch metrics: cannot write %s: %s", settings.textfile_dir, exc)
    if settings.pushgateway_url is not None:
        try:
            push_to_gateway(settings.pushgateway_url, job=JOB, registry=registry, timeout=10)
        except OSError as exc:
            log.warning(
                "batch metrics: cannot push to %s: %s",
                mask_secrets(settings.pushgateway_url),
                mask_secrets(str(exc)),
            )
