from __future__ import annotations

import json

import pandas as pd
import pytest

from mlops_app.auth import Identity, local_identity
from mlops_app.config import load_settings
from mlops_app.datasets import get_dataset, list_datasets
from mlops_app.demo import CHANGE_DAY, MANIFEST_NAME, build_demo, generate_harvest
from mlops_app.errors import MlopsError, PermissionDeniedError
from mlops_app.registry import Registry
from mlops_app.warehouse import Warehouse


def test_generation_is_deterministic_and_shaped_like_the_story():
    frame = generate_harvest(seed=3, days=120, apples_per_day=300)
    again = generate_harvest(seed=3, days=120, apples_per_day=300)
    pd.testing.assert_frame_equal(frame, again)
    assert not frame.equals(generate_harvest(seed=4, days=120, apples_per_day=300))
    assert frame["apple_id"].is_unique

    before = frame[pd.to_datetime(frame["harvest_date"]) < pd.Timestamp(CHANGE_DAY)]
    after = frame[pd.to_datetime(frame["harvest_date"]) >= pd.Timestamp(CHANGE_DAY)]
    # The late-summer change: a new block and a new machine that reads redder and heavier.
    assert "block-h" not in set(before["orchard_block"]) and "block-h" in set(after["orchard_block"])
    assert set(before["grading_machine"]) == {"grader-1"} and set(after["grading_machine"]) == {"grader-2"}
    same_variety = lambda f: f[f["variety"] == "gala"]  # noqa: E731
    assert same_variety(after)["colour_score"].mean() - same_variety(before)["colour_score"].mean() > 8
    # Seasonal ripening: firmness falls, sugar rises.
    first_month, last_month = frame[frame["graded_at"].dt.month == 6], frame[frame["graded_at"].dt.month == 9]
    assert last_month["firmness_n"].mean() < first_month["firmness_n"].mean() - 5
    assert last_month["sugar_brix"].mean() > first_month["sugar_brix"].mean() + 1

    # Labels arrive 2-6 days after grading; the last days are not inspected yet.
    labelled = frame[frame["is_bad"].notna()]
    delay = (labelled["label_received_at"] - labelled["graded_at"]).dt.total_seconds() / 86400
    assert delay.between(2, 6).all()
    last_day = frame[frame["harvest_date"] == frame["harvest_date"].max()]
    assert last_day["is_bad"].isna().all()
    assert 0.05 < labelled["is_bad"].astype(float).mean() < 0.2


def test_demo_home_content(use_demo_home):
    settings = load_settings()
    warehouse = Warehouse.from_settings(settings)
    datasets = list_datasets(warehouse)
    assert list(datasets["name"]) == ["apple_harvest"]
    dataset = get_dataset(warehouse, "apple_harvest")
    assert dataset.target == "is_bad" and dataset.id_column == "apple_id"
    assert {c.role for c in dataset.columns} >= {"id", "timestamp", "feature", "target"}
    rows = warehouse.query_one("SELECT count(*), count(DISTINCT _batch_id) FROM ds_apple_harvest")
    assert rows[0] == datasets["row_count"][0] and rows[1] == 95
    # The last 21 days came as files: one was re-sent (duplicate), one came first in the old format (rejected).
    statuses = warehouse.query("SELECT status, count(*) AS n FROM batches GROUP BY status").set_index("status")["n"]
    assert statuses.to_dict() == {"accepted": 94, "partly_quarantined": 1, "duplicate": 1, "rejected": 1}
    assert datasets["batches"][0] == 97
    quarantined = warehouse.query_one("SELECT count(*), count(*) FILTER (WHERE firmness_n = 0) FROM qr_apple_harvest")
    assert quarantined[0] > 0 and quarantined[0] == quarantined[1], "the zero-firmness rows are the quarantined ones"
    assert warehouse.query_one("SELECT count(*) FROM ds_apple_harvest WHERE firmness_n = 0")[0] == 0
    warned = warehouse.query_one("SELECT count(*) FROM ds_apple_harvest WHERE colour_score IS NULL")[0]
    assert warned > 0, "rows without a colour reading pass, with a warning"

    registry = Registry(settings.registry_path)
    models = {m.name: m for m in registry.list_models()}
    assert set(models) == {"apple-grader", "sugar-estimator"}
    assert models["apple-grader"].aliases["champion"] == 2
    champion = registry.get_version("apple-grader", "champion")
    assert champion.metrics["recall_bad"] > 0.7 and champion.metrics["roc_auc"] > 0.85
    model = registry.load_model("apple-grader@champion")
    sample = warehouse.query("SELECT * FROM ds_apple_harvest LIMIT 50")
    scores = model.predict_proba(sample[champion.card["features"]])[:, 1]
    assert ((scores >= 0) & (scores <= 1)).all()


def test_build_is_idempotent_and_reset_rebuilds(tmp_path):
    environ = {"MLOPS_APP_HOME": str(tmp_path / "home"), "MLOPS_APP_DEMO_DAYS": "70", "MLOPS_APP_DEMO_APPLES_PER_DAY": "40", "MLOPS_APP_DEMO_TRIALS": "3"}
    settings = load_settings(environ)
    first = build_demo(settings, local_identity(settings))
    assert first.built and first.rows > 0
    second = build_demo(settings, local_identity(settings))
    assert not second.built and second.rows == first.rows
    assert len(Registry(settings.registry_path).list_versions("apple-grader")) == 3, "a second run must not re-register"
    third = build_demo(settings, local_identity(settings), reset=True)
    assert third.built
    assert len(Registry(settings.registry_path).list_versions("apple-grader")) == 3


def test_an_interrupted_build_is_redone(tmp_path):
    environ = {"MLOPS_APP_HOME": str(tmp_path / "home"), "MLOPS_APP_DEMO_DAYS": "70", "MLOPS_APP_DEMO_APPLES_PER_DAY": "40", "MLOPS_APP_DEMO_TRIALS": "3"}
    settings = load_settings(environ)
    build_demo(settings, local_identity(settings))
    manifest = settings.home_path / MANIFEST_NAME
    manifest.write_text(json.dumps({"status": "building"}))
    summary = build_demo(settings, local_identity(settings))
    assert summary.built
    assert json.loads(manifest.read_text())["status"] == "complete"


def test_demo_never_overwrites_a_real_home(tmp_path):
    settings = load_settings({"MLOPS_APP_HOME": str(tmp_path / "home")})
    Warehouse.from_settings(settings).migrate()
    with pytest.raises(MlopsError, match="that the demo did not create"):
        build_demo(settings, local_identity(settings))
    with pytest.raises(MlopsError, match="--reset will not delete it"):
        build_demo(settings, local_identity(settings), reset=True)
    assert settings.warehouse_path.exists()


def test_only_admins_build_the_demo(tmp_path):
    settings = load_settings({"MLOPS_APP_HOME": str(tmp_path / "home")})
    with pytest.raises(PermissionDeniedError, match="needs the admin role"):
        build_demo(settings, Identity("v@x.example", "v", "viewer", "local"))
    assert not settings.home_path.exists()


def test_create_dataset_table_registers_and_loads_a_frame(tmp_path):
    from mlops_app.datasets import Dataset, create_dataset_table, get_dataset, list_datasets

    warehouse = Warehouse(tmp_path / "w.duckdb")
    warehouse.migrate()
    frame = generate_harvest(seed=1, days=3, apples_per_day=20)
    dataset = Dataset("bulk", "bulk load", "me@x.example", "test", time_column="graded_at")
    with warehouse.transaction() as con:
        create_dataset_table(con, warehouse, dataset, frame)
    assert get_dataset(warehouse, "bulk").time_column == "graded_at"
    row = list_datasets(warehouse).iloc[0]
    assert row["row_count"] == len(frame) and row["last_event_at"] == frame["graded_at"].max()
    with pytest.raises(Exception, match="already exists"):
        with warehouse.transaction() as con:
            create_dataset_table(con, warehouse, dataset, frame)
    with warehouse.transaction() as con:
        create_dataset_table(con, warehouse, dataset, frame.head(5), replace=True)
    assert list_datasets(warehouse).iloc[0]["row_count"] == 5
