"""Training, registering and scoring the churn model (``c360 train churn``, ``c360 score``).

Training (:func:`train`): snapshot dates from the lake's history, each snapshot's features by
the daily batch's own SQL over the whole lake with the cutoff at T (and, with
``churn.leak_check``, again over the lake cut at T: any difference fails the build), labels from
the orders after T (:mod:`c360.batch.churn.dataset`); the model trained on the earlier
snapshots and tested on the latest, next to the baselines (:mod:`c360.batch.churn.evaluate`).

The registry (:mod:`c360.pipeline.churn_registry`) keeps each trained model as an immutable
folder of the lake with its manifest; scoring (:func:`score`) writes ``churn_risk``,
``churn_risk_band``, ``model_version`` and three reasons into day D's batch profile.
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from c360.batch import catalogue, features
from c360.batch.churn import dataset, evaluate, plots
from c360.batch.churn import model as churn_model
from c360.config import Settings
from c360.contracts.compute import LakeInput, SqlStep
from c360.contracts.identity import IDENTITY_MAP
from c360.engines import compute
from c360.errors import DataError, MissingDependencyError, NotFoundError
from c360.lake import Lake
from c360.pipeline import churn_registry as registry
from c360.pipeline.lake_inputs import raw_inputs, snapshot

log = logging.getLogger(__name__)

ZONE = "features"
StepsFor = Callable[[dt.date], list[SqlStep]]


class ModelMismatchError(DataError):
    """The registered model needs features the batch profile does not have."""


def null_absent_sources(settings: Settings, table: pa.Table) -> pa.Table:
    """The features of the sources this shop does not have (``sources.enabled``) as nulls:
    missing, not zero."""
    for name in catalogue.absent_features(settings.sources.enabled):
        index = table.schema.get_field_index(name)
        if index >= 0:
            kind = table.schema.field(name).type
            table = table.set_column(index, name, pa.nulls(table.num_rows, kind))
    return table


def _newest_identity(lake: Lake, day: dt.date | None) -> dt.date:
    days = [d for d in lake.partitions("identity", "identity_map", ZONE) if day is None or d <= day]
    if not days:
        raise NotFoundError(
            "no identity map in the lake"
            + (f" on or before {day}" if day else "")
            + ": run the daily batch once first (c360 batch run --date D)"
        )
    return days[-1]


def _inputs(lake: Lake, as_of: dt.date) -> list[LakeInput]:
    return [
        *raw_inputs(lake, as_of),
        snapshot(lake, "identity", "identity_map", as_of, IDENTITY_MAP, zone=ZONE),
    ]


def _first_order(settings: Settings, inputs: list[LakeInput]) -> dt.date:
    step = SqlStep("first_order", "SELECT min(created_at) AS first FROM orders_versions")
    table = compute(settings.compute, inputs, [step], ["first_order"])["first_order"]
    first = table.column("first")[0].as_py()
    if first is None:
        raise dataset.ChurnDataError("the lake holds no orders: nothing to learn churn from")
    return first.date() if isinstance(first, dt.datetime) else first


def snapshot_rows(
    settings: Settings, inputs: list[LakeInput], day: dt.date, steps_for: StepsFor, cut: bool
) -> pa.Table:
    """The population at ``day`` with its features and ``churned``; with ``cut``, over the lake
    cut at the end of ``day`` instead of the whole lake."""
    label = dataset.label_step(day, settings.churn.horizon_days)
    if cut:
        inputs = dataset.cut_inputs(inputs)
        steps = [*features.fill(dataset.cut_steps(), day), *steps_for(day), label]
    else:
        steps = [*steps_for(day), label]
    table = compute(settings.compute, inputs, steps, [dataset.POPULATION])[dataset.POPULATION]
    return null_absent_sources(settings, table)


@dataclass
class TrainingSet:
    snapshots: list[dt.date]
    rows: pa.Table  # every snapshot's population, features and churned
    leak_checked: list[dt.date] = field(default_factory=list)


def training_set(
    settings: Settings,
    lake: Lake,
    as_of: dt.date,
    steps_for: StepsFor = features.profile_steps,
) -> TrainingSet:
    churn = settings.churn
    inputs = _inputs(lake, as_of)
    dates = dataset.snapshot_dates(
        as_of,
        _first_order(settings, inputs),
        churn.horizon_days,
        churn.snapshots,
        churn.snapshot_interval_days,
    )
    tables, checked = [], []
    candidates = dataset.candidate_features(settings.sources.enabled)
    for day in dates:
        started = time.perf_counter()
        full = snapshot_rows(settings, inputs, day, steps_for, cut=False)
        if churn.leak_check:
            cut = snapshot_rows(settings, inputs, day, steps_for, cut=True)
            dataset.raise_on_leaks(day, dataset.leaks(day, full, cut, candidates))
            checked.append(day)
        tables.append(full)
        log.info(
            "churn snapshot %s: %d persons, %.1fs",
            day,
            full.num_rows,
            time.perf_counter() - started,
        )
    return TrainingSet(dates, pa.concat_tables(tables, promote_options="permissive"), checked)


def _split_counts(y: np.ndarray, what: str, minimum: int) -> None:
    churners, stayers = int(y.sum()), int(len(y) - y.sum())
    if churners < minimum or stayers < minimum:
        raise dataset.ChurnDataError(
            f"the {what} has {churners} churners and {stayers} non-churners; at least {minimum} "
            "of each are needed (churn.min_positives): wait for more history, add snapshot "
            "dates (churn.snapshots) or lower churn.min_positives"
        )


def _columns(table: pa.Table, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    matrix = dataset.feature_matrix(table, names)
    return {name: matrix[:, j] for j, name in enumerate(names)}


_BASELINE_FEATURES = (
    "days_since_last_purchase",
    "rfm_recency",
    "rfm_frequency",
    "rfm_monetary",
    "number_of_orders",
    "first_purchase_date",
    "last_purchase_date",
)


def _baselines(
    train: pa.Table, y_train: np.ndarray, test: pa.Table, seed: int
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Each baseline's test probabilities; and the baselines left out, with the reason."""
    a, b = _columns(train, _BASELINE_FEATURES), _columns(test, _BASELINE_FEATURES)
    out: dict[str, np.ndarray] = {}
    skipped: dict[str, str] = {}
    for name, scorer in (
        ("days_since_last_purchase", evaluate.recency_score),
        ("rfm", evaluate.rfm_score),
    ):
        out[name] = evaluate.as_probability(scorer(a), y_train, scorer(b))
    try:
        evaluate.bgnbd_reference_check()
        # fitted on the test snapshot's own history (no labels), and on the last training one
        latest = pc.equal(train.column("batch_date"), pc.max(train.column("batch_date")))
        fit_train = evaluate.BgNbd(_columns(train.filter(latest), _BASELINE_FEATURES), 20_000, seed)
        fit_test = evaluate.BgNbd(b, 20_000, seed)
        out["bgnbd"] = evaluate.as_probability(fit_train.score(a), y_train, fit_test.score(b))
    except (MissingDependencyError, evaluate.UntrustedBaseline) as exc:
        skipped["bgnbd"] = str(exc)
    return out, skipped


@dataclass
class TrainResult:
    report: dict[str, Any]
    version: str
    folder: str


def train(
    settings: Settings,
    as_of: dt.date | None = None,
    *,
    steps_for: StepsFor = features.profile_steps,
    charts: bool = True,
) -> TrainResult:
    """Build the training set, train, evaluate against the baselines, register; see the module
    docstring."""
    churn = settings.churn
    lake = Lake(settings.lake.url)
    as_of = _newest_identity(lake, as_of)
    started = time.perf_counter()
    data = training_set(settings, lake, as_of, steps_for)
    built = time.perf_counter() - started
    dates = data.rows.column("batch_date")
    test_day = data.snapshots[-1]
    is_test = pc.equal(dates, pa.scalar(test_day, pa.date32()))
    train_rows, test_rows = data.rows.filter(pc.invert(is_test)), data.rows.filter(is_test)
    y_train = train_rows.column("churned").to_numpy(zero_copy_only=False).astype(np.int8)
    y_test = test_rows.column("churned").to_numpy(zero_copy_only=False).astype(np.int8)
    _split_counts(
        y_train, f"training set ({', '.join(map(str, data.snapshots[:-1]))})", churn.min_positives
    )
    _split_counts(y_test, f"test snapshot ({test_day})", churn.min_positives)

    candidates = dataset.candidate_features(settings.sources.enabled)
    x_all = dataset.feature_matrix(train_rows, candidates)
    present = ~np.all(np.isnan(x_all), axis=0)
    used = tuple(name for name, keep in zip(candidates, present, strict=True) if keep)
    x_train, x_test = x_all[:, present], dataset.feature_matrix(test_rows, used)

    fit_started = time.perf_counter()
    groups = train_rows.column("person_id").to_numpy(zero_copy_only=False)
    model = churn_model.fit(x_train, y_train, groups, used, churn.calibration_share, churn.seed)
    fit_seconds = time.perf_counter() - fit_started
    probabilities = {"churn_model": model.predict(x_test)}
    baselines, skipped = _baselines(train_rows, y_train, test_rows, churn.seed)
    probabilities.update(baselines)
    results = {name: evaluate.metrics(y_test, p).as_dict() for name, p in probabilities.items()}
    best_baseline = max((results[n]["roc_auc"] for n in baselines), default=float("nan"))
    report: dict[str, Any] = {
        "as_of": as_of.isoformat(),
        "horizon_days": churn.horizon_days,
        "snapshots": [d.isoformat() for d in data.snapshots],
        "train_snapshots": [d.isoformat() for d in data.snapshots[:-1]],
        "test_snapshot": test_day.isoformat(),
        "leak_checked": [d.isoformat() for d in data.leak_checked],
        "rows": {"train": len(y_train), "test": len(y_test)},
        "churn_rate": {"train": float(np.mean(y_train)), "test": float(np.mean(y_test))},
        "features": list(used),
        "features_absent": [n for n in candidates if n not in used],
        "models": results,
        "roc_auc_over_best_baseline": round(results["churn_model"]["roc_auc"] - best_baseline, 4),
        "baselines_skipped": skipped,
        "top_features": evaluate.importances(model.contributions(x_test)[0], used),
        "seconds": {
            "training_set": round(built, 2),
            "fit": round(fit_seconds, 2),
            "total": round(time.perf_counter() - started, 2),
        },
    }
    files = {"model.pkl": registry.dump_model(model)}
    if charts:
        files.update(_charts(y_test, probabilities))
    version, folder = registry.register(lake, report, files)
    report["model_version"] = version
    report["registry"] = folder
    report["charts"] = [f"{folder}/{name}" for name in files if name.endswith(".png")]
    return TrainResult(report, version, folder)


def _charts(y: np.ndarray, probabilities: dict[str, np.ndarray]) -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as folder:
        calibration, lift = Path(folder) / "calibration.png", Path(folder) / "lift.png"
        plots.calibration_png(calibration, y, probabilities)
        plots.lift_png(lift, y, probabilities)
        return {"calibration.png": calibration.read_bytes(), "lift.png": lift.read_bytes()}


@dataclass
class ScoreResult:
    batch_date: dt.date
    model_version: str
    scored: int
    persons: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "batch_date": self.batch_date.isoformat()}


def band(probability: np.ndarray, thresholds: tuple[float, float]) -> list[str | None]:
    low, high = thresholds
    return [
        None if np.isnan(p) else "high" if p >= high else "medium" if p >= low else "low"
        for p in probability
    ]


def score(
    settings: Settings, day: dt.date, version: str | None = None, lake: Lake | None = None
) -> ScoreResult:
    """Score day D's batch profile (the features zone's partition) with the registered model
    (``version``, else ``churn.model_version``, else the newest) and write it back."""
    started = time.perf_counter()
    lake = lake or Lake(settings.lake.url)
    manifest, model = registry.load(lake, version or settings.churn.model_version)
    profile = lake.read_partition("profile", "batch_profile", day, ZONE)
    known = (set(catalogue.BY_NAME) & set(profile.schema.names)) | set(dataset.DERIVED)
    missing = [f for f in model.features if f not in known]
    if missing:
        raise ModelMismatchError(
            f"churn model {manifest['version']} needs features the batch profile of {day} does "
            f"not have: {', '.join(missing)}; train a new model (c360 train churn)"
        )
    absent = set(catalogue.absent_features(settings.sources.enabled)) & set(model.features)
    if absent:
        raise ModelMismatchError(
            f"churn model {manifest['version']} uses features of sources switched off "
            f"(sources.enabled): {', '.join(sorted(absent))}; train a new model (c360 train churn)"
        )
    buyers = pc.greater(pc.fill_null(profile.column("number_of_orders"), 0), 0)
    rows = np.flatnonzero(buyers.to_numpy(zero_copy_only=False))
    x = dataset.feature_matrix(profile.take(pa.array(rows)), model.features)
    risk = np.full(profile.num_rows, np.nan)
    risk[rows] = model.predict(x)
    reasons: list[list[str | None]] = [[None, None, None] for _ in range(profile.num_rows)]
    for i, texts in zip(rows, model.reasons(x), strict=True):
        reasons[i] = texts
    scored = {
        "churn_risk": pa.array(risk, pa.float64(), mask=np.isnan(risk)),
        "churn_risk_band": pa.array(band(risk, settings.churn.band_thresholds), pa.string()),
        "model_version": pa.array(
            [manifest["version"] if not np.isnan(r) else None for r in risk], pa.string()
        ),
        **{
            f"churn_reason_{k + 1}": pa.array([r[k] for r in reasons], pa.string())
            for k in range(3)
        },
    }
    for name, values in scored.items():
        index = profile.schema.get_field_index(name)
        if index < 0:
            profile = profile.append_column(name, values)
        else:
            profile = profile.set_column(index, name, values)
    lake.write_partition("profile", "batch_profile", day, profile, zone=ZONE)
    return ScoreResult(
        day, manifest["version"], len(rows), profile.num_rows, time.perf_counter() - started
    )
