"""The Models page (pages/models.py) run by AppTest over real homes."""

from __future__ import annotations

from datetime import date

from streamlit.testing.v1 import AppTest

from mlops_app.config import load_settings
from mlops_app.promotion import champion_history, champion_on
from mlops_app.registry import Registry
from mlops_app.warehouse import Warehouse
from tests.pages.apptest import open_page


def _open(model: str | None = None) -> AppTest:
    return open_page("models", {"model": model})


def _text(at: AppTest) -> str:
    kinds = ("markdown", "caption", "info", "warning", "header", "subheader")
    return "\n".join(element.value for kind in kinds for element in getattr(at, kind))


def _links(at: AppTest) -> list:
    return list(at.get("page_link"))


def test_lists_every_model_with_aliases_versions_and_the_pending_request(use_demo_home):
    at = _open()
    assert at.title[0].value == "Models"
    # Verdict first: the blocked request of the demo needs a decision.
    assert at.markdown[0].value.endswith("Act]")
    assert at.markdown[1].value.startswith("Decision needed: the request to make apple-grader version 3 champion is blocked")
    text = _text(at)
    assert "**Champion (serving): version 2 · Challenger (under evaluation): version 3**" in text
    assert "**Champion (serving): version 1 · Challenger (under evaluation): none**" in text
    assert "Blocked: data-scientist@orchard.example asks to make version 3 champion" in text
    versions = [frame.value for frame in at.dataframe if "Status" in frame.value.columns]
    grader, sugar = versions  # by model name
    assert grader["Version"].tolist() == [3, 2, 1]
    assert grader["Status"].tolist() == ["Challenger (under evaluation); Request blocked", "Champion (serving)", "Earlier champion"]
    assert grader.columns[4] == "Bad apples caught" and grader["Bad apples caught"].str.endswith("%").all()
    assert sugar["Typical error (MAE)"].str.endswith("°Bx").all()
    reviews = [link for link in _links(at) if link.proto.label == "Review version 3"]
    assert reviews and "model_review" in reviews[0].proto.page
    assert "model=apple-grader" in reviews[0].proto.query_string and "version=3" in reviews[0].proto.query_string


def test_focus_on_one_model_answers_which_version_was_champion_on_a_date(use_demo_home):
    at = _open("apple-grader")
    assert at.header[0].value == "apple-grader"
    assert len([frame for frame in at.dataframe if "Status" in frame.value.columns]) == 1
    assert "sugar-estimator" not in _text(at)
    periods = next(frame.value for frame in at.dataframe if "Until" in frame.value.columns)
    assert periods["Version"].tolist() == [2, 1] and periods["Until"].iloc[0] == "still today"
    registry = Registry(load_settings().registry_path)
    first = champion_history(registry, "apple-grader")[0]
    day = first.start.date()
    assert champion_on(registry, "apple-grader", day) == 1
    at.date_input(key="models_champion_day_apple-grader").set_value(day).run()
    assert f"On {day:%Y-%m-%d} (end of day, UTC) version 1 of apple-grader was champion" in _text(at)
    before = date(day.year, day.month, day.day - 1) if day.day > 1 else date(day.year, day.month - 1, 28)
    at.date_input(key="models_champion_day_apple-grader").set_value(before).run()
    assert "apple-grader had no champion" in _text(at)


def test_unknown_model_warns_and_lists_all(use_demo_home):
    at = _open("no-such-model")
    assert "There is no model named `no-such-model`" in at.warning[0].value
    assert at.markdown[0].value.endswith("Act]")


def test_empty_registry_guides(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_APP_HOME", str(tmp_path / "empty"))
    Warehouse(tmp_path / "empty" / "warehouse.duckdb").migrate()
    at = _open()
    infos = " ".join(info.value for info in at.info)
    assert "No models are registered yet" in infos and "mlops-app train" in infos and "mlops-app demo" in infos
