"""The Data quality page in AppTest: what a person sees, and what each role may change.

Reads use the shared small demo home (never changed here); writes (save checks, upload,
re-check) run on a copy of a tiny demo home built once for this module.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from mlops_app.auth import local_identity
from mlops_app.config import load_settings
from mlops_app.demo import build_demo
from mlops_app.quality import checks_path, list_batches
from mlops_app.reports import report_path
from mlops_app.warehouse import Warehouse
from tests.pages.apptest import open_page

TINY_DEMO = {"MLOPS_APP_DEMO_DAYS": "70", "MLOPS_APP_DEMO_APPLES_PER_DAY": "40", "MLOPS_APP_DEMO_TRIALS": "3"}
DATASET = "apple_harvest"


def _open(query: dict[str, str] | None = None) -> AppTest:
    return open_page("data_quality", query)


def _text(at: AppTest) -> str:
    return "\n".join(block.value for block in [*at.markdown, *at.caption])


def _alerts(at: AppTest, kind: str) -> str:
    return "\n".join(element.value for element in getattr(at, kind))


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("tiny-demo") / "home"
    settings = load_settings({"MLOPS_APP_HOME": str(home), **TINY_DEMO})
    build_demo(settings, local_identity(settings))
    return home


@pytest.fixture
def writable_home(tiny_demo, tmp_path, monkeypatch) -> Path:
    """A private copy of the tiny demo home, so each test may change it."""
    home = tmp_path / "writable"
    shutil.copytree(tiny_demo, home)
    monkeypatch.setenv("MLOPS_APP_HOME", str(home))
    for name, value in TINY_DEMO.items():
        monkeypatch.setenv(name, value)
    return home


def test_verdict_problems_and_scorecard_show_the_demo_deliveries(use_demo_home):
    at = _open()
    assert at.title[0].value == "Data quality"
    assert at.selectbox(key="dataset").value == DATASET
    text = _text(at)
    # Verdict first: a status badge, then the sentence naming the rejected old-format file.
    assert at.markdown[0].value.startswith(":red-badge[") and "Act" in at.markdown[0].value
    assert "was rejected because the file lacks 1 required column: sugar_brix" in at.markdown[1].value
    # Every kind of problem the demo planted is listed plainly.
    for words in ("Rejected", "Duplicate caught", "Warning", "Quarantined", "failed\\: Firmness must be between 15 and 120 N",
                  "have a warning\\: Every apple should have a colour reading", "Recognised as a re\\-send"):
        assert words in text, words
    scorecard = at.dataframe[0].value
    assert list(scorecard.columns) == ["Status", "Check", "Latest result", "Problems lately", "Ran on", "Check name"]
    assert len(scorecard) == 14 and set(scorecard.Status) <= {"✓ Pass", "⚠ Warn", "✗ Fail", "– Not checked"}
    rows = scorecard.set_index("Check name")
    assert rows.loc["firmness_range", "Problems lately"].startswith("Failed once in the last")
    assert rows.loc["columns_present", "Problems lately"].startswith("Failed once in the last")
    assert rows.loc["colour_present", "Problems lately"].startswith("Warned once in the last")
    assert rows.loc["firmness_range", "Latest result"].startswith("All ") and "rows pass" in rows.loc["firmness_range", "Latest result"]
    deliveries = at.dataframe[1].value
    assert {"✗ Rejected", "↺ Duplicate, not loaded", "⚠ Accepted with warnings", "✗ Partly quarantined", "✓ Accepted"} <= set(deliveries.Status)
    assert deliveries.Received.str.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d UTC$").all()
    assert "Each mark is the result of one check" in text  # the trend chart explains itself


def test_deep_link_selects_the_dataset_and_an_unknown_one_warns(use_demo_home):
    at = _open({"dataset": DATASET})
    assert at.selectbox(key="dataset").value == DATASET and not at.warning
    at = _open({"dataset": "plums"})
    assert "There is no dataset named 'plums'" in at.warning[0].value and "apple_harvest" in at.warning[0].value
    assert at.selectbox(key="dataset").value == DATASET and len(at.dataframe) >= 2


def test_failing_rows_drill_down_shows_the_quarantined_rows(use_demo_home):
    at = _open()
    delivery = at.selectbox(key=f"dq_drill_batch_{DATASET}")
    # Deliveries that lost rows come first: the firmness sensor's zeros.
    assert "(partly quarantined)" in delivery.format_func(delivery.value)
    check = at.selectbox(key=f"dq_drill_check_{DATASET}_{delivery.value}")
    assert check.value == "firmness_range"
    rows = at.dataframe[2].value
    assert len(rows) > 0 and list(rows.columns[:2]) == ["Outcome", "firmness_n"]
    assert set(rows.Outcome) == {"Quarantined (not loaded)"} and (rows.firmness_n == 0).all()
    assert "The table shows all" in _text(at) and "of the batch\\) failed" in _text(at)
    # The warned delivery is one pick away, its rows loaded with a flag.
    warned = [option for option in delivery.options if "accepted" in option]
    assert warned
    at.selectbox(key=f"dq_drill_batch_{DATASET}").select_index(delivery.options.index(warned[0])).run()
    assert not at.exception
    assert set(at.dataframe[2].value.Outcome) == {"Loaded with a warning"}


def test_column_profile_shows_metrics_with_help(use_demo_home):
    at = _open()
    at.selectbox(key=f"dq_profile_column_{DATASET}").set_value("firmness_n").run()
    metrics = {metric.label: metric for metric in at.metric}
    assert {"Rows", "Missing", "Distinct values", "Lowest", "Highest", "Median", "Middle 90%"} <= set(metrics)
    assert all(metric.help for metric in metrics.values())
    assert metrics["Rows"].value.replace(",", "").isdigit() and " to " in metrics["Middle 90%"].value
    # One delivery as it arrived: the quarantined zeros are part of its profile.
    batches = list_batches(Warehouse(use_demo_home / "warehouse.duckdb"), DATASET)
    quarantined = batches[batches.status == "partly_quarantined"].batch_id.iloc[0]
    at.selectbox(key=f"dq_profile_batch_{DATASET}").set_value(quarantined).run()
    assert not at.exception
    assert {metric.label: metric.value for metric in at.metric}["Lowest"] == "0"


def test_viewer_sees_the_checks_read_only_and_cannot_load_data(use_demo_home, monkeypatch):
    monkeypatch.setenv("MLOPS_APP_LOCAL_USER_ROLE", "viewer")
    at = _open()
    editor = at.text_area(key=f"dq_checks_yaml_{DATASET}")
    assert editor.disabled and "name: firmness_range" in editor.value
    assert at.file_uploader(key=f"dq_upload_{DATASET}").proto.disabled
    assert at.button(key="dq_save_checks").disabled and at.button(key="dq_ingest").disabled and at.button(key="dq_recheck").disabled
    notes = _alerts(at, "info")
    assert "Only admins and above may edit the checks" in notes and "with the viewer role" in notes
    assert "Only reviewers and above may load deliveries or re-run checks" in notes


def test_the_library_refuses_a_viewer_even_if_the_page_enabled_the_controls(writable_home, monkeypatch):
    """Hiding controls is not the guard: with the page's role notes switched off, every write still fails."""
    from mlops_app import quality_view

    monkeypatch.setattr(quality_view, "permission_note", lambda identity, action, what: None)
    monkeypatch.setenv("MLOPS_APP_LOCAL_USER_ROLE", "viewer")
    original = checks_path(writable_home, DATASET).read_bytes()
    warehouse = Warehouse(writable_home / "warehouse.duckdb")
    before = len(list_batches(warehouse, DATASET))
    generation = warehouse.generation()

    at = _open()
    at.text_area(key=f"dq_checks_yaml_{DATASET}").input("dataset: apple_harvest\nchecks: []\n")
    at.button(key="dq_save_checks").click().run()
    assert not at.exception
    assert "has the viewer role, and edit checks needs the admin role" in _alerts(at, "error")

    incoming = sorted((writable_home / "demo" / "incoming").glob("*.csv"))[-1]
    at.file_uploader(key=f"dq_upload_{DATASET}").set_value((incoming.name, incoming.read_bytes(), "text/csv"))
    at.run()
    at.button(key="dq_ingest").click().run()
    assert not at.exception
    assert "has the viewer role, and ingest data needs the reviewer role" in _alerts(at, "error")

    at.button(key="dq_recheck").click().run()
    assert not at.exception
    assert "has the viewer role, and ingest data needs the reviewer role" in _alerts(at, "error")

    assert checks_path(writable_home, DATASET).read_bytes() == original
    assert len(list_batches(warehouse, DATASET)) == before and warehouse.generation() == generation


def test_admin_saves_valid_checks_and_a_bad_edit_changes_nothing(writable_home):
    path = checks_path(writable_home, DATASET)
    at = _open()
    editor = at.text_area(key=f"dq_checks_yaml_{DATASET}")
    edited = editor.value.replace("Weight must be between 50 and 500 g", "Weight must be between 50 and 500 grams")
    assert edited != editor.value
    editor.input(edited)
    at.button(key="dq_save_checks").click().run()
    assert not at.exception and not at.error
    assert "Saved the checks to" in _alerts(at, "success")
    assert "Weight must be between 50 and 500 grams" in path.read_text()

    saved = path.read_bytes()
    for bad, message in (
        ("checks: [\n", "is not valid YAML"),
        ("dataset: apple_harvest\nchecks:\n  - name: w\n    kind: range\n    column: weight_g\n", "give min, max or both"),
        ("dataset: apple_harvest\nchecks:\n  - name: w\n    kind: not_null\n    column: shoe_size\n", "uses column 'shoe_size'"),
    ):
        at.text_area(key=f"dq_checks_yaml_{DATASET}").input(bad)
        at.button(key="dq_save_checks").click().run()
        assert not at.exception
        assert message in _alerts(at, "error"), _alerts(at, "error")
        assert path.read_bytes() == saved


def test_reviewer_uploads_deliveries_and_sees_each_outcome(writable_home, monkeypatch):
    monkeypatch.setenv("MLOPS_APP_LOCAL_USER_ROLE", "reviewer")
    warehouse = Warehouse(writable_home / "warehouse.duckdb")
    before = len(list_batches(warehouse, DATASET))
    incoming = writable_home / "demo" / "incoming"
    newest = sorted(incoming.glob("grading-line-????-??-??.csv"))[-1]
    old_format = next(incoming.glob("*old-export.csv"))
    fresh = newest.read_text().replace(newest.stem.removeprefix("grading-line-") + "-", "new-")

    outcomes = []
    for name, content in (
        ("next-day.csv", fresh.encode()),  # new apples: loaded
        (newest.name, newest.read_bytes()),  # sent before: recognised, not loaded twice
        (old_format.name, old_format.read_bytes()),  # missing sugar_brix: rejected
    ):
        at = _open()
        at.file_uploader(key=f"dq_upload_{DATASET}").set_value((name, content, "text/csv"))
        at.run()
        at.button(key="dq_ingest").click().run()
        assert not at.exception
        outcomes.append((_alerts(at, "success"), _alerts(at, "info"), _alerts(at, "error")))
    assert "Loaded" in outcomes[0][0] and "next-day.csv" in outcomes[0][0]
    assert "was not loaded again" in outcomes[1][1]
    assert "was rejected" in outcomes[2][2] and "sugar_brix" in outcomes[2][2]
    batches = list_batches(warehouse, DATASET)
    assert len(batches) == before + 3
    assert list(batches.status[:3]) == ["rejected", "duplicate", "accepted"]
    assert batches.ingested_by.iloc[0] == "demo@localhost"
    # The uploads never stay behind in the home.
    assert not any((writable_home / "uploads").iterdir())


def test_recheck_records_a_run_on_the_stored_rows(writable_home):
    at = _open()
    at.button(key="dq_recheck").click().run()
    assert not at.exception
    flash = _alerts(at, "success") + _alerts(at, "warning") + _alerts(at, "error")
    assert "stored rows of apple_harvest" in flash
    ran_on = at.dataframe[0].value["Ran on"]
    assert ran_on.str.contains("re-check of the stored rows").any()


def test_a_saved_report_opens_without_recomputing(writable_home):
    at = _open()
    batch = at.selectbox(key=f"dq_report_batch_{DATASET}").value
    path = report_path(writable_home / "reports", DATASET, batch)
    path.parent.mkdir(parents=True)
    path.write_text("<html><body>saved earlier</body></html>")
    at = _open()
    assert "it opens without recomputing" in _text(at)
    at.button(key="dq_report_open_button").click().run()
    assert not at.exception and not at.error
    assert path.read_text() == "<html><body>saved earlier</body></html>"
    assert at.get("download_button")[-1].proto.label == "Download the report (HTML)"


def test_empty_home_guides(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_APP_HOME", str(tmp_path / "empty"))
    Warehouse(tmp_path / "empty" / "warehouse.duckdb").migrate()
    at = _open()
    assert "mlops-app register-dataset" in at.info[0].value and "mlops-app demo" in at.info[0].value
