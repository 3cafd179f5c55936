"""The words and choices of the Data quality page: verdict, scorecard, deliveries, problems, drill-down.

Pure functions get small hand-made frames; the reads run on a real warehouse in tmp_path,
filled through the real ingestion path.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from mlops_app.auth import Identity
from mlops_app.ingest import ingest_file, register_dataset_from_file
from mlops_app.quality import (
    DatasetChecks,
    NotNullCheck,
    RangeCheck,
    RequiredColumnsCheck,
    column_profile,
    save_checks,
)
from mlops_app.quality_view import (
    CHECK_STATUS_LABELS,
    ROW_LEVEL_KINDS,
    affected_rows_text,
    choose_dataset,
    csv_for_download,
    dataset_verdict,
    deliveries_table,
    drilldown_choices,
    escape_markdown,
    failing_rows_sample,
    failing_rows_table,
    format_time,
    history_points,
    ingest_outcome_level,
    load_page_data,
    permission_note,
    profile_metrics,
    recent_problems,
    recheck_outcome_level,
    scorecard_table,
    share_text,
    upload_file_name,
)
from mlops_app.status import Status
from mlops_app.warehouse import Warehouse

ADMIN = Identity("admin@orchard.example", "Admin", "admin", "local")
VIEWER = Identity("viewer@orchard.example", "Viewer", "viewer", "local")
REVIEWER = Identity("rev@orchard.example", "Rev", "reviewer", "local")
DAY = datetime(2026, 6, 1, 19, 0, tzinfo=UTC)
HEADER = "apple_id,graded_at,firmness_n,colour_score"
CHECKS = DatasetChecks(
    dataset="apples",
    checks=(
        RequiredColumnsCheck(name="columns_present", columns=("apple_id", "graded_at", "firmness_n", "colour_score"),
                             description="Every measurement must be in the file"),
        RangeCheck(name="firmness_range", column="firmness_n", min=15, max=120, description="Firmness must be between 15 and 120 N"),
        NotNullCheck(name="colour_present", column="colour_score", severity="warn", description="Every apple should have a colour reading"),
    ),
)


def _csv(day: int, rows: int, *, zero_firmness: int = 0, missing_colour: int = 0, columns: str = HEADER) -> str:
    lines = [columns]
    for i in range(rows):
        firmness = "0" if i < zero_firmness else str(40 + i % 30)
        colour = "" if i >= rows - missing_colour else str(50 + i % 40)
        values = {"apple_id": f"d{day}-{i}", "graded_at": f"2026-06-{day:02d}T10:{i % 60:02d}:00Z", "firmness_n": firmness, "colour_score": colour}
        lines.append(",".join(values[name] for name in columns.split(",")))
    return "\n".join(lines) + "\n"


@pytest.fixture
def home(tmp_path):
    """A home with five deliveries: clean, quarantined (30 of 100 rows), warned, duplicate, rejected."""
    home = tmp_path / "home"
    warehouse = Warehouse(home / "warehouse.duckdb")
    warehouse.migrate()
    sample = tmp_path / "sample.csv"
    sample.write_text(_csv(1, 3))
    register_dataset_from_file(warehouse, "apples", sample, identity=ADMIN, description="Graded apples", id_column="apple_id",
                               time_column="graded_at", freshness_hours=36)
    save_checks(home, CHECKS, identity=ADMIN)
    files = [
        ("day-1.csv", _csv(1, 100)),
        ("day-2.csv", _csv(2, 100, zero_firmness=30)),
        ("day-3.csv", _csv(3, 80, missing_colour=8)),
        ("day-3 (resent).csv", _csv(3, 80, missing_colour=8)),
        ("day-4-old.csv", _csv(4, 50, columns="apple_id,graded_at,firmness_n")),
    ]
    for position, (name, text) in enumerate(files):
        path = tmp_path / name
        path.write_text(text)
        ingest_file(warehouse, "apples", path, identity=ADMIN, home=home, now=DAY + timedelta(days=position), raise_on_reject=False)
    return home


@pytest.fixture
def data(home):
    return load_page_data(Warehouse(home / "warehouse.duckdb"), "apples", CHECKS)


def test_shares_read_like_a_person_says_them():
    assert [share_text(value) for value in (0, 0.00004, 0.004, 0.3386, 0.995, 1.0)] == ["0%", "<0.1%", "0.4%", "34%", ">99%", "100%"]
    assert share_text(float("nan")) == "0%"


def test_affected_rows_in_words():
    assert affected_rows_text(515, 1521, "fail", "Firmness must be between 15 and 120 N") == (
        "515 rows (34% of the batch) failed: Firmness must be between 15 and 120 N"
    )
    assert affected_rows_text(1, 200, "warn", "Colour present") == "1 row (0.5% of the batch) has a warning: Colour present"
    assert affected_rows_text(0, 1170, "pass") == "All 1,170 rows pass"
    assert affected_rows_text(3, 10, "fail", scope="the stored rows") == "3 rows (30% of the stored rows) failed"
    assert affected_rows_text(0, 0, "skipped", "Drift") == "Not checked: Drift"


def test_row_level_kinds_come_from_the_check_declarations():
    assert ROW_LEVEL_KINDS == {"not_null", "range", "allowed_values", "unique"}


def test_a_link_picks_its_dataset_and_an_unknown_one_warns():
    assert choose_dataset(None, ["apples", "pears"]) == ("apples", None)
    assert choose_dataset("pears", ["apples", "pears"]) == ("pears", None)
    chosen, warning = choose_dataset("plums", ["apples", "pears"])
    assert chosen == "apples" and "no dataset named 'plums'" in warning and "apples, pears" in warning
    assert choose_dataset("x", []) == (None, None)
    assert len(choose_dataset("z" * 500, ["a"])[1]) < 200


def test_verdict_names_the_rejected_delivery_and_the_stale_data(data):
    status, sentence = dataset_verdict(data.scorecard, data.batches, freshness_hours=36, last_event_at=data.last_event_at,
                                       now=DAY + timedelta(days=10))
    assert status is Status.ACT
    assert sentence.startswith("2 of the last 4 deliveries had problems: ")
    assert "day-4-old.csv was rejected because the file lacks 1 required column: colour_score" in sentence
    assert "day-2.csv had 30 rows quarantined" in sentence
    assert "No new data for" in sentence and "expected every 36 hours" in sentence
    # The latest checks ran on that rejected file: said once, not twice.
    assert sentence.count("lacks 1 required column") == 1 and "Latest checks" not in sentence


def test_verdict_words_the_latest_failing_check():
    card = pd.DataFrame({
        "check_name": ["firmness_range", "weight_range", "colour_present"], "check_kind": ["range", "range", "not_null"],
        "status": ["fail", "fail", "warn"], "failed_rows": [515, 3, 7], "total_rows": [1521, 1521, 1521],
        "message": ["m1", "m2", "m3"], "description": ["Firmness must be between 15 and 120 N", "Weight ok", "Colour present"],
        "batch_id": ["b1", "b1", "b1"],
    })
    status, sentence = dataset_verdict(card, pd.DataFrame(columns=["status"]))
    assert status is Status.ACT
    assert sentence == "Latest checks: 515 rows (34% of the batch) failed: Firmness must be between 15 and 120 N. 1 more check fails."


def test_verdict_is_healthy_only_when_deliveries_checks_and_freshness_are():
    card = pd.DataFrame({"status": ["pass", "pass"], "message": ["ok", "ok"]})
    batches = pd.DataFrame({"status": ["accepted", "duplicate", "accepted"], "source_name": ["a", "b", "c"],
                            "reason": [None, None, None], "quarantined_rows": [0, 0, 0]})
    now = datetime(2026, 6, 2, tzinfo=UTC)
    status, sentence = dataset_verdict(card, batches, freshness_hours=36, last_event_at=now - timedelta(hours=5), now=now)
    assert status is Status.HEALTHY and "All 2 checks pass" in sentence and "last 2 deliveries were all loaded" in sentence
    status, sentence = dataset_verdict(card, batches, freshness_hours=36, last_event_at=now - timedelta(days=3), now=now)
    assert status is Status.WATCH and sentence.startswith("No new data for 3 days")
    empty = pd.DataFrame(columns=["status", "message"])
    assert dataset_verdict(empty, pd.DataFrame(columns=["status"]))[0] is Status.UNKNOWN


def test_scorecard_table_words_each_check(data):
    table = scorecard_table(data.scorecard, data.batches, data.history)
    assert list(table.columns) == ["Status", "Check", "Latest result", "Problems lately", "Ran on", "Check name"]
    rows = table.set_index("Check name")
    # The latest run is the rejected file: its required-columns check failed.
    assert rows.loc["columns_present", "Status"] == CHECK_STATUS_LABELS["fail"] == "✗ Fail"
    assert rows.loc["columns_present", "Latest result"] == "The file lacks 1 required column: colour_score."
    assert "day-4-old.csv" in rows.loc["columns_present", "Ran on"]
    assert rows.loc["firmness_range", "Problems lately"].startswith("Failed once in the last 4 deliveries (latest 2026-06-02")
    # The rejected file lacked the colour column, so every one of its rows also broke the colour check.
    assert rows.loc["colour_present", "Problems lately"].startswith("Warned 2 times in the last 4 deliveries")
    assert rows.loc["firmness_range", "Check"] == "Firmness must be between 15 and 120 N"
    assert table.iloc[0]["Status"] == "✗ Fail"  # worst first
    # Among passing checks, those with problems lately come first: failed, then warned.
    passing = table[table.Status == "✓ Pass"]["Problems lately"].str.split().str[0].tolist()
    assert passing == sorted(passing, key=lambda word: {"Failed": 0, "Warned": 1}.get(word, 2))
    assert scorecard_table(data.scorecard.iloc[0:0], data.batches, data.history).empty


def test_deliveries_table_has_words_times_and_counts(data):
    table = deliveries_table(data.batches)
    assert list(table.Source) == ["day-4-old.csv", "day-3 (resent).csv", "day-3.csv", "day-2.csv", "day-1.csv"]
    assert list(table.Status) == ["✗ Rejected", "↺ Duplicate, not loaded", "⚠ Accepted with warnings", "✗ Partly quarantined", "✓ Accepted"]
    assert table.Received.iloc[-1] == "2026-06-01 19:00 UTC"
    assert table.Quarantined.iloc[3] == 30 and table.Accepted.iloc[3] == 70 and table.Warned.iloc[2] == 8
    assert table.Reason.iloc[0] == "The file lacks 1 required column: colour_score."


def test_recent_problems_say_what_happened_to_each_file(data):
    problems = recent_problems(data.batches, data.history, dict(zip(data.scorecard.check_name, data.scorecard.description, strict=True)))
    assert [(p.source, p.label, p.status) for p in problems] == [
        ("day-4-old.csv", "Rejected", Status.ACT),
        ("day-3 (resent).csv", "Duplicate caught", Status.HEALTHY),
        ("day-3.csv", "Warning", Status.WATCH),
        ("day-2.csv", "Quarantined", Status.ACT),
    ]
    assert problems[0].sentence == "Rejected, nothing was loaded: The file lacks 1 required column: colour_score."
    assert problems[1].sentence.startswith("Recognised as a re-send: the same content was already loaded as batch")
    assert problems[2].sentence.startswith("8 rows (10% of the batch) have a warning: Every apple should have a colour reading.")
    assert problems[3].sentence.startswith("30 rows (30% of the batch) failed: Firmness must be between 15 and 120 N. These rows were set aside")
    assert recent_problems(data.batches.iloc[0:0], data.history, {}) == []


def test_drilldown_offers_failing_deliveries_first_and_shows_their_rows(home, data):
    kinds = dict(zip(data.scorecard.check_name, data.scorecard.check_kind, strict=True))
    choices = drilldown_choices(data.history, kinds)
    batches = data.batches.set_index("source_name").batch_id
    assert choices == {batches["day-2.csv"]: ["firmness_range"], batches["day-3.csv"]: ["colour_present"]}
    warehouse = Warehouse(home / "warehouse.duckdb")
    rows = failing_rows_sample(warehouse, "apples", batches["day-2.csv"], "firmness_range")
    table = failing_rows_table(rows, ["firmness_n"])
    assert len(table) == 30 and list(table.columns[:2]) == ["Outcome", "firmness_n"]
    assert set(table.Outcome) == {"Quarantined (not loaded)"} and set(table["Failed checks"]) == {"firmness_range"}
    assert (table.firmness_n == 0).all() and "_batch_id" not in table.columns
    flagged = failing_rows_table(failing_rows_sample(warehouse, "apples", batches["day-3.csv"], "colour_present"), ["colour_score"])
    assert len(flagged) == 8 and set(flagged.Outcome) == {"Loaded with a warning"} and set(flagged.Warnings) == {"colour_present"}
    assert drilldown_choices(data.history.iloc[0:0], kinds) == {}


def test_history_points_follow_the_scorecard_order(data):
    points = history_points(data.history, data.scorecard, data.batches)
    assert set(points.status) == {"pass", "warn", "fail"}
    quarantined = points[(points.status == "fail") & points.check.str.startswith("Firmness")]
    assert len(quarantined) == 1 and "day-2.csv" in quarantined.hover.iloc[0] and "30 rows (30% of the batch) failed" in quarantined.hover.iloc[0]


def test_profile_metrics_explain_themselves(home):
    warehouse = Warehouse(home / "warehouse.duckdb")
    batch = load_page_data(warehouse, "apples", CHECKS).batches.set_index("source_name").batch_id["day-2.csv"]
    tiles = {tile.label: tile for tile in profile_metrics(column_profile(warehouse, "apples", "firmness_n", batch))}
    assert tiles["Rows"].value == "100" and tiles["Lowest"].value == "0" and tiles["Highest"].value == "69"
    assert tiles["Missing"].value == "0 (0%)" and "Middle 90%" in tiles and "Median" in tiles
    assert all(tile.help for tile in tiles.values())
    text_tiles = {tile.label for tile in profile_metrics(column_profile(warehouse, "apples", "apple_id"))}
    assert "Lowest" not in text_tiles and "Median" not in text_tiles
    time_tiles = {tile.label: tile.value for tile in profile_metrics(column_profile(warehouse, "apples", "graded_at"))}
    assert time_tiles["Earliest"].startswith("2026-06-01") and time_tiles["Latest"].endswith("UTC")


def test_permission_notes_name_the_role_needed():
    assert permission_note(REVIEWER, "ingest_data", "load deliveries") is None
    note = permission_note(VIEWER, "ingest_data", "load deliveries")
    assert note.startswith("Only reviewers and above may load deliveries") and "viewer@orchard.example" in note and "viewer role" in note
    assert "Only admins and above may edit the checks" in permission_note(REVIEWER, "edit_checks", "edit the checks")


def test_outcome_levels():
    assert [ingest_outcome_level(s) for s in ("accepted", "partly_quarantined", "rejected", "duplicate")] == ["success", "warning", "error", "info"]
    assert ingest_outcome_level("accepted", warned_rows=3) == "warning"
    assert recheck_outcome_level(["pass", "warn"]) == "warning" and recheck_outcome_level(["fail", "pass"]) == "error"
    assert recheck_outcome_level(["pass", "skipped"]) == "success"


@pytest.mark.parametrize(
    ("name", "saved_as"),
    [
        ("day.csv", "delivery.csv"),
        ("DAY.PARQUET", "delivery.parquet"),
        ("x.pq", "delivery.parquet"),
        ("../../etc/passwd", "delivery.csv"),
        ("a/b\\c.csv.gz", "delivery.csv.gz"),
        ("", "delivery.csv"),
    ],
)
def test_uploaded_files_are_saved_under_a_fixed_name(name, saved_as):
    assert upload_file_name(name) == saved_as


def test_outside_text_is_literal_in_markdown():
    assert escape_markdown("[x](javascript:alert(1)) **b** :red[c]") == (
        "\\[x\\]\\(javascript\\:alert\\(1\\)\\) \\*\\*b\\*\\* \\:red\\[c\\]"
    )


def test_times_are_iso_with_the_zone():
    assert format_time(pd.Timestamp("2026-10-13 19:00", tz="UTC")) == "2026-10-13 19:00 UTC"
    assert format_time(None) == "never" and format_time(pd.NaT) == "never"


def test_downloaded_csv_cannot_smuggle_spreadsheet_formulas():
    frame = pd.DataFrame({"note": ["=HYPERLINK(\"http://x\")", "+1", "ok", None], "weight": [-5.0, 1.0, 2.0, 3.0]})
    lines = csv_for_download(frame).splitlines()
    assert lines[1].startswith("\"'=HYPERLINK(") and lines[1].endswith(",-5.0")
    assert lines[2] == "'+1,1.0" and lines[3] == "ok,2.0" and lines[4] == ",3.0"
