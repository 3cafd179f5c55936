"""Scoring and labels on a real warehouse and registry: logged predictions, refused input, kept-aside labels."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest

from mlops_app.errors import NotFoundError, PermissionDeniedError
from mlops_app.scoring import ScoringInputError, record_labels, record_labels_file, score_file, score_frame, unmatched_labels
from tests.monitoring_helper import ANA, FEATURES, FIRST_DAY, MODEL, VIEWER, build_home, fruit


@pytest.fixture
def home(tmp_path):
    return build_home(tmp_path / "home", monitoring_yaml=None)


def _count(home, table: str) -> int:
    return int(home.warehouse.query_one(f"SELECT count(*) FROM {table}")[0])


def test_scoring_logs_every_prediction_with_its_features_version_and_score(home):
    frame = fruit(FIRST_DAY, 40, seed=3)
    result = score_frame(home.warehouse, home.registry, MODEL, frame.drop(columns=["is_bad"]), ANA)

    assert result.rows == 40 and result.version == 1 and result.model == MODEL
    estimator = home.registry.load_model(MODEL, 1)
    expected = estimator.predict_proba(frame[FEATURES])[:, list(estimator.classes_).index(True)]
    np.testing.assert_allclose(result.predictions["score"].to_numpy(), expected)
    assert list(result.predictions["entity_id"]) == list(frame["fruit_id"])  # the dataset's id column, found from the card
    assert result.positive_rate == pytest.approx(float((expected >= 0.5).mean()))

    logged = home.warehouse.query(
        "SELECT prediction_id, entity_id, event_time, features, prediction, score, version, batch_id FROM predictions ORDER BY prediction_id"
    )
    assert len(logged) == 40 and set(logged["batch_id"]) == {result.batch_id} and set(logged["version"]) == {1}
    first = logged[logged["entity_id"] == frame["fruit_id"][0]].iloc[0]
    assert json.loads(first["features"]) == {"weight": frame["weight"][0], "size": frame["size"][0], "colour": frame["colour"][0]}
    assert first["event_time"] == frame["measured_at"][0]  # the row's time, not the scoring time
    assert first["prediction"] == ("true" if expected[0] >= 0.5 else "false")


def test_a_missing_feature_is_refused_naming_the_columns_and_nothing_is_logged(home):
    frame = fruit(FIRST_DAY, 20).drop(columns=["is_bad", "weight", "colour"])
    with pytest.raises(ScoringInputError, match=r"lacks 2 columns the model needs: weight, colour.*Nothing was scored or logged"):
        score_frame(home.warehouse, home.registry, MODEL, frame, ANA)
    assert _count(home, "predictions") == 0


def test_values_of_the_wrong_type_are_refused_naming_column_value_and_row(home):
    frame = fruit(FIRST_DAY, 20).drop(columns=["is_bad"]).astype({"weight": object, "measured_at": object})
    frame.loc[2, "weight"] = "heavy"
    frame.loc[5, "measured_at"] = "yesterday"
    with pytest.raises(ScoringInputError) as caught:
        score_frame(home.warehouse, home.registry, MODEL, frame, ANA)
    message = str(caught.value)
    assert "column weight must hold numbers" in message and "'heavy' (row 3)" in message
    assert "time column measured_at must hold dates or times" in message and "'yesterday' (row 6)" in message
    assert _count(home, "predictions") == 0


def test_repeated_ids_and_unknown_models_are_refused(home):
    frame = fruit(FIRST_DAY, 10).drop(columns=["is_bad"])
    frame.loc[3, "fruit_id"] = frame.loc[4, "fruit_id"]
    with pytest.raises(ScoringInputError, match="repeats 1 values"):
        score_frame(home.warehouse, home.registry, MODEL, frame, ANA)
    with pytest.raises(NotFoundError, match="fruit-grader"):
        score_frame(home.warehouse, home.registry, "no-such-model", frame, ANA)
    with pytest.raises(PermissionDeniedError, match="viewer"):
        score_frame(home.warehouse, home.registry, MODEL, frame.drop_duplicates("fruit_id"), VIEWER)
    assert _count(home, "predictions") == 0
    with pytest.raises(PermissionDeniedError, match=r"has the viewer role, and .* needs the reviewer role"):
        record_labels(home.warehouse, home.registry, MODEL, pd.DataFrame({"fruit_id": ["x"], "is_bad": [True]}), VIEWER)
    assert _count(home, "labels") == 0 and _count(home, "labels_unmatched") == 0


def test_a_csv_file_is_scored_with_numbers_read_from_text(home, tmp_path):
    path = tmp_path / "batch.csv"
    fruit(FIRST_DAY, 25).drop(columns=["is_bad"]).to_csv(path, index=False)
    result = score_file(home.warehouse, home.registry, f"{MODEL}@champion", path, ANA, output=tmp_path / "scored.csv")
    assert result.rows == 25 and _count(home, "predictions") == 25
    assert len(pd.read_csv(tmp_path / "scored.csv")) == 25


def test_labels_for_unknown_ids_are_reported_kept_aside_and_matched_when_predictions_arrive(home, tmp_path):
    scored = fruit(FIRST_DAY, 30, seed=1)
    score_frame(home.warehouse, home.registry, MODEL, scored.drop(columns=["is_bad"]), ANA)
    later = fruit(date(2026, 2, 2), 5, seed=2, prefix="late")
    labels = pd.concat([scored[["fruit_id", "is_bad"]].head(10), later[["fruit_id", "is_bad"]].head(2)])
    path = tmp_path / "inspection.csv"
    labels.to_csv(path, index=False)

    result = record_labels_file(home.warehouse, home.registry, MODEL, path, ANA)
    assert (result.recorded, result.unmatched) == (10, 2)
    assert set(result.unmatched_ids) == set(later["fruit_id"].head(2))
    assert "2 ids match no logged prediction" in result.message and "kept aside" in result.message
    assert _count(home, "labels") == 10
    kept = unmatched_labels(home.warehouse, MODEL)
    assert set(kept["entity_id"]) == set(later["fruit_id"].head(2)) and set(kept["source_name"]) == {"inspection.csv"}

    # The late fruit is scored afterwards: its kept-aside labels join the others.
    moved = score_frame(home.warehouse, home.registry, MODEL, later.drop(columns=["is_bad"]), ANA)
    assert moved.rematched_labels == 2
    assert _count(home, "labels") == 12 and _count(home, "labels_unmatched") == 0


def test_bad_label_values_are_refused_and_a_resent_label_replaces_the_old_one(home):
    scored = fruit(FIRST_DAY, 10, seed=1)
    score_frame(home.warehouse, home.registry, MODEL, scored.drop(columns=["is_bad"]), ANA)
    bad = pd.DataFrame({"fruit_id": scored["fruit_id"].head(3), "is_bad": ["yes", "maybe", "0"]})
    with pytest.raises(ScoringInputError, match=r"must be true/false.*'maybe' \(row 2\).*Nothing was recorded"):
        record_labels(home.warehouse, home.registry, MODEL, bad, ANA)
    assert _count(home, "labels") == 0

    first = record_labels(home.warehouse, home.registry, MODEL, pd.DataFrame({"fruit_id": scored["fruit_id"].head(3), "is_bad": [1, 0, 0]}), ANA)
    again = record_labels(home.warehouse, home.registry, MODEL, pd.DataFrame({"fruit_id": scored["fruit_id"].head(1), "is_bad": ["false"]}), ANA)
    assert (first.recorded, again.recorded, again.corrected) == (3, 1, 1)
    stored = dict(home.warehouse.query("SELECT entity_id, label FROM labels").itertuples(index=False, name=None))
    assert stored[scored["fruit_id"][0]] == "false" and len(stored) == 3
