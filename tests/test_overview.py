from __future__ import annotations

from datetime import UTC, datetime

from sklearn.dummy import DummyClassifier

from mlops_app.config import load_settings
from mlops_app.overview import dataset_summaries, headline, model_portfolio, recent_activity
from mlops_app.registry import Registry
from mlops_app.status import Status
from mlops_app.warehouse import Warehouse


def _stores(settings):
    warehouse = Warehouse.from_settings(settings)
    warehouse.migrate()
    return Registry(settings.registry_path), warehouse


def test_portfolio_on_the_demo(use_demo_home):
    registry, warehouse = _stores(load_settings())
    models = {m.name: m for m in model_portfolio(registry, warehouse)}
    grader = models["apple-grader"]
    assert grader.champion == 2 and grader.key_metric_label == "Bad apples caught"
    assert grader.key_metric_value.endswith("%")
    assert grader.status in (Status.HEALTHY, Status.WATCH)
    assert "holdout" in grader.verdict
    sugar = models["sugar-estimator"]
    assert sugar.key_metric_value.endswith("°Bx")
    datasets = dataset_summaries(warehouse, now=datetime(2026, 11, 1, tzinfo=UTC))
    assert datasets[0].name == "apple_harvest" and datasets[0].batches == 97
    # The old-format file was rejected within the last week of deliveries.
    assert datasets[0].status is Status.ACT and "old-export.csv (rejected)" in datasets[0].verdict
    activity = recent_activity(registry, warehouse, limit=10)
    assert len(activity) == 10
    assert [a.time for a in activity] == sorted((a.time for a in activity), reverse=True)
    assert {a.kind for a in recent_activity(registry, warehouse, limit=200)} == {"model", "dataset"}


def _fitted():
    return DummyClassifier(strategy="prior").fit([[0.0], [1.0]], [0, 1])


def test_status_rules(tmp_path):
    registry, warehouse = _stores(load_settings({"MLOPS_APP_HOME": str(tmp_path)}))
    registry.register_version(
        "meets", _fitted(), actor="a@x.example", metrics={"recall_bad": 0.97}, extra={"key_metric": "recall_bad", "targets": {"recall_bad": {"min": 0.95}}}
    )
    registry.set_alias("meets", "champion", 1, actor="a@x.example")
    registry.register_version(
        "misses", _fitted(), actor="a@x.example", metrics={"recall_bad": 0.90}, extra={"key_metric": "recall_bad", "targets": {"recall_bad": {"min": 0.95}}}
    )
    registry.set_alias("misses", "champion", 1, actor="a@x.example")
    registry.register_version("unserved", _fitted(), actor="a@x.example", metrics={"accuracy": 0.5})
    registry.register_version("alerted", _fitted(), actor="a@x.example", metrics={"recall_bad": 0.99})
    registry.set_alias("alerted", "champion", 1, actor="a@x.example")
    warehouse.execute(
        "INSERT INTO alerts (alert_id, model, kind, severity, status, message, opened_at) VALUES ('a1', 'alerted', 'drift', 'act', 'open', 'drift', now())"
    )
    models = {m.name: m for m in model_portfolio(registry, warehouse)}
    assert models["meets"].status is Status.HEALTHY
    assert models["misses"].status is Status.WATCH and "target at least 95.0%" in models["misses"].verdict
    assert models["unserved"].status is Status.UNKNOWN and "No version is champion" in models["unserved"].verdict
    assert models["alerted"].status is Status.ACT and "1 open alert" in models["alerted"].verdict
    status, sentence = headline(list(models.values()), [])
    assert status is Status.ACT and "alerted" in sentence


def test_empty_home_headline_guides(tmp_path):
    registry, warehouse = _stores(load_settings({"MLOPS_APP_HOME": str(tmp_path)}))
    status, sentence = headline(model_portfolio(registry, warehouse), dataset_summaries(warehouse))
    assert status is Status.UNKNOWN and "ingest a dataset or register a model" in sentence


def test_stale_dataset_is_watch(tmp_path):
    from mlops_app.datasets import Dataset, register_dataset

    _, warehouse = _stores(load_settings({"MLOPS_APP_HOME": str(tmp_path)}))
    register_dataset(warehouse, Dataset("sensor", "Readings", "me@x.example", "test", freshness_hours=24))
    warehouse.execute(
        "UPDATE datasets SET row_count = 10, last_event_at = TIMESTAMPTZ '2026-12-01 00:00:00+00' WHERE name = 'sensor'"
    )
    warehouse.execute(
        "INSERT INTO batches (batch_id, dataset, received_at, row_count, status) "
        "VALUES ('b1', 'sensor', TIMESTAMPTZ '2026-12-01 01:00:00+00', 10, 'accepted')"
    )
    fresh = dataset_summaries(warehouse, now=datetime(2026, 12, 1, 12, tzinfo=UTC))
    assert fresh[0].status is Status.HEALTHY and "12 hours old" in fresh[0].verdict
    late = dataset_summaries(warehouse, now=datetime(2026, 12, 24, tzinfo=UTC))
    assert late[0].status is Status.WATCH and "23 days old" in late[0].verdict


def test_a_monitored_model_shows_its_live_status_and_kpi(use_monitored_home):
    from mlops_app.monitoring import model_status

    registry, warehouse = _stores(load_settings())
    models = {m.name: m for m in model_portfolio(registry, warehouse)}
    grader, sugar = models["apple-grader"], models["sugar-estimator"]
    status, sentence = model_status(warehouse, "apple-grader")
    assert grader.monitored and grader.status is status and status in (Status.WATCH, Status.ACT)
    assert grader.verdict == sentence.removeprefix(f"{status.word}: ") and "alert" in grader.verdict
    # The key metric is a live KPI over the last days, dated, not the holdout figure at release.
    assert grader.key_metric_label.startswith("Share of ") and "(as of 2026-09-0" in grader.key_metric_label
    assert grader.key_metric_value.endswith("%") and ("target" in grader.key_metric_help or "limit" in grader.key_metric_help)
    assert not sugar.monitored and "holdout" in sugar.verdict
    assert headline(list(models.values()), [])[0] is status
