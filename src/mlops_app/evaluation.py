"""Holdout metrics with business names (see ``metric_catalog``)."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skmetrics


def classification_metrics(y_true, y_score, *, threshold: float = 0.5) -> dict[str, float]:
    """Metrics of a binary classifier whose positive class is "bad" (the thing to catch).

    Args:
        y_true: 1/True for bad, 0/False for good.
        y_score: predicted probability of bad.
        threshold: scores at or above it are discarded as bad.

    Returns:
        recall_bad, false_discard_rate, precision_bad, accuracy, f1 and roc_auc (roc_auc is
        NaN-free: it is left out when the holdout holds a single class).

    Raises:
        ValueError: the inputs are empty or of different lengths.
    """
    truth = np.asarray(y_true).astype(bool)
    score = np.asarray(y_score, dtype=float)
    if truth.size == 0 or truth.size != score.size:
        raise ValueError(f"Need the same, non-zero number of labels and scores; got {truth.size} and {score.size}.")
    predicted = score >= threshold
    bad, good = truth.sum(), (~truth).sum()
    caught = (predicted & truth).sum()
    wrongly_discarded = (predicted & ~truth).sum()
    result = {
        "recall_bad": float(caught / bad) if bad else 0.0,
        "false_discard_rate": float(wrongly_discarded / good) if good else 0.0,
        "precision_bad": float(caught / predicted.sum()) if predicted.sum() else 0.0,
        "accuracy": float((predicted == truth).mean()),
        "f1": float(skmetrics.f1_score(truth, predicted, zero_division=0)),
    }
    if bad and good:
        result["roc_auc"] = float(skmetrics.roc_auc_score(truth, score))
    return result


def regression_metrics(y_true, y_pred) -> dict[str, float]:
    """MAE, RMSE and R² of a regression estimate."""
    truth = np.asarray(y_true, dtype=float)
    predicted = np.asarray(y_pred, dtype=float)
    if truth.size == 0 or truth.size != predicted.size:
        raise ValueError(f"Need the same, non-zero number of targets and estimates; got {truth.size} and {predicted.size}.")
    return {
        "mae": float(skmetrics.mean_absolute_error(truth, predicted)),
        "rmse": float(np.sqrt(skmetrics.mean_squared_error(truth, predicted))),
        "r2": float(skmetrics.r2_score(truth, predicted)),
    }
