"""The churn model: gradient-boosted trees, calibrated on held-out persons, with reasons.

scikit-learn's ``HistGradientBoostingClassifier`` takes missing values as they come (a feature of
an absent source is NaN, never zero). Its scores are mapped to probabilities by isotonic
regression fitted on persons held out of the trees' training (``churn.calibration_share``,
whole persons, so no person's earlier snapshot teaches the calibration about itself).

*Reasons* (:meth:`ChurnModel.reasons`): a person's log-odds split over the features along each
tree's decision path (Saabas' attribution: at each split the change of the node value is
credited to the split's feature; :func:`tree_contributions`). The parts plus a bias add up to
the model's log-odds exactly (checked at training); the three largest positive parts are the
reasons that raise the person's risk. Unlike SHAP it does not share interactions fairly
between features; it needs nothing beyond scikit-learn and takes one pass over the trees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.isotonic import IsotonicRegression


@dataclass
class ChurnModel:
    features: tuple[str, ...]
    trees: HistGradientBoostingClassifier
    calibration: IsotonicRegression

    def log_odds(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.trees.decision_function(x), dtype=np.float64)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Calibrated churn probabilities."""
        if x.shape[0] == 0:
            return np.empty(0)
        return np.asarray(self.calibration.predict(self.log_odds(x)), dtype=np.float64)

    def contributions(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        """Per person and feature, the feature's share of the log-odds, and the bias: each
        row's contributions plus the bias are its log-odds (:func:`tree_contributions`)."""
        return tree_contributions(self.trees, x)

    def reasons(self, x: np.ndarray, top: int = 3) -> list[list[str | None]]:
        """For each person, up to ``top`` texts ``feature = value (+effect)`` for the features
        that raise the risk most; None where fewer raise it."""
        if x.shape[0] == 0:
            return []
        effects, _ = self.contributions(x)
        order = np.argsort(-effects, axis=1)[:, :top]
        texts: list[list[str | None]] = []
        for i in range(x.shape[0]):
            row: list[str | None] = []
            for j in order[i]:
                effect = effects[i, j]
                if effect <= 1e-9:
                    row.append(None)
                    continue
                value = x[i, j]
                shown = "missing" if np.isnan(value) else f"{value:.4g}"
                row.append(f"{self.features[j]} = {shown} (+{effect:.2f} log-odds)")
            row += [None] * (top - len(row))
            texts.append(row)
        return texts


def fit(
    x: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    features: tuple[str, ...],
    calibration_share: float,
    seed: int,
) -> ChurnModel:
    """Trees on the persons not held out, isotonic calibration on the held-out ones; the
    attribution checked on held-out rows."""
    rng = np.random.default_rng(seed)
    persons = np.unique(groups)
    held = set(
        rng.choice(persons, size=max(1, int(len(persons) * calibration_share)), replace=False)
    )
    calibrate = np.fromiter((g in held for g in groups), dtype=bool, count=len(groups))
    # chosen on the medium world's training snapshots (docs/benchmarks.md): 63 leaves and a
    # larger step beat 31 and 0.05 by 0.003 ROC-AUC; more trees cost scoring time (reasons).
    # Leaves of 100 rows there; a small shop's few hundred rows need smaller ones to split.
    fitted = int(np.sum(~calibrate))
    trees = HistGradientBoostingClassifier(
        max_iter=250,
        learning_rate=0.1,
        max_leaf_nodes=63,
        min_samples_leaf=int(np.clip(fitted // 200, 5, 100)),
        l2_regularization=1.0,
        early_stopping=False,
        random_state=seed,
    )
    trees.fit(x[~calibrate], y[~calibrate])
    isotonic = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    isotonic.fit(np.asarray(trees.decision_function(x[calibrate])), y[calibrate])
    model = ChurnModel(features, trees, isotonic)
    check_contributions(model, x[calibrate][:2000])
    return model


class AttributionError(RuntimeError):
    """The reasons' attribution does not add up to the model's log-odds."""


def check_contributions(model: ChurnModel, x: np.ndarray) -> None:
    """Contributions plus bias must equal the log-odds: the guard on reading scikit-learn's
    tree arrays (a private layout a new release could change)."""
    parts, bias = model.contributions(x)
    gap = np.max(np.abs(parts.sum(axis=1) + bias - model.log_odds(x)), initial=0.0)
    if gap > 1e-6:
        raise AttributionError(
            f"churn reasons: feature contributions miss the log-odds by {gap:.3g}; this "
            "scikit-learn's tree layout is not the one c360.batch.churn.model reads"
        )


def tree_contributions(
    trees: HistGradientBoostingClassifier, x: np.ndarray
) -> tuple[np.ndarray, float]:
    """Saabas' path attribution of a binary ``HistGradientBoostingClassifier``'s log-odds.

    Reads the fitted trees (scikit-learn's ``_predictors``: node arrays with ``value``,
    ``feature_idx``, ``num_threshold``, ``missing_go_to_left``, children); scikit-learn shrinks
    leaf values by the learning rate and not inner ones, so inner values are shrunk here. No
    categorical splits (the model declares none). Returns (contributions, bias)."""
    out = np.zeros_like(x, dtype=np.float64)
    bias = float(np.ravel(trees._baseline_prediction)[0])
    rate = float(trees.learning_rate)
    rows = np.arange(x.shape[0])
    for (predictor,) in trees._predictors:
        nodes = predictor.nodes
        leaf = nodes["is_leaf"].astype(bool)
        value = np.where(leaf, nodes["value"], nodes["value"] * rate)
        bias += float(value[0])
        node = np.zeros(x.shape[0], dtype=np.int64)
        active = rows[~leaf[node]]
        while active.size:
            current = node[active]
            feature = nodes["feature_idx"][current].astype(np.int64)
            seen = x[active, feature]
            left = np.where(
                np.isnan(seen),
                nodes["missing_go_to_left"][current].astype(bool),
                seen <= nodes["num_threshold"][current],
            )
            child = np.where(left, nodes["left"][current], nodes["right"][current]).astype(np.int64)
            out[active, feature] += value[child] - value[current]
            node[active] = child
            active = active[~leaf[child]]
    return out, bias
