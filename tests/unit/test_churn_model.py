"""The churn model's parts on small synthetic data: the reasons' attribution adds up to the
model's log-odds, the BG/NBD baseline reproduces its package's reference fit, snapshot dates,
lift and the feature matrix."""

from __future__ import annotations

import datetime as dt
import sys
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from c360.batch.churn import dataset, evaluate, plots
from c360.batch.churn.model import fit, tree_contributions
from c360.errors import MissingDependencyError


def _data(seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3000, 4))
    x[rng.random(3000) < 0.2, 2] = np.nan  # a feature with missing values
    logit = 2.0 * x[:, 0] - 1.0 * np.nan_to_num(x[:, 2]) + 0.1 * x[:, 3]
    y = (rng.random(3000) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    return x, y


def test_contributions_add_up_to_the_log_odds_and_name_the_driver() -> None:
    x, y = _data()
    model = fit(x, y, np.arange(len(y)), ("a", "b", "c", "d"), 0.2, seed=1)
    parts, bias = tree_contributions(model.trees, x)
    assert parts.sum(axis=1) + bias == pytest.approx(model.log_odds(x), abs=1e-9)
    mean = np.abs(parts).mean(axis=0)
    assert mean.argmax() == 0  # the strongest driver of the synthetic churn
    assert mean[1] < mean[0] / 3  # b is noise (the trees still split on it a little)
    # a person far out on a: a raises the risk most, and the reason says so
    person = np.array([[3.0, 0.0, 0.0, 0.0]])
    reasons = model.reasons(person)[0]
    assert reasons[0] is not None and reasons[0].startswith("a = 3 (+")
    probability = model.predict(x)
    assert probability.min() >= 0.0 and probability.max() <= 1.0


def test_bgnbd_reproduces_its_reference_fit_of_cdnow() -> None:
    fitted = evaluate.bgnbd_reference_check()
    for name, value in evaluate.CDNOW_REFERENCE.items():
        assert fitted[name] == pytest.approx(value, rel=0.01), name


def test_bgnbd_says_a_long_silent_frequent_buyer_is_less_alive() -> None:
    rng = np.random.default_rng(5)
    n = 400
    first = rng.uniform(100, 300, n)
    orders = rng.integers(1, 8, n).astype(float)
    last = first * rng.uniform(0, 1, n)
    columns = {"first_purchase_date": first, "last_purchase_date": last, "number_of_orders": orders}
    model = evaluate.BgNbd(columns, max_rows=10_000, seed=1)
    probe = {
        "first_purchase_date": np.array([200.0, 200.0]),
        "last_purchase_date": np.array([2.0, 150.0]),  # days before T: recent, long silent
        "number_of_orders": np.array([6.0, 6.0]),
    }
    recent, silent = model.score(probe)
    assert silent > recent


def test_snapshot_dates_step_back_from_the_last_passed_horizon() -> None:
    dates = dataset.snapshot_dates(dt.date(2025, 12, 31), dt.date(2025, 1, 1), 90, 3, 30)
    assert dates == [dt.date(2025, 8, 3), dt.date(2025, 9, 2), dt.date(2025, 10, 2)]
    with pytest.raises(dataset.ChurnDataError, match="at least 2 are needed"):
        dataset.snapshot_dates(dt.date(2025, 5, 1), dt.date(2025, 1, 1), 90, 6, 30)


def test_lift_of_the_top_decile() -> None:
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0] * 10)
    score = np.where(y == 1, 1.0, 0.0)
    score[:10] = 0.5  # ten rows, two churners, not at the top
    # top 10 rows: 10 of the 18 remaining churners ranked 1.0 -> all churners; base rate 0.2
    assert evaluate.lift_top_decile(y, score) == pytest.approx(5.0)


def test_feature_matrix_counts_days_before_the_end_of_the_batch_date() -> None:
    table = pa.table(
        {
            "batch_date": pa.array([dt.date(2025, 3, 10)] * 2, pa.date32()),
            "last_purchase_date": pa.array([dt.date(2025, 3, 10), None], pa.date32()),
            "last_visit_at": pa.array(
                [dt.datetime(2025, 3, 10, 12, tzinfo=dt.UTC), None], pa.timestamp("us", tz="UTC")
            ),
            "marketing_opt_in": [True, None],
            "total_lifetime_spend": pa.array([Decimal("12.50"), 0], pa.decimal128(18, 2)),
        }
    )
    names = ("last_purchase_date", "last_visit_at", "marketing_opt_in", "total_lifetime_spend")
    matrix = dataset.feature_matrix(table, names)
    assert matrix[0].tolist() == [1.0, 0.5, 1.0, 12.5]
    assert np.isnan(matrix[1, :3]).all() and matrix[1, 3] == 0.0


def test_derived_inputs_follow_the_persons_purchase_rhythm() -> None:
    day = dt.date(2025, 3, 10)
    table = pa.table(
        {
            "batch_date": pa.array([day] * 3, pa.date32()),
            "number_of_orders": pa.array([5, 1, 0], pa.int64()),
            "first_purchase_date": pa.array([dt.date(2025, 1, 9), dt.date(2025, 3, 1), None]),
            "last_purchase_date": pa.array([dt.date(2025, 2, 28), dt.date(2025, 3, 1), None]),
        }
    )
    matrix = dataset.feature_matrix(table, dataset.DERIVED)
    # 61 and 11 days before the end of D: 4 intervals of 12.5 days; 11 days = 0.88 of one
    assert matrix[0].tolist() == pytest.approx([12.5, 11 / 12.5, 5 / 61])
    assert np.isnan(matrix[1, :2]).all() and matrix[1, 2] == pytest.approx(1 / 10)
    assert np.isnan(matrix[2]).all()


def test_without_the_churn_extra_the_charts_and_bgnbd_name_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails as if not installed
    monkeypatch.setitem(sys.modules, "lifetimes", None)
    y = np.array([0, 1, 1, 0])
    with pytest.raises(MissingDependencyError, match=r"pip install 'c360\[churn\]'"):
        plots.lift_png(tmp_path / "lift.png", y, {"m": y.astype(float)})
    with pytest.raises(MissingDependencyError, match="lifetimes"):
        evaluate.bgnbd_reference_check()
