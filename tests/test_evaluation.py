from __future__ import annotations

import pytest

from mlops_app.evaluation import classification_metrics, regression_metrics
from mlops_app.metric_catalog import describe_target, format_value, meets_target, metric_info


def test_classification_metrics_by_hand():
    truth = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    score = [0.9, 0.8, 0.7, 0.2, 0.6, 0.1, 0.1, 0.1, 0.1, 0.1]
    result = classification_metrics(truth, score, threshold=0.5)
    assert result["recall_bad"] == pytest.approx(3 / 4)
    assert result["false_discard_rate"] == pytest.approx(1 / 6)
    assert result["precision_bad"] == pytest.approx(3 / 4)
    assert result["accuracy"] == pytest.approx(8 / 10)
    assert 0.5 < result["roc_auc"] <= 1


def test_single_class_holdout_has_no_auc_and_empty_input_is_refused():
    assert "roc_auc" not in classification_metrics([0, 0], [0.1, 0.9])
    with pytest.raises(ValueError, match="same, non-zero number"):
        classification_metrics([], [])


def test_regression_metrics():
    result = regression_metrics([1.0, 2.0, 3.0], [1.5, 2.0, 2.5])
    assert result["mae"] == pytest.approx(1 / 3)
    assert result["rmse"] == pytest.approx((0.5 / 3) ** 0.5)


def test_formatting_and_targets():
    assert format_value(0.9612, "%") == "96.1%"
    assert format_value(0.52, "°Bx") == "0.52 °Bx"
    assert format_value(None, "%") == "n/a"
    assert meets_target(0.96, {"min": 0.95}) and not meets_target(0.03, {"max": 0.02})
    assert describe_target({"min": 0.95}, "%") == "target at least 95.0%"
    assert metric_info("recall_bad").label == "Bad apples caught"
    assert metric_info("mae", "°Bx").unit == "°Bx"
    assert metric_info("custom_thing").label == "custom thing"
