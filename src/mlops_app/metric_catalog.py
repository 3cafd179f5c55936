"""Plain-language names, units and explanations for the metrics the product shows.

Pages never show a raw metric key to a stakeholder: they look it up here. A metric that is
not in the catalogue is still shown, under its key, with a plain number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class MetricInfo:
    """How to present one metric."""

    label: str
    unit: str  # "%" for shares stored as 0..1, "" for plain numbers, or a physical unit
    higher_is_better: bool
    help: str


METRICS: dict[str, MetricInfo] = {
    "recall_bad": MetricInfo(
        "Bad apples caught",
        "%",
        True,
        "Of all apples that really were bad, the share the model sent to the discard pile. Missed bad apples reach customers.",
    ),
    "false_discard_rate": MetricInfo(
        "Good apples discarded",
        "%",
        False,
        "Of all good apples, the share the model wrongly discarded. Every point here is sellable fruit thrown away.",
    ),
    "precision_bad": MetricInfo(
        "Discards that were really bad",
        "%",
        True,
        "Of the apples the model discarded, the share that really were bad.",
    ),
    "accuracy": MetricInfo("Correct decisions", "%", True, "Share of apples the model graded correctly, good or bad."),
    "roc_auc": MetricInfo(
        "Ranking quality (ROC AUC)",
        "",
        True,
        "How well the model ranks bad apples above good ones, from 0.5 (a coin toss) to 1.0 (perfect).",
    ),
    "f1": MetricInfo("F1 score", "", True, "Balance of caught bad apples and correct discards, from 0 to 1."),
    "mae": MetricInfo(
        "Typical error (MAE)",
        "",
        False,
        "Average size of the error between the estimate and the measured value, in the target's unit.",
    ),
    "rmse": MetricInfo(
        "Error with big misses weighted (RMSE)",
        "",
        False,
        "Like the typical error, but large misses count more.",
    ),
    "r2": MetricInfo(
        "Share of variation explained (R²)",
        "",
        True,
        "How much of the ups and downs of the target the model explains, from 0 (none) to 1 (all).",
    ),
}


def metric_info(name: str, unit: str | None = None) -> MetricInfo:
    """The catalogue entry for ``name``; unknown names get a neutral entry under their key.

    Args:
        unit: overrides the catalogue unit (a model card may say its MAE is in °Bx).
    """
    info = METRICS.get(name) or MetricInfo(name.replace("_", " "), "", True, "")
    if unit is not None:
        info = MetricInfo(info.label, unit, info.higher_is_better, info.help)
    return info


def format_value(value: float | None, unit: str) -> str:
    """Format a metric value with its unit: shares as percentages, others with 3 significant digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if unit == "%":
        return f"{value * 100:.1f}%"
    text = f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{text} {unit}".strip()


def meets_target(value: float, target: dict[str, float]) -> bool:
    """Whether ``value`` satisfies a target of the form ``{"min": x}`` and/or ``{"max": y}``."""
    if "min" in target and value < target["min"]:
        return False
    if "max" in target and value > target["max"]:
        return False
    return True


def describe_target(target: dict[str, float], unit: str) -> str:
    """'target at least 95.0%' / 'limit 2.0%' for a target mapping."""
    parts = []
    if "min" in target:
        parts.append(f"target at least {format_value(target['min'], unit)}")
    if "max" in target:
        parts.append(f"limit {format_value(target['max'], unit)}")
    return ", ".join(parts)
