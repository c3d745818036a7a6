"""The daily batch's metrics: written for the node exporter's textfile collector and pushed to
a real Pushgateway (Debian's), from the run log and the run's result."""

from __future__ import annotations

import datetime as dt
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from c360.batch.quality import Check, QualityError
from c360.config import MetricsSettings, load_config
from c360.errors import GiantClusterError, TerminalError
from c360.pipeline import batch_metrics, daily
from c360.pipeline.daily import DayResult, StepResult, measured_by_failure, run_day
from c360.stores import ServingStore, StepRecord, open_store
from ports import free_port

DAY = dt.date(2025, 6, 2)


def values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted((k, v) for k, v in sample.labels.items() if k != "job"))):
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ServingStore]:
    opened = open_store(f"sqlite:///{tmp_path / 'serving.db'}")
    opened.migrate()
    yesterday = dt.datetime(2025, 6, 2, 3, 0)
    for step in ("ingest", "publish"):  # both succeeded for the day before
        opened.record_step(StepRecord("2025-06-01", step, "succeeded", yesterday, yesterday,
                                      1.0, 10, None))  # fmt: skip
    today = dt.datetime(2025, 6, 3, 3, 0)
    opened.record_step(StepRecord(DAY.isoformat(), "ingest", "succeeded", today, today, 2.5, 42,
                                  None))  # fmt: skip
    opened.record_step(StepRecord(DAY.isoformat(), "identity", "failed", today, today, 0.5, None,
                                  "no records"))  # fmt: skip
    yield opened
    opened.dispose()


RESULT = DayResult(
    DAY,
    [StepResult("ingest", "succeeded", 2.5, 42, None),
     StepResult("identity", "failed", 0.5, None, "no records")],
)  # fmt: skip


def test_the_textfile_holds_the_run_and_each_steps_last_success(
    store: ServingStore, tmp_path: Path
) -> None:
    folder = tmp_path / "textfile"
    batch_metrics.export(MetricsSettings(textfile_dir=str(folder)), RESULT, store)
    found = values((folder / batch_metrics.TEXTFILE).read_text())
    last = "c360_batch_step_last_success_timestamp_seconds"
    assert (
        found[(last, (("step", "ingest"),))]
        == dt.datetime(2025, 6, 3, 3, tzinfo=dt.UTC).timestamp()
    )
    assert (
        found[(last, (("step", "publish"),))]
        == dt.datetime(2025, 6, 2, 3, tzinfo=dt.UTC).timestamp()
    )
    assert (last, (("step", "identity"),)) not in found  # never succeeded
    status = "c360_batch_step_status"
    assert found[(status, (("status", "failed"), ("step", "identity")))] == 1
    assert found[(status, (("status", "succeeded"), ("step", "identity")))] == 0
    assert found[("c360_batch_step_rows", (("step", "ingest"),))] == 42
    assert found[("c360_batch_step_duration_seconds", (("step", "identity"),))] == 0.5
    assert (
        found[("c360_batch_date_timestamp_seconds", ())]
        == dt.datetime(2025, 6, 2, tzinfo=dt.UTC).timestamp()
    )
    assert list(folder.iterdir()) == [folder / batch_metrics.TEXTFILE]  # no temporary left


def test_the_steps_counts_and_quality_checks_are_exported(store: ServingStore) -> None:
    result = DayResult(DAY, [
        StepResult("identity", "succeeded", 3.0, 7, None,
                   counts={"persons": 7, "merges": 2, "splits": 1, "refused_links": 4,
                           "giant_clusters": 0, "not_exported": 9}),
        StepResult("quality", "succeeded", 0.1, 2, None,
                   checks=(Check("person_id unique", True, True, "0 duplicated ids"),
                           Check("email null rate", False, True, "9% without email"))),
        StepResult("publish", "succeeded", 1.0, 7, None, counts={"profiles": 7}),
    ])  # fmt: skip
    found = values(generate_latest(batch_metrics.registry_of(result, store)).decode())
    assert found[("c360_batch_identity_merges", ())] == 2
    assert found[("c360_batch_identity_splits", ())] == 1
    assert found[("c360_batch_identity_refused_links", ())] == 4
    assert found[("c360_batch_identity_giant_clusters", ())] == 0
    assert found[("c360_batch_published_profiles", ())] == 7
    passed = "c360_batch_quality_check_passed"
    assert found[(passed, (("check", "person_id unique"),))] == 1
    assert found[(passed, (("check", "email null rate"),))] == 0
    assert not [name for name, _ in found if "not_exported" in name]


def test_a_giant_cluster_is_counted_from_the_failure() -> None:
    giant = GiantClusterError("email:x", 900, 1000, 0.05)
    assert measured_by_failure(giant) == {"counts": {"giant_clusters": 1}}
    failed = Check("person_id unique", False, True, "2 duplicated ids")
    passed = Check("person_id not null", True, True, "0 null ids")
    assert measured_by_failure(QualityError([failed], [failed, passed])) == {
        "checks": (failed, passed)
    }
    assert measured_by_failure(TerminalError("the lake is read-only")) == {}


@pytest.fixture
def pushgateway(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        ["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/-/ready", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the Pushgateway did not start"
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.prometheus
def test_the_run_is_pushed_to_a_pushgateway(store: ServingStore, pushgateway: str) -> None:
    batch_metrics.export(MetricsSettings(pushgateway_url=pushgateway), RESULT, store)
    text = httpx.get(f"{pushgateway}/metrics", timeout=5).text
    assert (
        'c360_batch_step_status{instance="",job="c360_batch",status="failed",step="identity"} 1'
        in text
    )
    found = values(text)
    assert found[("c360_batch_step_rows", (("instance", ""), ("step", "ingest")))] == 42


def test_an_unreachable_pushgateway_does_not_fail_the_batch(
    store: ServingStore, caplog: pytest.LogCaptureFixture
) -> None:
    settings = MetricsSettings(pushgateway_url=f"http://user:s3cret@127.0.0.1:{free_port()}")
    batch_metrics.export(settings, RESULT, store)
    assert "cannot push" in caplog.text and "s3cret" not in caplog.text


def test_run_day_leaves_its_metrics_even_when_a_step_fails(tmp_path: Path) -> None:
    folder = tmp_path / "textfile"
    settings = load_config(environ={
        "C360_SERVING_URL": f"sqlite:///{tmp_path / 'serving.db'}",
        "C360_LAKE_URL": str(tmp_path / "lake"),
        "C360_SOURCES_MYSQL_URL": f"sqlite:///{tmp_path / 'no-shop.db'}",
        "C360_METRICS_TEXTFILE_DIR": str(folder),
    }).settings  # fmt: skip
    result = run_day(settings, DAY)
    assert result.status == "failed"
    found = values((folder / batch_metrics.TEXTFILE).read_text())
    status = "c360_batch_step_status"
    statuses = {labels: v for (name, labels), v in found.items() if name == status}
    failed = [labels for labels, v in statuses.items() if ("status", "failed") in labels and v]
    assert failed == [(("status", "failed"), ("step", result.steps[-1].step))]


def test_a_step_that_crashes_is_reported_failed_before_the_error_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "textfile"
    settings = load_config(environ={
        "C360_SERVING_URL": f"sqlite:///{tmp_path / 'serving.db'}",
        "C360_LAKE_URL": str(tmp_path / "lake"),
        "C360_METRICS_TEXTFILE_DIR": str(folder),
    }).settings  # fmt: skip

    def crash(*args: object) -> None:
        raise KeyError("customer 42")  # a bug, not a classified error

    monkeypatch.setitem(daily.STEPS, "ingest", crash)
    with pytest.raises(KeyError):
        run_day(settings, DAY)
    found = values((folder / batch_metrics.TEXTFILE).read_text())
    assert found[("c360_batch_step_status", (("status", "failed"), ("step", "ingest")))] == 1
    store = open_store(settings.serving.url)
    try:
        assert store.step_records(DAY)["ingest"].status == "failed"
        assert store.lease("batch") is None  # the lock was given back
    finally:
        store.dispose()
