"""The sentences, numbers and filters of the Features page (mlops_app.features_view)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from mlops_app import features_view as view
from mlops_app.features import FeatureDefinition, FeatureFreshness, FeatureInfo, FeatureStatistics, ModelUse
from mlops_app.status import Status

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _catalogue(rows: list[dict]) -> pd.DataFrame:
    """A frame shaped like features.list_features' answer."""
    defaults = {
        "entity": "apple", "kind": "raw", "value_type": "number", "dataset": "apple_harvest", "aggregation": np.nan,
        "window": np.nan, "description": "", "owner": "quality-team@orchard.example", "tags": np.array(["measurement"], dtype=object),
        "freshness_hours": 24.0, "materialized_at": pd.Timestamp(NOW), "last_value_at": pd.Timestamp(NOW - timedelta(hours=6)),
        "age_hours": 6.0, "status": "Healthy",
    }  # fmt: skip
    return pd.DataFrame([{**defaults, **row} for row in rows])


@pytest.fixture
def catalogue() -> pd.DataFrame:
    return _catalogue(
        [
            {"name": "weight_g", "description": "Weight in grams", "tags": np.array(["measurement", "grading-line"], dtype=object)},
            {"name": "variety", "value_type": "text", "owner": "Orchard-Team@orchard.example", "tags": np.array(["orchard"], dtype=object)},
            {
                "name": "block_bad_share_14d", "entity": "orchard_block", "kind": "aggregate", "aggregation": "share", "window": "14d",
                "description": "Share of the block's apples found bad", "tags": np.array(["orchard", "labels"], dtype=object),
                "freshness_hours": 168.0, "age_hours": 700.0, "status": "Act",
                "last_value_at": pd.Timestamp(NOW - timedelta(hours=700)),
            },  # fmt: skip
            {"name": "block_new_7d", "entity": "orchard_block", "kind": "aggregate", "aggregation": "avg", "window": "7d",
             "materialized_at": pd.NaT, "last_value_at": pd.NaT, "age_hours": np.nan, "status": "Not checked"},  # fmt: skip
        ]
    )


def _definition(**fields) -> FeatureDefinition:
    return FeatureDefinition.model_validate({"name": "weight_g", "entity": "apple", "dataset": "apple_harvest", "value_type": "number", **fields})


def _info(definition: FeatureDefinition, *, materialized: bool = True, freshness_hours: float = 24.0) -> FeatureInfo:
    return FeatureInfo(
        definition, "orchard.yaml", "apple_id", definition.available_at or "graded_at", (definition.expression, "apple_id", "graded_at"),
        "fv_apple_0123456789", freshness_hours, NOW - timedelta(days=3), "demo@localhost",
        NOW - timedelta(days=1) if materialized else None, NOW - timedelta(hours=6) if materialized else None, 10 if materialized else None,
    )  # fmt: skip


def _freshness(status: Status, *, age_hours: float | None, expected: float = 24.0, source_last: datetime | None = None) -> FeatureFreshness:
    last = None if age_hours is None else NOW - timedelta(hours=age_hours)
    return FeatureFreshness(status, "", last, expected, age_hours, NOW - timedelta(days=1), source_last or last)


def test_ages_and_periods_read_like_a_person_says_them():
    assert view.format_age(0.2) == "12 minutes"
    assert view.format_age(0.001) == "1 minute"
    assert view.format_age(1.0) == "1 hour"
    assert view.format_age(6.4) == "6 hours"
    assert view.format_age(47) == "47 hours"
    assert view.format_age(694.7) == "29 days"
    assert view.format_age(-3) == "1 minute"  # a clock slightly behind the data never shows a negative age
    assert view.format_period(24) == "24 hours"
    assert view.format_period(36) == "36 hours"
    assert view.format_period(168) == "7 days"
    assert view.format_period(1.5) == "1.5 hours"


def test_times_numbers_and_words():
    assert view.format_time(pd.Timestamp("2026-10-28 17:59:48", tz="UTC")) == "2026-10-28 17:59 UTC"
    assert view.format_time(datetime(2026, 10, 28, 19, 59, tzinfo=UTC).astimezone()) == "2026-10-28 19:59 UTC"
    assert view.format_time(pd.Timestamp("2026-10-28 17:59")) == "2026-10-28 17:59 UTC"  # naive times are UTC
    assert view.format_time(pd.NaT) == view.format_time(None) == "never"
    assert [view.format_number(x) for x in (1284.4, 152.34, 60.0, 4.213, 0.03123, 0)] == ["1,284", "152.3", "60.0", "4.21", "0.0312", "0"]
    assert view.window_words("7d") == "7 days" and view.window_words("1w") == "1 week" and view.window_words("24h") == "24 hours"
    assert view.computed_as("raw", np.nan, np.nan) == "raw value"
    assert view.computed_as("aggregate", "share", "14d") == "share of true over 14 days"
    assert view.computed_as("aggregate", "avg", "7d") == "average over 7 days"
    assert view.sentence_case("column `weight_g` of each row") == "Column `weight_g` of each row"
    assert view.sentence_case("`weight_g * 2` of each row") == "`weight_g * 2` of each row"  # code keeps its case


def test_status_labels_carry_a_shape_and_the_word():
    labels = {view.status_label(status.word) for status in Status}
    assert labels == {"● Healthy", "▲ Watch", "■ Act", "○ Not checked"}
    assert view.status_label("something else") == "○ Not checked"


def test_user_supplied_names_cannot_break_out_of_code_spans():
    assert view.safe_name("a`b\nc") == "a'b c"
    long = view.safe_name("x" * 500)
    assert len(long) == 80 and long.endswith("…")


def test_close_matches_catch_typos_and_fragments():
    names = ["weight_g", "diameter_mm", "block_bad_share_14d", "block_blemished_share_7d"]
    assert view.close_matches("weight", names)[0] == "weight_g"
    assert view.close_matches("WEIGHT_G", names) == ["weight_g"]
    assert "block_bad_share_14d" in view.close_matches("bad_share", names)
    assert view.close_matches("zzz", names) == []


def test_clock_rounds_down_to_five_minutes_in_utc():
    assert view.clock(datetime(2026, 11, 20, 12, 7, 31, 5, tzinfo=UTC)) == datetime(2026, 11, 20, 12, 5, tzinfo=UTC)
    local = datetime(2026, 11, 20, 13, 59, tzinfo=UTC).astimezone()
    assert view.clock(local) == datetime(2026, 11, 20, 13, 55, tzinfo=UTC)
    assert view.clock().tzinfo is not None


def test_filters_narrow_the_catalogue(catalogue):
    options = view.filter_options(catalogue)
    assert options.tags == ["grading-line", "labels", "measurement", "orchard"]
    assert options.entities == ["apple", "orchard_block"]
    assert options.owners == ["Orchard-Team@orchard.example", "quality-team@orchard.example"]
    names = lambda frame: frame["name"].tolist()  # noqa: E731
    assert names(view.filter_catalogue(catalogue)) == names(catalogue)
    assert names(view.filter_catalogue(catalogue, search="GRAMS")) == ["weight_g"]  # description, any case
    assert names(view.filter_catalogue(catalogue, search="labels")) == ["block_bad_share_14d"]  # a tag
    assert names(view.filter_catalogue(catalogue, search="apple_harvest")) == names(catalogue)  # the dataset
    assert names(view.filter_catalogue(catalogue, entities=["orchard_block"])) == ["block_bad_share_14d", "block_new_7d"]
    assert names(view.filter_catalogue(catalogue, tags=["labels", "grading-line"])) == ["weight_g", "block_bad_share_14d"]
    assert names(view.filter_catalogue(catalogue, owners=["orchard-team@orchard.example"])) == ["variety"]
    assert names(view.filter_catalogue(catalogue, tags=["orchard"], entities=["apple"])) == ["variety"]
    assert view.filter_catalogue(catalogue, search="nothing like this").empty


def test_count_sentence_says_how_many_need_attention(catalogue):
    assert view.count_sentence(catalogue, 4) == "4 features (1 needs attention, 1 without values yet)"
    apples = catalogue[catalogue["entity"] == "apple"]
    assert view.count_sentence(apples, 4) == "2 of 4 features match (0 need attention)"
    assert view.count_sentence(catalogue.iloc[:0], 4) == "No feature of 4 matches these filters"


def test_catalogue_verdict_names_the_worst_status_and_the_newest_value(catalogue):
    status, sentence = view.catalogue_verdict(catalogue)
    assert status is Status.ACT
    assert sentence.startswith("Act: 1 of 4 features have values older than expected")
    assert "newest value of any feature is from 2026-11-20 06:00 UTC, 6 hours ago" in sentence
    healthy = catalogue[catalogue["status"] == "Healthy"]
    status, sentence = view.catalogue_verdict(healthy)
    assert status is Status.HEALTHY and sentence.startswith("Healthy: all 2 features have recent values")
    status, sentence = view.catalogue_verdict(catalogue[catalogue["status"] == "Not checked"])
    assert status is Status.UNKNOWN and sentence.startswith("Not checked: the feature has no values yet.")
    assert "mlops-app features materialize" in sentence
    unchecked = _catalogue([{"name": name, "status": "Not checked", "age_hours": np.nan, "last_value_at": pd.NaT} for name in "ab"])
    assert view.catalogue_verdict(unchecked)[1].startswith("Not checked: none of the 2 features has values yet.")
    status, sentence = view.catalogue_verdict(catalogue[catalogue["status"] != "Act"])
    assert status is Status.UNKNOWN
    assert sentence.startswith("Not checked: 1 of 3 features has no values yet; the others are fresh.")


def test_catalogue_rows_put_the_verdict_first_in_words(catalogue):
    rows = view.catalogue_rows(catalogue)
    assert list(rows.columns[:3]) == ["Status", "Feature", "Entity"] and rows.columns[-1] == "Description"
    bad = rows[rows["Feature"] == "block_bad_share_14d"].iloc[0]
    assert bad["Status"] == "■ Act" and bad["Computed as"] == "share of true over 14 days"
    assert bad["Age"] == "29 days" and bad["Expected every"] == "7 days" and bad["Tags"] == ["orchard", "labels"]
    new = rows[rows["Feature"] == "block_new_7d"].iloc[0]
    assert new["Status"] == "○ Not checked" and new["Newest value"] == "never" and new["Age"] == "–"


def test_freshness_sentence_fresh_late_stale_and_without_values():
    info = _info(_definition())
    fresh = view.freshness_sentence(_freshness(Status.HEALTHY, age_hours=6), info)
    assert fresh == "Fresh: the newest value is 6 hours old (2026-11-20 06:00 UTC); new values are expected at least every 24 hours."
    late = view.freshness_sentence(_freshness(Status.WATCH, age_hours=30), info)
    assert late.startswith("Getting stale: the newest value is 30 hours old") and "expected at least every 24 hours" in late
    stale = view.freshness_sentence(_freshness(Status.ACT, age_hours=700), info)
    assert stale.startswith("Stale: the newest value is 29 days old")
    assert "apple_harvest has received nothing newer either, so the delay is upstream" in stale
    behind = view.freshness_sentence(_freshness(Status.WATCH, age_hours=30, source_last=NOW - timedelta(hours=1)), info)
    assert "rows up to 2026-11-20 11:00 UTC that are not computed" in behind and "mlops-app features materialize" in behind
    never = view.freshness_sentence(FeatureFreshness(Status.UNKNOWN, "", None, 24.0, None, None, None), _info(_definition(), materialized=False))
    assert never.startswith("Not checked: weight_g has no values yet") and "mlops-app features materialize" in never
    empty = view.freshness_sentence(FeatureFreshness(Status.ACT, "", None, 24.0, None, NOW, None), info)
    assert empty.startswith("Stale: weight_g has no values at all")


def test_value_formats_follow_the_aggregation_and_the_column_unit():
    assert view.value_format(_definition()).value(196.06) == "196.1 g"
    assert view.value_format(_definition(name="blemish_area_mm2")).value(12.345) == "12.3 mm²"
    assert view.value_format(_definition(name="firmness_n")).value(60) == "60.0"  # no guessing an ambiguous suffix
    share = view.value_format(_definition(name="block_bad_share_14d", kind="aggregate", expression="is_bad", aggregation="share", window="14d"))
    assert share.value(0.10436) == "10.4%" and share.spread(0.0248) == "2.5 pp" and share.axis_title == ""
    count = view.value_format(_definition(name="apples_3d", kind="aggregate", expression="apple_id", aggregation="count", window="3d", value_type="integer"))
    assert count.value(1041.0) == "1,041" and count.value(558.87) == "558.9"
    mean = view.value_format(_definition(name="blemish_7d", kind="aggregate", expression="blemish_area_mm2", aggregation="avg", window="7d"))
    assert mean.value(4.2) == "4.20 mm²"
    formula = view.value_format(_definition(name="heavy_7d", kind="aggregate", expression="weight_g * 2", aggregation="avg", window="7d"))
    assert formula.unit == ""  # a formula's unit is unknown
    assert view.ValueFormat().value(None) == view.ValueFormat().value(float("nan")) == "–"


def _statistics(**fields) -> FeatureStatistics:
    base = {"rows": 1000, "values": 990, "null_share": 0.01, "entities": 800, "first_value_at": NOW - timedelta(days=149, hours=1),
            "last_value_at": NOW - timedelta(hours=6)}  # fmt: skip
    return FeatureStatistics(**{**base, **fields})


def test_statistic_tiles_explain_every_number():
    numeric = _statistics(mean=196.06, std=42.0, min=60.0, p05=128.1, p25=170.0, median=195.4, p75=222.0, p95=265.9, max=342.4)
    coverage, distribution = view.statistic_tiles(numeric, _definition())
    tiles = {tile.label: tile.value for tile in coverage + distribution}
    assert tiles == {
        "Values recorded": "990", "Empty": "1.0%", "Apples": "800", "History": "149 days",
        "Mean": "196.1 g", "Median": "195.4 g", "Spread (std)": "42.0 g", "Smallest": "60.0 g", "Largest": "342.4 g",
    }  # fmt: skip
    assert all(tile.help.endswith(".") and len(tile.help) > 20 for tile in coverage + distribution)
    caption = view.values_caption(numeric, _definition())
    assert caption.startswith("Stored values from 2026-06-24 11:00 UTC to 2026-11-20 06:00 UTC.")
    assert "90% of them lie between 128.1 g and 265.9 g" in caption and "half between 170.0 g and 222.0 g" in caption

    aggregate = _definition(name="block_x_7d", entity="orchard_block", kind="aggregate", expression="weight_g", aggregation="avg", window="7d")
    coverage, _ = view.statistic_tiles(numeric, aggregate)
    assert coverage[2].label == "Orchard blocks" and "entered or left the window" in coverage[0].help

    top = (("gala", 400, 0.404), ("fuji", 300, 0.303), ("honeycrisp", 290, 0.293))
    coverage, distribution = view.statistic_tiles(_statistics(top=top), _definition(name="variety", value_type="text"))
    assert [(tile.label, tile.value) for tile in distribution] == [
        ("Most common", "gala"), ("Its share", "40.4%"), ("Different values", "3"),
    ]  # fmt: skip
    many = tuple((f"v{i}", 10, 0.1) for i in range(10))
    _, distribution = view.statistic_tiles(_statistics(top=many), _definition(name="variety", value_type="text"))
    assert distribution[2].value == "10 or more"
    assert view.values_caption(_statistics(top=top), _definition(name="variety", value_type="text")).count(".") == 1


def test_definition_text_shows_what_the_store_resolved():
    text = view.definition_text(_info(_definition()))
    assert "expression: weight_g" in text and "# key column: apple_id" in text
    assert "available_at: graded_at" in text and "the dataset's time column" in text and "# inherited" in text
    aggregate = _definition(name="block_bad_share_14d", entity="orchard_block", kind="aggregate", expression="is_bad",
                            aggregation="share", window="14d", available_at="label_received_at", freshness_hours=168)  # fmt: skip
    text = view.definition_text(_info(aggregate, freshness_hours=168))
    assert "aggregation: share\nwindow: 14d" in text and "available_at: label_received_at\n" in text
    assert "freshness_hours: 168\n" not in text and text.endswith("freshness_hours: 168")


def test_model_usages_group_versions_and_flag_the_serving_one():
    uses = [
        ModelUse("apple-grader", 3, ("challenger",), "2026-11-01"),
        ModelUse("apple-grader", 1, (), "2026-07-12"),
        ModelUse("apple-grader", 2, ("champion",), "2026-08-03"),
        ModelUse("sugar-estimator", 1, (), "2026-07-15"),
    ]
    usages = view.model_usages(uses)
    assert [(u.model, u.versions, u.serving) for u in usages] == [
        ("apple-grader", "versions 1, 2 (champion), 3 (challenger)", True),
        ("sugar-estimator", "version 1", False),
    ]
    sentence = view.lineage_sentence(usages, "weight_g")
    assert sentence.startswith("2 models use weight_g; the serving (champion) version of apple-grader depends on it")
    both = view.model_usages([*uses[:3], ModelUse("sugar-estimator", 1, ("champion",), "")])
    assert "versions of apple-grader and sugar-estimator depend on it" in view.lineage_sentence(both, "weight_g")
    assert view.lineage_sentence([], "x").startswith("No registered model version lists x")
