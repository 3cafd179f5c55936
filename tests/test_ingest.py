"""Ingestion with quarantine, rejection of bad input, recheck, and the reads the page uses.

Real DuckDB warehouses in tmp_path and real CSV / Parquet files written by each test.
"""

from __future__ import annotations

import gzip
import re
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from mlops_app.auth import Identity
from mlops_app.datasets import BATCH_COLUMN, Dataset, columns_from_frame, get_dataset, list_datasets, register_dataset
from mlops_app.errors import MlopsError, NotFoundError, PermissionDeniedError
from mlops_app.ingest import (
    BatchRejectedError,
    file_sha256,
    ingest_file,
    recheck_dataset,
    register_dataset_from_file,
    suggest_checks_from_file,
)
from mlops_app.quality import (
    AllowedValuesCheck,
    ChecksConfigError,
    DatasetChecks,
    NullShareCheck,
    RangeCheck,
    RequiredColumnsCheck,
    RowCountCheck,
    UniqueCheck,
    check_history,
    column_profile,
    failing_rows,
    list_batches,
    quality_verdict,
    save_checks,
    scorecard,
    suggest_checks,
)
from mlops_app.status import Status
from mlops_app.warehouse import Warehouse

ADMIN = Identity("admin@orchard.example", "Admin", "admin", "local")
VIEWER = Identity("viewer@orchard.example", "Viewer", "viewer", "local")
NOW = datetime(2026, 6, 3, 8, 0, tzinfo=UTC)
HEADER = "apple_id,graded_at,weight_g,variety,crate"


def csv_rows(count: int, *, start: int = 0, weight=lambda i: 150 + i % 100, variety=lambda i: ("gala", "fuji")[i % 2]) -> str:
    lines = [HEADER]
    for i in range(start, start + count):
        lines.append(f"a{i},2026-06-02T{6 + i % 12:02d}:{i % 60:02d}:00Z,{weight(i)},{variety(i)},{i // 10}")
    return "\n".join(lines) + "\n"


CHECKS = DatasetChecks(
    dataset="apples",
    checks=(
        RequiredColumnsCheck(name="required_columns", columns=("apple_id", "graded_at", "weight_g", "variety", "crate")),
        RowCountCheck(name="row_count", min=5, description="A delivery has at least 5 apples"),
        UniqueCheck(name="apple_id_unique", columns=("apple_id",), description="Every apple is graded once"),
        RangeCheck(name="weight_range", column="weight_g", min=80, max=400, description="Weight must be between 80 and 400 g"),
        AllowedValuesCheck(name="variety_known", column="variety", values=("gala", "fuji"), severity="warn", description="Variety is one we grow"),
        NullShareCheck(name="weight_missing", column="weight_g", max_share=0.2, severity="warn"),
    ),
)


@pytest.fixture
def warehouse(tmp_path) -> Warehouse:
    warehouse = Warehouse(tmp_path / "home" / "warehouse.duckdb")
    warehouse.migrate()
    first = tmp_path / "schema.csv"
    first.write_text(csv_rows(3))
    register_dataset_from_file(
        warehouse, "apples", first, identity=ADMIN, description="Graded apples", owner="qa@orchard.example",
        id_column="apple_id", time_column="graded_at", types={"weight_g": "DOUBLE"}, freshness_hours=36,
    )
    return warehouse


def ingest(warehouse, path, **options):
    options.setdefault("checks", CHECKS)
    options.setdefault("now", NOW)
    return ingest_file(warehouse, "apples", path, identity=ADMIN, **options)


def stored(warehouse) -> int:
    return warehouse.query_one("SELECT count(*) FROM ds_apples")[0]


def only_batch(warehouse) -> pd.Series:
    frame = list_batches(warehouse, "apples")
    assert len(frame) == 1
    return frame.iloc[0]


# --- Registering -----------------------------------------------------------------------------


def test_register_from_file_reads_types_and_roles(warehouse, tmp_path):
    dataset = get_dataset(warehouse, "apples")
    assert {c.name: (c.dtype, c.role) for c in dataset.columns} == {
        "apple_id": ("VARCHAR", "id"),
        "graded_at": ("TIMESTAMP WITH TIME ZONE", "timestamp"),
        "weight_g": ("DOUBLE", "feature"),
        "variety": ("VARCHAR", "feature"),
        "crate": ("BIGINT", "feature"),
    }
    assert warehouse.table_exists("ds_apples") and warehouse.table_exists("qr_apples") and stored(warehouse) == 0
    with pytest.raises(MlopsError, match="'apples' is already registered"):
        register_dataset_from_file(warehouse, "apples", tmp_path / "schema.csv", identity=ADMIN)
    bad = tmp_path / "bad_names.csv"
    bad.write_text("Apple ID,weight\n1,2\n")
    with pytest.raises(MlopsError, match="rename: 'Apple ID'"):
        register_dataset_from_file(warehouse, "pears", bad, identity=ADMIN)
    with pytest.raises(PermissionDeniedError):
        register_dataset_from_file(warehouse, "plums", tmp_path / "schema.csv", identity=VIEWER)


# --- Outcomes: accepted, quarantined, flagged, rejected ------------------------------------------


def test_a_clean_file_is_accepted_and_recorded(warehouse, tmp_path):
    path = tmp_path / "day1.csv"
    path.write_text(csv_rows(20))
    result = ingest(warehouse, path)
    assert (result.status, result.rows, result.accepted_rows, result.quarantined_rows) == ("accepted", 20, 20, 0)
    assert result.message == f"Loaded 20 of 20 rows of day1.csv into apples (batch {result.batch_id})."
    assert stored(warehouse) == 20
    assert warehouse.query_one("SELECT count(DISTINCT _batch_id), min(_batch_id) FROM ds_apples") == (1, result.batch_id)
    batch = only_batch(warehouse)
    assert (batch.status, batch.content_sha256, batch.ingested_by) == ("accepted", file_sha256(path), ADMIN.email)
    recorded = warehouse.query("SELECT check_name, status FROM quality_results WHERE batch_id = ? ORDER BY check_name", [result.batch_id])
    assert dict(recorded.itertuples(index=False)) == {
        "apple_id_unique": "pass", "file_readable": "pass", "required_columns": "pass", "row_count": "pass",
        "variety_known": "pass", "weight_missing": "pass", "weight_range": "pass",
    }
    catalogue = list_datasets(warehouse).iloc[0]
    assert catalogue.row_count == 20 and catalogue.problem_batches == 0
    assert catalogue.last_event_at.to_pydatetime() == datetime(2026, 6, 2, 17, 11, tzinfo=UTC)


def test_error_rows_are_quarantined_and_warn_rows_pass_with_a_flag(warehouse, tmp_path):
    path = tmp_path / "day1.csv"
    weights = {3: 500, 7: 20}
    varieties = {4: "pink", 7: "pink"}
    path.write_text(csv_rows(20, weight=lambda i: weights.get(i, 150), variety=lambda i: varieties.get(i, "gala")))
    result = ingest(warehouse, path)
    assert (result.status, result.accepted_rows, result.quarantined_rows, result.warned_rows) == ("partly_quarantined", 18, 2, 1)
    assert result.reason == "2 rows quarantined: weight_range (2 rows); passed with warnings on 1 row: variety_known (2 rows)"
    assert "2 rows failed error checks and were quarantined" in result.message
    loaded = warehouse.query("SELECT apple_id, _warnings FROM ds_apples WHERE _warnings IS NOT NULL")
    assert loaded.apple_id.tolist() == ["a4"] and list(loaded._warnings[0]) == ["variety_known"]
    quarantined = warehouse.query("SELECT apple_id, weight_g, _failed_checks, _warnings FROM qr_apples ORDER BY apple_id")
    assert quarantined.apple_id.tolist() == ["a3", "a7"] and quarantined.weight_g.tolist() == [500.0, 20.0]
    assert [list(x) for x in quarantined._failed_checks] == [["weight_range"], ["weight_range"]]
    assert list(quarantined._warnings[1]) == ["variety_known"]

    # Drill-down: the page shows the rows behind a check, quarantined and flagged alike.
    rows = failing_rows(warehouse, "apples", result.batch_id, "weight_range")
    assert rows.apple_id.tolist() == ["a3", "a7"] and set(rows._outcome) == {"quarantined"}
    flagged = failing_rows(warehouse, "apples", result.batch_id, "variety_known")
    assert sorted(zip(flagged.apple_id, flagged._outcome, strict=True)) == [("a4", "flagged"), ("a7", "quarantined")]
    assert failing_rows(warehouse, "apples", result.batch_id, "row_count").empty


def test_a_batch_level_error_rejects_the_whole_batch(warehouse, tmp_path):
    path = tmp_path / "tiny.csv"
    path.write_text(csv_rows(3, weight=lambda i: 999))
    with pytest.raises(BatchRejectedError, match=r"tiny.csv was rejected .*: The delivery has 3 rows \(expected at least 5\)\.") as caught:
        ingest(warehouse, path)
    assert stored(warehouse) == 0 and warehouse.query_one("SELECT count(*) FROM qr_apples")[0] == 0
    batch = only_batch(warehouse)
    assert (batch.status, batch.reason, batch.accepted_rows) == ("rejected", "The delivery has 3 rows (expected at least 5).", 0)
    statuses = dict(warehouse.query("SELECT check_name, status FROM quality_results").itertuples(index=False))
    assert statuses["row_count"] == "fail" and statuses["weight_range"] == "fail", "every result is kept, row checks too"
    assert caught.value.result.batch_id == batch.batch_id
    again = ingest(warehouse, path, raise_on_reject=False)
    assert again.status == "rejected", "a rejected file is not a duplicate: it may be sent again"


def test_a_batch_level_warning_is_recorded_and_the_batch_loads(warehouse, tmp_path):
    path = tmp_path / "gaps.csv"
    path.write_text(csv_rows(10, weight=lambda i: "" if i < 3 else 150))
    result = ingest(warehouse, path)
    assert (result.status, result.accepted_rows) == ("accepted", 10)
    assert result.reason == "passed with warnings: weight_missing"
    missing = next(r for r in result.results if r.name == "weight_missing")
    assert (missing.status, missing.failed_rows, missing.message) == (
        "warn", 3, "30.0% of weight_g values are missing (3 rows of 10; limit 20.0%).",
    )


def test_the_same_file_twice_loads_once(warehouse, tmp_path):
    path = tmp_path / "day1.csv"
    path.write_text(csv_rows(20))
    first = ingest(warehouse, path)
    copy = tmp_path / "day1-resent.csv"
    copy.write_bytes(path.read_bytes())
    second = ingest(warehouse, copy, now=NOW + timedelta(hours=1))
    assert (second.status, second.duplicate_of, second.accepted_rows) == ("duplicate", first.batch_id, 0)
    assert second.message.startswith(f"day1-resent.csv was not loaded again: the same content was already loaded as batch {first.batch_id}")
    assert stored(warehouse) == 20
    assert list_batches(warehouse, "apples").status.tolist() == ["duplicate", "accepted"]
    assert list_datasets(warehouse).iloc[0].problem_batches == 0, "a re-sent file is not a problem delivery"


def test_ids_already_stored_are_quarantined_on_a_later_delivery(warehouse, tmp_path):
    (tmp_path / "day1.csv").write_text(csv_rows(20))
    ingest(warehouse, tmp_path / "day1.csv")
    (tmp_path / "day2.csv").write_text(csv_rows(10, start=15))  # a15..a19 were delivered yesterday
    result = ingest(warehouse, tmp_path / "day2.csv", now=NOW + timedelta(days=1))
    assert (result.status, result.quarantined_rows) == ("partly_quarantined", 5)
    assert warehouse.query_one("SELECT count(*), count(DISTINCT apple_id) FROM ds_apples") == (25, 25)


def test_checks_come_from_the_home_folder(warehouse, tmp_path):
    home = tmp_path / "home"
    strict = DatasetChecks(dataset="apples", checks=(RangeCheck(name="light", column="weight_g", max=100),))
    save_checks(home, strict, identity=ADMIN, dataset=get_dataset(warehouse, "apples"))
    (tmp_path / "day1.csv").write_text(csv_rows(10))
    result = ingest_file(warehouse, "apples", tmp_path / "day1.csv", identity=ADMIN, home=home, now=NOW)
    assert [r.name for r in result.results] == ["file_readable", "all_columns_present", "light"]
    assert result.quarantined_rows == 10 and result.status == "partly_quarantined"


def test_checks_on_unknown_columns_and_viewers_are_refused_before_reading(warehouse, tmp_path):
    (tmp_path / "day1.csv").write_text(csv_rows(10))
    bad = DatasetChecks(dataset="apples", checks=(RangeCheck(name="size", column="diameter_mm", max=1),))
    with pytest.raises(ChecksConfigError, match="'size' of dataset 'apples' uses column 'diameter_mm'"):
        ingest(warehouse, tmp_path / "day1.csv", checks=bad)
    with pytest.raises(PermissionDeniedError, match="ingest data needs the reviewer role"):
        ingest_file(warehouse, "apples", tmp_path / "day1.csv", identity=VIEWER)
    assert list_batches(warehouse, "apples").empty


# --- Bad input: a clear message, no rows written, the rejection recorded ----------------------------


def _assert_rejected(warehouse, reason: str) -> None:
    """Nothing stored; the one batch is recorded as rejected, with ``reason`` (a regex) and a failed result."""
    assert stored(warehouse) == 0
    batch = only_batch(warehouse)
    assert batch.status == "rejected" and re.search(reason, batch.reason), batch.reason
    failed = warehouse.query_one("SELECT list(check_name) FROM quality_results WHERE batch_id = ? AND status = 'fail'", [batch.batch_id])[0]
    assert failed in (["file_readable"], ["required_columns"], ["all_columns_present"])


def test_missing_columns_reject_the_batch_naming_them(warehouse, tmp_path):
    path = tmp_path / "no_variety.csv"
    path.write_text("apple_id,graded_at,weight_g,crate\n" + "".join(f"a{i},2026-06-02T06:00:00Z,150,1\n" for i in range(8)))
    with pytest.raises(BatchRejectedError, match="The file lacks 1 required column: variety"):
        ingest(warehouse, path)
    _assert_rejected(warehouse, "variety")


def test_without_declared_checks_every_column_is_required(warehouse, tmp_path):
    path = tmp_path / "no_crate.csv"
    path.write_text("apple_id,graded_at,weight_g,variety\na1,2026-06-02T06:00:00Z,150,gala\n")
    with pytest.raises(BatchRejectedError, match="lacks 1 required column: crate"):
        ingest_file(warehouse, "apples", path, identity=ADMIN)
    _assert_rejected(warehouse, "crate")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (csv_rows(6).replace(",152,", ",heavy,"), r"column weight_g must hold DOUBLE values, but 1 of 6 rows hold values that cannot be read as DOUBLE \(for example 'heavy'\)"),
        (csv_rows(6).replace("2026-06-02T08", "yesterday-ish"), r"column graded_at must hold TIMESTAMP WITH TIME ZONE values, but 1 of 6 rows"),
        (csv_rows(6).replace(",0\n", ",0.5\n"), r"column crate must hold BIGINT values, but \d+ of 6 rows .*'0.5'"),
    ],
    ids=["text-in-number", "bad-time", "fraction-in-integer"],
)
def test_wrong_types_reject_the_batch_naming_column_type_and_example(warehouse, tmp_path, content, message):
    path = tmp_path / "typed.csv"
    path.write_text(content)
    with pytest.raises(BatchRejectedError, match=message):
        ingest(warehouse, path)
    _assert_rejected(warehouse, message)


def test_wrong_types_in_parquet_are_rejected_too(warehouse, tmp_path):
    path = tmp_path / "typed.parquet"
    frame = pd.read_csv(pd.io.common.StringIO(csv_rows(6)), dtype=str)
    frame.loc[2, "weight_g"] = "n/a"
    frame.to_parquet(path)
    with pytest.raises(BatchRejectedError, match=r"weight_g must hold DOUBLE values, but 1 of 6 rows .*'n/a'"):
        ingest(warehouse, path)
    _assert_rejected(warehouse, "weight_g")


def test_unknown_dataset_lists_the_known_ones(warehouse, tmp_path):
    (tmp_path / "x.csv").write_text(csv_rows(6))
    with pytest.raises(NotFoundError, match="No dataset named 'pears'. Known datasets: apples."):
        ingest_file(warehouse, "pears", tmp_path / "x.csv", identity=ADMIN)
    with pytest.raises(MlopsError, match="does not exist"):
        ingest(warehouse, tmp_path / "missing.csv")
    with pytest.raises(MlopsError, match=r"Cannot tell the format of x.json"):
        (tmp_path / "x.json").write_text("{}")
        ingest(warehouse, tmp_path / "x.json")
    assert list_batches(warehouse, "apples").empty


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", b"", r"the file is empty \(0 bytes\)"),
        ("header.csv", (HEADER + "\n").encode(), r"it has column names but no data rows"),
        ("blank.csv", b"\n\n", r"it has no header line"),
        ("ragged.csv", csv_rows(6).replace("gala,0\n", "gala,0,extra\n", 1).encode(), r"line 2 has 6 values where the header has 5"),
        ("quote.csv", csv_rows(6).replace(",gala,", ',"gala,', 1).encode(), r"line 2 opens a quoted value that is never closed"),
        ("latin1.csv", (HEADER + "\na1,2026-06-02T06:00:00Z,150,\xe9toile,1\n").encode("latin-1"), r"it is not UTF-8 text"),
        ("fake.parquet", b"apple_id\na1\n", r"it is not a Parquet file"),
        ("broken.parquet", b"PAR1" + b"\x00" * 64, r"it is not a readable Parquet file"),
        ("twice.csv", b"apple_id,apple_id\n1,2\n", r"the header repeats column names: apple_id"),
    ],
)
def test_unreadable_files_are_rejected_with_a_clear_message(warehouse, tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(BatchRejectedError, match=message):
        ingest(warehouse, path)
    _assert_rejected(warehouse, message)


def test_an_empty_parquet_file_is_rejected(warehouse, tmp_path):
    path = tmp_path / "none.parquet"
    pd.read_csv(pd.io.common.StringIO(HEADER + "\n")).to_parquet(path)
    with pytest.raises(BatchRejectedError, match="no data rows"):
        ingest(warehouse, path)
    _assert_rejected(warehouse, "no data rows")


def test_a_2_gb_file_is_refused_before_reading(warehouse, tmp_path):
    path = tmp_path / "huge.csv"
    with path.open("wb") as handle:
        handle.truncate(2 * 1024**3)  # sparse: 2 GiB long, no disk used
    with pytest.raises(BatchRejectedError, match=r"the file is 2.0 GiB, over the 1.0 GiB limit for one delivery. Split it"):
        ingest(warehouse, path)
    _assert_rejected(warehouse, r"^the file is 2.0 GiB")
    assert only_batch(warehouse).content_sha256 is None, "a refused file is not even hashed"
    small = tmp_path / "small.csv"
    small.write_text(csv_rows(6))
    with pytest.raises(BatchRejectedError, match=r"over the 100 bytes limit"):
        ingest(warehouse, small, max_file_bytes=100)


# --- File formats ------------------------------------------------------------------------------


def test_parquet_gzip_csv_and_csv_quirks_load_alike(warehouse, tmp_path):
    frame = pd.read_csv(pd.io.common.StringIO(csv_rows(10)))
    frame["graded_at"] = pd.to_datetime(frame["graded_at"])
    frame["crate"] = frame["crate"].astype("int32")  # widened to BIGINT on the way in
    frame.to_parquet(tmp_path / "day1.parquet")
    assert ingest(warehouse, tmp_path / "day1.parquet").accepted_rows == 10

    with gzip.open(tmp_path / "day2.csv.gz", "wt") as handle:
        handle.write(csv_rows(10, start=10))
    assert ingest(warehouse, tmp_path / "day2.csv.gz").accepted_rows == 10

    # Header in other case and order, an extra column, a BOM, CRLF, quoted commas in text.
    quirky = "\ufeffVariety,APPLE_ID,graded_at,weight_g,crate,comment\r\n"
    quirky += "".join(f'gala,q{i},2026-06-02T07:00:00Z,{150 + i},3,"bruised, slightly"\r\n' for i in range(6))
    (tmp_path / "day3.csv").write_text(quirky, encoding="utf-8")
    result = ingest(warehouse, tmp_path / "day3.csv")
    assert result.accepted_rows == 6
    assert warehouse.query_one("SELECT count(*) FROM ds_apples WHERE apple_id LIKE 'q%' AND variety = 'gala'")[0] == 6
    types = dict(warehouse.query("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'ds_apples'").itertuples(index=False))
    assert types["crate"] == "BIGINT" and types["weight_g"] == "DOUBLE" and types["_warnings"] == "VARCHAR[]"


def test_a_table_made_from_a_dataframe_like_the_demo_takes_ingestion(tmp_path):
    """The demo writes ds_<name> straight from pandas, without _warnings: ingestion adds it."""
    warehouse = Warehouse(tmp_path / "w.duckdb")
    frame = pd.read_csv(pd.io.common.StringIO(csv_rows(10)))
    frame["graded_at"] = pd.to_datetime(frame["graded_at"])
    dataset = Dataset("apples", "", "", "", tuple(columns_from_frame(frame, {"apple_id": "id"})), None, "apple_id", "graded_at")
    with warehouse.transaction() as con:
        register_dataset(warehouse, dataset, con=con)
        con.register("frame", frame.assign(**{BATCH_COLUMN: "demo-1"}))
        con.execute("CREATE TABLE ds_apples AS SELECT * FROM frame")
    (tmp_path / "day2.csv").write_text(csv_rows(10, start=10, variety=lambda i: "pink" if i == 12 else "gala"))
    result = ingest(warehouse, tmp_path / "day2.csv")
    assert (result.status, result.warned_rows) == ("accepted", 1)
    assert warehouse.query_one("SELECT count(*), count(_warnings) FROM ds_apples") == (20, 1)


# --- Recheck and the page's reads -----------------------------------------------------------------


def _two_days(warehouse, tmp_path):
    (tmp_path / "day1.csv").write_text(csv_rows(200, variety=lambda i: ("gala", "fuji", "pink")[i % 3]))
    first = ingest(warehouse, tmp_path / "day1.csv")
    (tmp_path / "day2.csv").write_text(csv_rows(100, start=1000, weight=lambda i: 140 + i % 50 if i != 1005 else 900))
    second = ingest(warehouse, tmp_path / "day2.csv", now=NOW + timedelta(days=1))
    return first, second


def test_recheck_runs_the_checks_on_stored_rows(warehouse, tmp_path):
    _two_days(warehouse, tmp_path)
    tighter = DatasetChecks(dataset="apples", checks=(
        *CHECKS.checks[2:],
        RangeCheck(name="weight_light", column="weight_g", max=200, severity="warn"),
        RowCountCheck(name="row_count"),
    ))
    recheck = recheck_dataset(warehouse, "apples", identity=ADMIN, checks=tighter, now=NOW + timedelta(days=2))
    assert recheck.batch_id.startswith("recheck-") and recheck.rows == 299
    by_name = {r.name: r for r in recheck.results}
    assert by_name["weight_light"].status == "warn" and by_name["weight_light"].failed_rows == 98
    assert by_name["variety_known"].failed_rows == 66 and by_name["row_count"].status == "skipped"
    assert recheck.message == "Checked 299 stored rows of apples; warning: variety_known, weight_light."
    stored_results = warehouse.query_one("SELECT count(*) FROM quality_results WHERE batch_id = ?", [recheck.batch_id])[0]
    assert stored_results == len(recheck.results)
    assert list_batches(warehouse, "apples").batch_id.str.startswith("recheck").sum() == 0, "a recheck is not a delivery"

    rows = failing_rows(warehouse, "apples", recheck.batch_id, "weight_light", limit=5, checks=tighter)
    assert len(rows) == 5 and (rows.weight_g > 200).all()
    with pytest.raises(MlopsError, match="Pass the dataset's checks"):
        failing_rows(warehouse, "apples", recheck.batch_id, "weight_light")
    with pytest.raises(PermissionDeniedError):
        recheck_dataset(warehouse, "apples", identity=VIEWER, checks=tighter)


def test_recheck_needs_stored_rows(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    register_dataset(warehouse, Dataset("apples", "", "", "", ()))
    with pytest.raises(MlopsError, match="has no stored rows to check yet. Ingest a file first"):
        recheck_dataset(warehouse, "apples", identity=ADMIN)


def test_scorecard_history_batches_and_profile(warehouse, tmp_path):
    first, second = _two_days(warehouse, tmp_path)
    card = scorecard(warehouse, "apples")
    assert card.status.iloc[0] == "fail" and card.check_name.iloc[0] == "weight_range", "worst first"
    weight = card.set_index("check_name").loc["weight_range"]
    assert (weight.batch_id, weight.failed_rows, weight.total_rows) == (second.batch_id, 1, 100)
    assert weight.message == "1 row of 100 (1.0%) breaks the rule: Weight must be between 80 and 400 g."
    assert weight.description == "Weight must be between 80 and 400 g"
    status, sentence = quality_verdict(card)
    assert status is Status.ACT
    assert sentence == "1 row of 100 (1.0%) breaks the rule: Weight must be between 80 and 400 g."
    assert quality_verdict(card.assign(status=card.status.replace("fail", "warn")))[0] is Status.WATCH
    assert quality_verdict(card[card.status == "pass"]) == (Status.HEALTHY, f"All {(card.status == 'pass').sum()} checks pass on the latest data.")
    assert quality_verdict(card.iloc[0:0])[0] is Status.UNKNOWN
    only = scorecard(warehouse, "apples", checks=DatasetChecks(dataset="apples", checks=CHECKS.checks[:1]))
    assert set(only.check_name) == {"required_columns", "file_readable"}

    history = check_history(warehouse, "apples", "variety_known")
    assert history.batch_id.tolist() == [first.batch_id, second.batch_id]
    assert history.status.tolist() == ["warn", "pass"] and history.share.iloc[0] == pytest.approx(66 / 200)
    assert len(check_history(warehouse, "apples")) == 2 * 7
    assert check_history(warehouse, "apples", limit=1).batch_id.unique().tolist() == [second.batch_id]

    batches = list_batches(warehouse, "apples")
    assert batches.batch_id.tolist() == [second.batch_id, first.batch_id]
    assert batches.failed_checks.tolist() == [1, 0] and batches.warned_checks.tolist() == [0, 1]

    profile = column_profile(warehouse, "apples", "weight_g")
    assert (profile.rows, profile.nulls, profile.minimum, profile.maximum) == (299, 0, 140.0, 249.0)
    assert profile.histogram["rows"].sum() == 299 and len(profile.histogram) == 20
    assert profile.quantiles[0.5] == pytest.approx(warehouse.query_one("SELECT median(weight_g) FROM ds_apples")[0])
    delivery = column_profile(warehouse, "apples", "weight_g", second.batch_id)
    assert (delivery.rows, delivery.maximum) == (100, 900.0), "a delivery's profile includes its quarantined rows"
    varieties = column_profile(warehouse, "apples", "variety")
    assert varieties.top_values.value.tolist() == ["gala", "fuji", "pink"] and varieties.top_values.rows.tolist() == [117, 116, 66]
    with pytest.raises(NotFoundError, match="no column 'colour'. Columns: apple_id, graded_at"):
        column_profile(warehouse, "apples", "colour")


def test_suggested_checks_accept_the_file_they_were_learned_from(warehouse, tmp_path):
    path = tmp_path / "day1.csv"
    path.write_text(csv_rows(60))
    suggested = suggest_checks_from_file(warehouse, "apples", path)
    kinds = {check.name: check.kind for check in suggested.checks}
    assert kinds["apple_id_unique"] == "unique" and kinds["weight_g_range"] == "range" and kinds["variety_values"] == "allowed_values"
    assert kinds["freshness"] == "freshness" and kinds["weight_g_drift"] == "distribution"
    suggested.validate_against(get_dataset(warehouse, "apples"))
    result = ingest(warehouse, path, checks=suggested, now=datetime(2026, 6, 3, tzinfo=UTC))
    assert result.status == "accepted" and result.reason is None
    assert suggest_checks(warehouse, "apples") == suggested
    with pytest.raises(MlopsError, match="no stored rows to suggest checks from"):
        register_dataset(warehouse, Dataset("empty", "", "", "", ()))
        suggest_checks(warehouse, "empty")
