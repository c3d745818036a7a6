"""The shipped Prometheus alert rules and Grafana dashboard: the rules valid and their unit
tests passing under ``promtool``, and every metric either reads one c360 exports (so a renamed
metric cannot silently blind them)."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

import c360.api.metrics
import c360.pipeline.stream_metrics  # noqa: F401  # registers the worker's metrics
from c360.batch.quality import Check
from c360.pipeline.batch_metrics import registry_of
from c360.pipeline.daily import DayResult, StepResult

RULES = Path(__file__).parents[2] / "ops" / "prometheus" / "c360-alerts.yml"
RULE_TESTS = RULES.with_name("c360-alerts.test.yml")
DASHBOARD = RULES.parents[1] / "grafana" / "c360-dashboard.json"
_METRIC = re.compile(r"\b(c360_[a-z0-9_]+)")
_SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def _promtool(*args: str) -> str:
    done = subprocess.run(
        ["promtool", *args], cwd=RULES.parent, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.prometheus
def test_the_rules_are_valid_and_their_unit_tests_pass() -> None:
    assert "SUCCESS: 12 rules found" in _promtool("check", "rules", RULES.name)
    assert "SUCCESS" in _promtool("test", "rules", RULE_TESTS.name)


def _base(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _read_by_rules() -> set[str]:
    rules = yaml.safe_load(RULES.read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    return {_base(name) for expr in exprs for name in _METRIC.findall(expr)}


def _read_by_dashboard() -> set[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    exprs = [target["expr"] for panel in panels for target in panel["targets"]]
    return {_base(name) for expr in exprs for name in _METRIC.findall(expr)}


def _batch_registry() -> CollectorRegistry:
    """The batch's metrics (a registry per run), for a run of the steps that measure."""

    class RunLog:
        def last_successes(self) -> dict[str, dt.datetime]:
            return {"publish": dt.datetime(2025, 6, 2)}

    identity = {"persons": 5, "merges": 1, "splits": 0, "refused_links": 2, "giant_clusters": 0}
    result = DayResult(dt.date(2025, 6, 1), [
        StepResult("identity", "succeeded", 1.0, 5, None, counts=identity),
        StepResult("quality", "succeeded", 1.0, 1, None,
                   checks=(Check("person_id unique", True, True, "0 duplicated ids"),)),
        StepResult("publish", "succeeded", 1.0, 5, None, counts={"profiles": 5}),
    ])  # fmt: skip
    return registry_of(result, RunLog())  # type: ignore[arg-type]


@pytest.mark.parametrize("read_by", [_read_by_rules, _read_by_dashboard])
def test_every_metric_read_is_exported(read_by: Callable[[], set[str]]) -> None:
    """Against what the API (``api/metrics.py``) and the stream worker
    (``pipeline/stream_metrics.py``) register."""
    read = read_by()
    exposition = generate_latest(REGISTRY).decode() + generate_latest(_batch_registry()).decode()
    exported = {
        _base(line.split()[2]) for line in exposition.splitlines() if line.startswith("# TYPE")
    }
    assert read, "no c360 metric read"
    assert read <= exported, f"metrics c360 does not export: {sorted(read - exported)}"


@pytest.mark.parametrize("metric", ["c360_profile_cache_lookups", "c360_audit_dropped"])
def test_the_api_metric_is_on_the_dashboard_and_alerted_on(metric: str) -> None:
    """The profile cache's hits, and reads the read audit had to drop."""
    assert metric in _read_by_dashboard()
    assert metric in _read_by_rules()


def test_the_dashboards_panels_have_their_own_ids_and_places() -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    cells = [
        (x, y)
        for panel in panels
        for x in range(panel["gridPos"]["x"], panel["gridPos"]["x"] + panel["gridPos"]["w"])
        for y in range(panel["gridPos"]["y"], panel["gridPos"]["y"] + panel["gridPos"]["h"])
    ]
    assert len(set(cells)) == len(cells), "panels overlap"
