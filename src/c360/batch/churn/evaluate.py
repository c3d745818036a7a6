"""Scoring the churn model and the baselines a sceptic tries first, on the same rows.

Every contender gives a score per (person, snapshot); isotonic regression fitted on the training
snapshots maps a baseline's score to a probability (so its Brier score is fair), the model's
probabilities are its own calibrated ones. All are measured on the test snapshot:

- ``days_since_last_purchase``: recency alone;
- ``rfm``: 15 minus the sum of the three RFM quintiles (5 = best);
- ``bgnbd``: 1 - P(alive) of the BG/NBD model (Fader, Hardie & Lee 2005) as the ``lifetimes``
  package fits it (``pip install 'c360[churn]'``), trusted only once it reproduces the
  package's reference fit of the CDNOW data (:func:`bgnbd_reference_check`); frequency = orders
  - 1, recency = days from the first to the last purchase, T = days from the first purchase to
  the end of the snapshot date.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from c360.errors import DataError, MissingDependencyError

# The BG/NBD parameters of the CDNOW sample as published (Fader, Hardie & Lee 2005, and the
# lifetimes documentation's own example): r, alpha, a, b.
CDNOW_REFERENCE = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}


class UntrustedBaseline(DataError):
    """A baseline cannot be trusted: its package does not reproduce its own reference example,
    or its fit did not converge."""


@dataclass(frozen=True)
class Metrics:
    roc_auc: float
    pr_auc: float
    brier: float
    lift_top_decile: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in self.__dict__.items()}


def lift_top_decile(y: np.ndarray, score: np.ndarray) -> float:
    """Churn rate among the 10% highest scores over the overall churn rate."""
    top = max(1, int(np.ceil(len(y) * 0.1)))
    order = np.argsort(-score, kind="stable")[:top]
    base = float(np.mean(y))
    return float(np.mean(y[order]) / base) if base > 0 else float("nan")


def metrics(y: np.ndarray, probability: np.ndarray) -> Metrics:
    return Metrics(
        roc_auc=float(roc_auc_score(y, probability)),
        pr_auc=float(average_precision_score(y, probability)),
        brier=float(brier_score_loss(y, probability)),
        lift_top_decile=lift_top_decile(y, probability),
    )


def as_probability(
    train_score: np.ndarray, train_y: np.ndarray, test_score: np.ndarray
) -> np.ndarray:
    """A baseline's test scores as probabilities: isotonic regression fitted on training rows
    (missing scores take the training churn rate)."""
    known = ~np.isnan(train_score)
    isotonic = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    isotonic.fit(train_score[known], train_y[known])
    out = np.full(len(test_score), float(np.mean(train_y)))
    present = ~np.isnan(test_score)
    out[present] = isotonic.predict(test_score[present])
    return out


def recency_score(columns: dict[str, np.ndarray]) -> np.ndarray:
    return np.asarray(columns["days_since_last_purchase"], dtype=np.float64)


def rfm_score(columns: dict[str, np.ndarray]) -> np.ndarray:
    total = columns["rfm_recency"] + columns["rfm_frequency"] + columns["rfm_monetary"]
    return np.asarray(15.0 - total, dtype=np.float64)


def _lifetimes() -> Any:
    try:
        import lifetimes
        import lifetimes.utils
    except ImportError:
        raise MissingDependencyError("lifetimes", "churn", "the BG/NBD baseline") from None
    return lifetimes


def bgnbd_reference_check() -> dict[str, float]:
    """Fit the package's own CDNOW example and compare with the published parameters; raise
    if they differ by more than 1%. Returns the fitted parameters."""
    lifetimes = _lifetimes()
    from lifetimes.datasets import load_cdnow_summary

    data = load_cdnow_summary(index_col=[0])
    fitter = lifetimes.BetaGeoFitter(penalizer_coef=0.0)
    fitter.fit(data["frequency"], data["recency"], data["T"])
    fitted = {k: float(fitter.params_[k]) for k in CDNOW_REFERENCE}
    off = {
        k: v for k, v in fitted.items() if abs(v - CDNOW_REFERENCE[k]) > 0.01 * CDNOW_REFERENCE[k]
    }
    if off:
        raise UntrustedBaseline(
            f"lifetimes' BG/NBD does not reproduce its CDNOW reference fit ({off} vs "
            f"{CDNOW_REFERENCE}): the installed version is not trusted for the baseline"
        )
    return fitted


def bgnbd_inputs(columns: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frequency, recency, T) in days from the snapshot's features (see the module doc)."""
    first = columns["first_purchase_date"]  # days before the end of T
    last = columns["last_purchase_date"]
    frequency = np.maximum(columns["number_of_orders"] - 1, 0)
    recency = np.where(frequency > 0, first - last, 0.0)
    return frequency, recency, first


class BgNbd:
    """BG/NBD fitted on one snapshot's population (no labels needed), scoring 1 - P(alive)."""

    def __init__(self, columns: dict[str, np.ndarray], max_rows: int, seed: int) -> None:
        lifetimes = _lifetimes()
        frequency, recency, age = bgnbd_inputs(columns)
        rows = np.arange(len(age))
        if len(rows) > max_rows:
            rows = np.random.default_rng(seed).choice(rows, size=max_rows, replace=False)
        self.fitter = lifetimes.BetaGeoFitter(penalizer_coef=0.001)
        try:  # lifetimes prints the optimiser's state when it fails: not on our stdout
            with contextlib.redirect_stdout(io.StringIO()):
                self.fitter.fit(frequency[rows], recency[rows], age[rows])
        except lifetimes.utils.ConvergenceError:
            raise UntrustedBaseline(
                f"BG/NBD did not converge on this snapshot's {len(rows)} buyers"
            ) from None

    def score(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        frequency, recency, age = bgnbd_inputs(columns)
        alive = self.fitter.conditional_probability_alive(frequency, recency, age)
        return 1.0 - np.asarray(alive, dtype=np.float64)


def importances(
    contributions: np.ndarray, features: tuple[str, ...], top: int = 10
) -> list[dict[str, Any]]:
    """The features that move the test rows' log-odds most: mean absolute contribution (the
    same attribution as the per-person reasons), largest first."""
    mean = np.mean(np.abs(contributions), axis=0) if len(contributions) else np.zeros(len(features))
    order = np.argsort(-mean, kind="stable")[:top]
    return [{"feature": features[j], "mean_abs_log_odds": round(float(mean[j]), 4)} for j in order]
