"""The churn model end to end on small simulated worlds: the point-in-time training set and its
leak check, the report against the baselines, the registry, scoring into the batch profile and
through the Profile API, an orders-only shop, and the refusals (too little history, too few
churners, a model whose features the profile lacks)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import httpx
import pyarrow as pa
import pytest
from click.testing import CliRunner

from c360.access.keys import generate as generate_key
from c360.api.app import create_app
from c360.api.server import serve_in_thread
from c360.batch import catalogue, features
from c360.batch.churn import dataset
from c360.cli.main import cli
from c360.config import Settings, load_config
from c360.contracts.compute import SqlStep
from c360.contracts.cutoff import cutoff
from c360.ingest.backfill import backfill_file
from c360.ingest.run import ingest
from c360.lake import Lake
from c360.pipeline import churn, churn_registry
from c360.pipeline.daily import run_batch
from c360.pipeline.demo import demo_overrides
from c360.simulator import generate
from c360.stores import open_store

pytestmark = pytest.mark.slow  # one small world generated, batched and trained (~1 min)

CUSTOMERS, DAYS = 500, 240
CHURN = {
    "churn.horizon_days": "30",
    "churn.snapshots": "3",
    "churn.snapshot_interval_days": "30",
    "churn.min_positives": "5",
}


def _settings(folder: Path, **overrides: str) -> Settings:
    values = {
        **demo_overrides(folder),
        "simulator.customers": str(CUSTOMERS),
        "simulator.days": str(DAYS),
        "simulator.seed": "11",
        **CHURN,
        **overrides,
    }
    return load_config(environ={}, overrides=values).settings


def _last_day(settings: Settings) -> dt.date:
    return settings.simulator.start_date + dt.timedelta(days=settings.simulator.days - 1)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Every source in the lake (the clickstream backfilled), the batch run for the last day."""
    settings = _settings(tmp_path_factory.mktemp("churn") / "world")
    day = _last_day(settings)
    generate(settings, replace=True)
    ingest(settings, day, ("mysql", "mailchimp", "zendesk"))
    backfill_file(
        Lake(settings.lake.url), Path(settings.sources.clickstream.path), "clickstream", day
    )
    run_batch(settings, day)
    return settings


@pytest.fixture(scope="module")
def trained(world: Settings) -> dict[str, object]:
    """``c360 train churn --json`` on the world: the report."""
    result = CliRunner().invoke(
        cli, ["train", "churn", "--json"], env=_env(world), catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    report: dict[str, object] = json.loads(result.stdout)
    return report


def _env(settings: Settings) -> dict[str, str]:
    folder = Path(settings.lake.url).parent
    values = {
        **demo_overrides(folder),
        "simulator.customers": str(CUSTOMERS),
        "simulator.days": str(DAYS),
        **CHURN,
    }
    return {"C360_" + key.upper().replace(".", "_"): value for key, value in values.items()}


def test_the_report_compares_the_model_with_every_baseline(
    world: Settings, trained: dict[str, object]
) -> None:
    models = trained["models"]
    assert isinstance(models, dict)
    assert set(models) == {"churn_model", "days_since_last_purchase", "rfm", "bgnbd"}
    for name, metrics in models.items():
        assert set(metrics) == {"roc_auc", "pr_auc", "brier", "lift_top_decile"}, name
        assert 0.5 < metrics["roc_auc"] <= 1.0, (name, metrics)
        assert 0.0 <= metrics["brier"] < 0.25, (name, metrics)
    # (which wins is for the benchmark's medium world: this one has a few hundred rows)
    snapshots = trained["snapshots"]
    assert isinstance(snapshots, list)
    assert trained["test_snapshot"] == snapshots[-1]
    assert trained["train_snapshots"] == snapshots[:-1]
    assert trained["leak_checked"] == snapshots  # every snapshot recomputed on the cut lake
    # the latest snapshot whose horizon has passed by the newest batch
    assert dt.date.fromisoformat(snapshots[-1]) == _last_day(world) - dt.timedelta(days=30)
    top = trained["top_features"]
    assert isinstance(top, list) and len(top) == 10
    for chart in trained["charts"]:  # type: ignore[attr-defined]
        assert Path(chart).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_registry_keeps_the_model_with_its_manifest(
    world: Settings, trained: dict[str, object]
) -> None:
    lake = Lake(world.lake.url)
    manifest, model = churn_registry.load(lake, str(trained["model_version"]))
    assert manifest["horizon_days"] == 30
    assert manifest["features"] == list(model.features)
    assert manifest["train_snapshots"] == trained["train_snapshots"]
    assert manifest["models"] == trained["models"]
    assert not {"identifier_count", "person_id", "churn_risk"} & set(model.features)


def test_a_feature_that_reads_facts_after_t_fails_the_build(world: Settings) -> None:
    def leaking(day: dt.date) -> list[SqlStep]:
        """orders_30d replaced by the orders of the 30 days *after* T."""
        end = cutoff(day)
        window = (
            f"o.created_at >= TIMESTAMPTZ '{end.isoformat()}+00:00' AND "
            f"o.created_at < TIMESTAMPTZ '{(end + dt.timedelta(days=30)).isoformat()}+00:00'"
        )
        steps = features.profile_steps(day)
        last = steps[-1]
        assert last.name == "batch_profile"
        future = SqlStep(
            "batch_profile",
            f"""
            SELECT b.* REPLACE (coalesce(f.n, 0) AS orders_30d)
            FROM ({last.sql}) b
            LEFT JOIN (SELECT m.person_id, count(*) AS n FROM orders o
                       JOIN identity_map m ON m.id_type = 'customer_id'
                        AND m.id_value = CAST(o.customer_id AS VARCHAR)
                       WHERE {window} GROUP BY m.person_id) f ON f.person_id = b.person_id
            """,
        )
        return [*steps[:-1], future]

    with pytest.raises(dataset.LeakageError, match=r"orders_30d \(\d+ persons"):
        churn.train(world, steps_for=leaking, charts=False)


def test_scores_and_reasons_reach_the_profile_api(
    world: Settings, trained: dict[str, object]
) -> None:
    day = _last_day(world)
    result = CliRunner().invoke(
        cli, ["score", "--date", day.isoformat(), "--json"], env=_env(world)
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["model_version"] == trained["model_version"]
    profile = Lake(world.lake.url).read_partition("profile", "batch_profile", day, "features")
    rows = profile.to_pylist()
    buyers = [r for r in rows if (r["number_of_orders"] or 0) > 0]
    assert summary["scored"] == len(buyers) > 0
    assert all(0.0 <= r["churn_risk"] <= 1.0 for r in buyers)
    assert all(r["churn_risk"] is None for r in rows if not r["number_of_orders"])
    person = max(buyers, key=lambda r: r["churn_risk"])
    assert person["churn_risk_band"] == "high"
    assert person["churn_reason_1"].split(" = ")[0] in catalogue.BY_NAME

    store = open_store(world.serving.url)
    key = generate_key(["profiles:read", "profiles:service"])  # risk whatever the consent
    store.add_api_key(key.record)
    headers = {"Authorization": f"Bearer {key.key}"}
    try:
        with (
            serve_in_thread(create_app(world, store=store)) as url,
            httpx.Client(base_url=url, headers=headers) as client,
        ):
            response = client.get(f"/v1/profiles/{person['person_id']}")
            assert response.status_code == 200, response.text
            body = response.json()["profile"]
            narrowed = client.get(
                f"/v1/profiles/{person['person_id']}",
                params={"fields": "churn_risk,churn_risk_band,model_version,churn_reason_1"},
            ).json()["profile"]
    finally:
        store.dispose()
    assert body["churn_risk"] == pytest.approx(person["churn_risk"])
    assert body["churn_risk_band"] == "high"
    assert body["model_version"] == trained["model_version"]
    assert [body[f"churn_reason_{k}"] for k in (1, 2, 3)] == [
        person[f"churn_reason_{k}"] for k in (1, 2, 3)
    ]
    assert set(narrowed) >= {"churn_risk", "churn_risk_band", "model_version", "churn_reason_1"}


def test_a_model_needing_a_feature_the_profile_lacks_is_refused(
    world: Settings, trained: dict[str, object]
) -> None:
    lake = Lake(world.lake.url)
    manifest, model = churn_registry.load(lake, str(trained["model_version"]))
    model.features = (*model.features[:-1], "tenure_weeks")
    version, _ = churn_registry.register(
        lake,
        {**manifest, "features": list(model.features)},
        {"model.pkl": churn_registry.dump_model(model)},
    )
    with pytest.raises(churn.ModelMismatchError, match="tenure_weeks"):
        churn.score(world, _last_day(world), version)


def test_too_little_history_names_the_minimum(world: Settings) -> None:
    short = world.model_copy(
        update={"churn": world.churn.model_copy(update={"horizon_days": DAYS - 20})}
    )
    with pytest.raises(dataset.ChurnDataError, match="at least 2 are needed"):
        churn.train(short, charts=False)
    few = world.model_copy(
        update={"churn": world.churn.model_copy(update={"min_positives": 100_000})}
    )
    with pytest.raises(dataset.ChurnDataError, match=r"at least 100000 of each"):
        churn.train(few, charts=False)


@pytest.fixture(scope="module")
def orders_only(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A shop with only its orders DB: the other sources' files are not there at all."""
    folder = tmp_path_factory.mktemp("churn") / "orders-only"
    settings = _settings(folder, **{"sources.enabled": "mysql"})
    generate(settings, replace=True)
    shutil.rmtree(settings.sources.mailchimp.dir)
    Path(settings.sources.clickstream.path).unlink()
    Path(settings.sources.zendesk.path).unlink()
    return settings


def test_an_orders_only_shop_runs_the_batch_trains_and_scores(orders_only: Settings) -> None:
    day = _last_day(orders_only)
    first = run_batch(orders_only, day)  # ingest: the orders DB alone
    assert [s.status for s in first.day.steps][:3] == ["succeeded"] * 3
    report = churn.train(orders_only, charts=False).report
    absent = set(catalogue.absent_features(("mysql",)))
    assert absent >= {"sessions_30d", "email_open_rate", "support_ticket_count"}
    assert not absent & set(report["features"])
    assert report["models"]["churn_model"]["roc_auc"] > 0.6
    second = run_batch(orders_only, day)  # the score step now has a model
    assert {s.step: s.status for s in second.day.steps}["score"] == "succeeded"
    profile = Lake(orders_only.lake.url).read_partition("profile", "batch_profile", day, "features")
    for name in absent:  # missing, not zero
        assert profile.column(name).null_count == profile.num_rows, name
    risk = profile.column("churn_risk")
    assert 0 < risk.null_count < profile.num_rows
    assert pa.compute.min(risk).as_py() >= 0.0


def test_the_text_report_names_each_model_and_the_charts(world: Settings) -> None:
    result = CliRunner().invoke(cli, ["train", "churn"], env=_env(world))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for name in ("churn_model", "days_since_last_purchase", "rfm", "bgnbd"):
        assert any(line.split()[:1] == [name] and len(line.split()) == 5 for line in lines), name
    assert any(line.startswith("ROC-AUC over the best baseline:") for line in lines)
    charts = [line.removeprefix("chart: ") for line in lines if line.startswith("chart: ")]
    assert [Path(c).name for c in charts] == ["calibration.png", "lift.png"]
    assert all(Path(c).is_file() for c in charts)
