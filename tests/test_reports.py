"""Saved Evidently reports: validated paths, DuckDB sampling, and one real Evidently run (slow import)."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime, timedelta

import pytest

from mlops_app.auth import Identity
from mlops_app.errors import InvalidNameError, MlopsError
from mlops_app.ingest import ingest_file, register_dataset_from_file
from mlops_app.reports import data_summary_report, list_reports, report_path, report_sample, saved_report
from mlops_app.warehouse import Warehouse

ADMIN = Identity("admin@orchard.example", "Admin", "admin", "local")
NOW = datetime(2026, 6, 2, 19, 0, tzinfo=UTC)
BATCH = "apples-20260602T190000-abc123"


# A delivered value written to break out of Evidently's <script> blocks.
HOSTILE = "</script><script>alert(document.cookie)</script>"


def _csv(rows: int, *, day: int = 2, hostile: bool = False) -> str:
    lines = ["apple_id,graded_at,weight_g,variety"]
    for i in range(rows):
        variety = HOSTILE if hostile and i == 0 else ("gala", "fuji", "braeburn")[i % 3]
        lines.append(f"d{day}-{i},2026-06-{day:02d}T10:{i % 60:02d}:00Z,{120 + i % 90},{variety}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def warehouse(tmp_path) -> Warehouse:
    warehouse = Warehouse(tmp_path / "home" / "warehouse.duckdb")
    warehouse.migrate()
    sample = tmp_path / "sample.csv"
    sample.write_text(_csv(3))
    register_dataset_from_file(warehouse, "apples", sample, identity=ADMIN, id_column="apple_id", time_column="graded_at")
    return warehouse


def _ingest(warehouse: Warehouse, tmp_path, name: str, text: str, when: datetime) -> str:
    path = tmp_path / name
    path.write_text(text)
    return ingest_file(warehouse, "apples", path, identity=ADMIN, now=when, raise_on_reject=False).batch_id


@pytest.mark.parametrize(
    ("dataset", "batch_id"),
    [
        ("apples", "../x"),
        ("apples", "%2e%2e"),
        ("apples", "a/b"),
        ("apples", "a\\b"),
        ("apples", "/etc/passwd"),
        ("apples", ""),
        ("apples", "a" * 129),
        ("apples", "b\u0430tch"),  # Cyrillic a
        ("apples", "batch.html"),
        ("apples", "batch\n"),
        ("../apples", BATCH),
        ("Apples", BATCH),
        ("", BATCH),
    ],
)
def test_report_paths_refuse_hostile_names(tmp_path, dataset, batch_id):
    with pytest.raises(InvalidNameError, match="(Batch id|Dataset name) .* (cannot name a report|is not allowed)"):
        report_path(tmp_path / "reports", dataset, batch_id)


def test_report_paths_stay_in_the_folder_and_listing_ignores_strangers(tmp_path):
    path = report_path(tmp_path / "reports", "apples", BATCH)
    assert path == (tmp_path / "reports" / "data_quality" / "apples" / f"data_summary__{BATCH}.html").resolve()
    with pytest.raises(InvalidNameError, match="Unknown report kind"):
        report_path(tmp_path / "reports", "apples", BATCH, kind="../drift")
    assert list_reports(tmp_path / "reports", "apples") == [] and saved_report(tmp_path / "reports", "apples", BATCH) is None
    path.parent.mkdir(parents=True)
    path.write_text("<html></html>")
    for stranger in ("notes.txt", "data_summary__bad.name.html", ".data_summary__x.html.lock", "drift__x.html"):
        (path.parent / stranger).write_text("x")
    listed = list_reports(tmp_path / "reports", "apples")
    assert [(report.batch_id, report.kind, report.path) for report in listed] == [(BATCH, "data_summary", path)]
    assert saved_report(tmp_path / "reports", "apples", BATCH).size_bytes == len("<html></html>")


def test_the_sample_is_taken_in_duckdb_from_loaded_and_quarantined_rows(warehouse, tmp_path):
    batch = _ingest(warehouse, tmp_path, "day.csv", _csv(300, hostile=True), NOW)
    full = report_sample(warehouse, "apples", batch)
    assert full.total_rows == 300 and len(full.frame) == 300 and not full.sampled
    assert list(full.frame.columns) == ["apple_id", "graded_at", "weight_g", "variety"]  # no system columns
    # No text value can open or close a tag in the report's HTML.
    assert not full.frame.variety.str.contains("<").any()
    assert HOSTILE.replace("<", "\uff1c") in set(full.frame.variety)
    small = report_sample(warehouse, "apples", batch, max_rows=50)
    assert small.total_rows == 300 and len(small.frame) == 50 and small.sampled
    again = report_sample(warehouse, "apples", batch, max_rows=50)
    assert list(again.frame.apple_id) == list(small.frame.apple_id)  # repeatable
    with pytest.raises(MlopsError, match="has no stored rows"):
        report_sample(warehouse, "apples", "apples-unknown")


# Importing evidently imports litestar (its UI server), which warns about its own deprecations.
@pytest.mark.filterwarnings("ignore::DeprecationWarning:litestar.*")
def test_data_summary_report_is_built_once_then_reused(warehouse, tmp_path):
    """The one test that imports evidently (about 8 s)."""
    batch = _ingest(warehouse, tmp_path, "day.csv", _csv(400, hostile=True), NOW)
    reports_dir = tmp_path / "home" / "reports"
    path = data_summary_report(warehouse, "apples", batch, reports_dir, max_rows=400)
    assert "evidently" in sys.modules
    assert path == report_path(reports_dir, "apples", batch) and path.is_file()
    html = path.read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith("<html") or "<html" in html[:500].lower()
    assert "weight_g" in html and "variety" in html and "drawDashboard" in html
    assert "<script>alert" not in html and "alert(document.cookie)" in html  # the value is there, defused
    assert not [name for name in os.listdir(path.parent) if name.endswith(".tmp")]
    # A saved report opens without recomputing, even if the data changed since.
    stamp = path.stat().st_mtime_ns
    _ingest(warehouse, tmp_path, "next.csv", _csv(50, day=3), NOW + timedelta(days=1))
    assert data_summary_report(warehouse, "apples", batch, reports_dir) == path and path.stat().st_mtime_ns == stamp
    assert [report.batch_id for report in list_reports(reports_dir, "apples")] == [batch]
    with pytest.raises(MlopsError, match="no stored rows .* Pick a loaded delivery"):
        data_summary_report(warehouse, "apples", "apples-20260101T000000-000000", reports_dir)
