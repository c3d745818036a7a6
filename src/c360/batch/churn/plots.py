"""The report's two charts, as PNG: calibration (reliability) and cumulative lift.

matplotlib is an optional dependency (``pip install 'c360[churn]'``), imported when a chart is
drawn, with the non-interactive Agg backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.calibration import calibration_curve

from c360.errors import MissingDependencyError


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependencyError("matplotlib", "churn", "the churn report's charts") from None
    return plt


def calibration_png(
    path: Path, y: np.ndarray, probabilities: dict[str, np.ndarray], bins: int = 10
) -> None:
    """Mean predicted probability against the observed churn rate, per decile of prediction
    (scikit-learn's ``calibration_curve``; tied predictions share a bin)."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6, 6))
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
    for name, p in probabilities.items():
        observed, predicted = calibration_curve(y, p, n_bins=bins, strategy="quantile")
        axes.plot(predicted, observed, marker="o", label=name)
    axes.set_xlabel("predicted churn probability (decile mean)")
    axes.set_ylabel("observed churn rate")
    axes.set_title("Calibration on the test snapshot")
    axes.legend()
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)


def lift_png(path: Path, y: np.ndarray, scores: dict[str, np.ndarray]) -> None:
    """Cumulative lift: churn rate among the top k% of scores over the overall rate."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 5))
    base = float(np.mean(y))
    shares = np.linspace(0.05, 1.0, 20)
    for name, score in scores.items():
        order = np.argsort(-score, kind="stable")
        lifts = [float(np.mean(y[order[: max(1, int(len(y) * s))]]) / base) for s in shares]
        axes.plot(shares * 100, lifts, marker=".", label=name)
    axes.axhline(1.0, linestyle="--", color="grey")
    axes.set_xlabel("top % of persons by score")
    axes.set_ylabel("lift (churn rate / overall rate)")
    axes.set_title("Cumulative lift on the test snapshot")
    axes.legend()
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
