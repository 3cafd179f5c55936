"""The Features page (pages/features.py) run by AppTest over real homes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from mlops_app.auth import local_identity
from mlops_app.config import load_settings
from mlops_app.features import apply_features, features_folder, load_definitions
from mlops_app.warehouse import Warehouse
from tests.pages.apptest import open_page

DEMO_FEATURES = 13
STATUS_WORDS = ("Healthy", "Watch", "Act", "Not checked")


def _open(feature: str | None = None) -> AppTest:
    return open_page("features", {"feature": feature})


def _text(at: AppTest) -> str:
    parts = [element.value for kind in ("markdown", "caption", "info", "warning", "header", "subheader") for element in getattr(at, kind)]
    return "\n".join(parts + [link.value for link in at.get("page_link")])


def _catalogue(at: AppTest):
    """The catalogue table, its status labels (one-item lists, shown as coloured pills) as text."""
    table = next(frame for frame in at.dataframe if frame.key and frame.key.startswith("features_table")).value
    assert all(len(label) == 1 for label in table["Status"])
    return table.assign(Status=[label[0] for label in table["Status"]])


def test_catalogue_lists_the_demo_features_with_counts(use_demo_home):
    at = _open()
    assert at.title[0].value == "Features"
    table = _catalogue(at)
    assert len(table) == DEMO_FEATURES
    assert {"weight_g", "variety", "block_bad_share_14d", "block_apples_graded_3d"} <= set(table["Feature"])
    assert list(table.columns[:3]) == ["Status", "Feature", "Entity"]
    assert all(label.split(" ", 1)[1] in STATUS_WORDS for label in table["Status"])
    attention = int(table["Status"].str.endswith(("Watch", "Act")).sum())
    text = _text(at)
    assert f"{DEMO_FEATURES} features ({attention} need{'s' if attention == 1 else ''} attention)" in text
    # The demo season has ended, so its features are honestly stale, and the page says how old the data is.
    assert attention == DEMO_FEATURES and "The newest value of any feature is from 2026-" in text
    bad_share = table[table["Feature"] == "block_bad_share_14d"].iloc[0]
    assert bad_share["Computed as"] == "share of true over 14 days" and bad_share["Expected every"] == "7 days"
    assert bad_share["Newest value"].endswith(" UTC") and bad_share["Age"].endswith("days")
    assert [box.label for box in at.multiselect] == ["Tags", "Owner", "Entity"]
    assert "orchard_block" in at.multiselect(key="features_entities").options
    assert not at.warning and not at.error


def test_filters_and_search_narrow_the_catalogue(use_demo_home):
    at = _open()
    at.multiselect(key="features_entities").select("orchard_block").run()
    table = _catalogue(at)
    assert len(table) == 5 and set(table["Entity"]) == {"orchard_block"}
    assert f"5 of {DEMO_FEATURES} features match" in _text(at)
    at.multiselect(key="features_entities").unselect("orchard_block").run()
    at.multiselect(key="features_tags").select("camera").run()
    assert set(_catalogue(at)["Feature"]) == {"colour_score", "blemish_area_mm2"}
    at.multiselect(key="features_tags").unselect("camera").run()
    at.text_input(key="features_search").input("FIRMNESS").run()
    assert set(_catalogue(at)["Feature"]) == {"firmness_n", "block_firmness_mean_7d"}
    at.text_input(key="features_search").input("no such thing").run()
    assert not any(frame.key and frame.key.startswith("features_table") for frame in at.dataframe)
    assert "No feature matches these filters" in _text(at)
    assert not at.exception


def test_picking_a_feature_opens_it_and_links_to_it_then_back(use_demo_home):
    at = _open()
    at.multiselect(key="features_entities").select("apple").run()
    at.selectbox(key="features_open").select("weight_g").run()
    assert not at.exception, at.exception
    assert at.query_params["feature"] == "weight_g"  # the address bar links to what is on screen
    assert at.header[0].value == "weight_g"
    at.selectbox(key="features_switch").select("variety").run()
    assert at.query_params["feature"] == "variety" and at.header[0].value == "variety"
    at.button(key="features_back").click().run()
    assert not at.exception
    assert "feature" not in at.query_params and not at.header
    # Back where the reader left the catalogue: the filter chosen before is still applied.
    assert at.multiselect(key="features_entities").value == ["apple"]
    assert set(_catalogue(at)["Entity"]) == {"apple"}


def test_deep_link_opens_a_numeric_feature_with_statistics_charts_and_lineage(use_demo_home):
    at = _open("weight_g")
    assert at.header[0].value == "weight_g"
    text = _text(at)
    # Verdict first: the status badge, then the freshness sentence with the age and the expectation.
    assert at.markdown[0].value.endswith("Act]") or any(word in at.markdown[0].value for word in STATUS_WORDS)
    assert "the newest value is " in text and "expected at least every 36 hours" in text
    assert "nothing newer either, so the delay is upstream" in text
    # The definition in words and as code.
    assert "Column `weight_g` of each row of dataset apple_harvest, per apple" in text
    assert "expression: weight_g" in at.code[0].value and "available_at: graded_at" in at.code[0].value
    metrics = {metric.label: metric for metric in at.metric}
    assert {"Values recorded", "Empty", "Apples", "History", "Mean", "Median", "Spread (std)", "Smallest", "Largest"} <= set(metrics)
    assert metrics["Mean"].value.endswith(" g") and metrics["Empty"].value.endswith("%")
    assert int(metrics["Values recorded"].value.replace(",", "")) > 1000
    assert all(metric.help for metric in at.metric), "every statistic explains itself"
    assert "90% of them lie between" in text
    assert len(at.get("plotly_chart")) == 2  # distribution and trend
    # Lineage upstream: the dataset, linked to its data quality page.
    dataset_links = [link for link in at.get("page_link") if link.value == "Dataset apple_harvest"]
    assert dataset_links and dataset_links[0].proto.query_string == "dataset=apple_harvest"
    assert "data_quality" in dataset_links[0].proto.page
    # Downstream: the registered models whose cards list weight_g (links once /models exists).
    assert "apple-grader" in text and "sugar-estimator" in text
    assert "2 models use weight_g" in text and "(champion)" in text


def test_deep_link_to_an_aggregate_and_a_text_feature(use_demo_home):
    at = _open("block_bad_share_14d")
    text = _text(at)
    assert at.header[0].value == "block_bad_share_14d"
    assert "expected at least every 7 days" in text and "Share of rows where `is_bad` is true, over the 14 days" in text
    assert "window: 14d" in at.code[0].value and "available_at: label_received_at" in at.code[0].value
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics["Mean"].endswith("%") and metrics["Spread (std)"].endswith(" pp") and "Orchard blocks" in metrics
    # Whether a demo challenger picked the aggregate depends on its search; the page says either way.
    assert "No registered model version lists block_bad_share_14d" in text or "uses block_bad_share_14d" in text
    assert len(at.get("plotly_chart")) == 2

    at = _open("variety")
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics["Most common"] in {"gala", "fuji", "granny_smith", "honeycrisp"}
    assert metrics["Different values"] == "4"
    assert len(at.get("plotly_chart")) == 2


def test_unknown_feature_warns_with_close_matches_then_shows_the_catalogue(use_demo_home):
    at = _open("weight")
    assert "There is no feature named `weight`" in at.warning[0].value
    assert "`weight_g`" in at.warning[0].value
    assert len(_catalogue(at)) == DEMO_FEATURES
    at = _open("`]<script>")
    assert "`'" in at.warning[0].value or "'" in at.warning[0].value
    assert "Did you mean" not in at.warning[0].value and len(_catalogue(at)) == DEMO_FEATURES


def test_empty_home_guides(tmp_path, monkeypatch):
    home = tmp_path / "empty"
    monkeypatch.setenv("MLOPS_APP_HOME", str(home))
    Warehouse(home / "warehouse.duckdb").migrate()
    at = _open()
    info = at.info[0].value
    assert f"{home / 'features'}/*.yaml" in info
    assert "mlops-app features apply" in info and "mlops-app demo" in info
    assert not at.dataframe


@pytest.fixture
def home_with_a_new_feature(demo_home, tmp_path, monkeypatch) -> Path:
    """A copy of the demo home with one more feature registered but not computed yet."""
    home = tmp_path / "home"
    shutil.copytree(demo_home, home)
    monkeypatch.setenv("MLOPS_APP_HOME", str(home))
    settings = load_settings()
    (features_folder(settings) / "extra.yaml").write_text(
        "features:\n"
        "  - name: block_heavy_share_7d\n    entity: orchard_block\n    dataset: apple_harvest\n    kind: aggregate\n"
        "    expression: weight_g > 250\n    aggregation: share\n    window: 7d\n    value_type: number\n"
        "    description: Share of heavy apples\n",
        encoding="utf-8",
    )
    apply_features(Warehouse.from_settings(settings), load_definitions(features_folder(settings)), local_identity(settings))
    return home


def test_a_feature_without_values_says_how_to_compute_them(home_with_a_new_feature):
    at = _open()
    assert f"{DEMO_FEATURES + 1} features (" in _text(at) and "1 without values yet" in _text(at)
    table = _catalogue(at)
    assert table[table["Feature"] == "block_heavy_share_7d"].iloc[0]["Status"].endswith("Not checked")
    at = _open("block_heavy_share_7d")
    text = _text(at)
    assert "Not checked: block_heavy_share_7d has no values yet" in text
    assert "mlops-app features materialize" in at.info[0].value
    assert not at.metric and not at.get("plotly_chart")
