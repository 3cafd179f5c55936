"""Data-quality checks: declarations and their files, the DuckDB engine, and agreement with Evidently.

Every test runs on a real DuckDB warehouse in tmp_path. Ingestion and the page reads are
covered in test_ingest.py.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from mlops_app.auth import Identity
from mlops_app.datasets import Column, Dataset, ensure_dataset_tables, register_dataset
from mlops_app.errors import InvalidNameError, NotFoundError, PermissionDeniedError
from mlops_app.quality import (
    AllowedValuesCheck,
    CheckTarget,
    ChecksConfigError,
    DatasetChecks,
    DistributionCheck,
    FreshnessCheck,
    NotNullCheck,
    NullShareCheck,
    RangeCheck,
    ReferenceWindow,
    RequiredColumnsCheck,
    RowCountCheck,
    SchemaCheck,
    UniqueCheck,
    checks_from_yaml,
    checks_path,
    checks_to_yaml,
    evaluate_checks,
    load_checks,
    row_predicate,
    save_checks,
)
from mlops_app.warehouse import Warehouse

ADMIN = Identity("admin@orchard.example", "Admin", "admin", "local")
REVIEWER = Identity("reviewer@orchard.example", "Rev", "reviewer", "local")
COLUMNS = {"apple_id": "VARCHAR", "graded_at": "TIMESTAMP WITH TIME ZONE", "weight_g": "DOUBLE", "variety": "VARCHAR"}
APPLES = Dataset(
    "apples",
    "Graded apples",
    "qa@orchard.example",
    "tests",
    tuple(Column(name, kind, {"apple_id": "id", "graded_at": "timestamp"}.get(name, "feature")) for name, kind in COLUMNS.items()),
    id_column="apple_id",
    time_column="graded_at",
)
START = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
# Ten delivered rows. Failures built in: weights 500 and 70 are out of 80-400, one weight is
# missing and one is NaN, a8 appears twice, a0 is already stored, "pink" is an unknown
# variety (and one variety is missing, which allowed_values does not judge).
WEIGHTS = [100.0, 150.0, 200.0, 500.0, None, 120.0, 130.0, float("nan"), 150.0, 70.0]
VARIETIES = ["gala", "fuji", "gala", "fuji", "pink", "gala", None, "gala", "fuji", "gala"]
IDS = [f"a{i}" for i in range(9)] + ["a8"]
BATCH_ROWS = [(IDS[i], START + timedelta(hours=i), WEIGHTS[i], VARIETIES[i]) for i in range(10)]
NEWEST = START + timedelta(hours=9)


@pytest.fixture
def warehouse(tmp_path) -> Warehouse:
    warehouse = Warehouse(tmp_path / "warehouse.duckdb")
    warehouse.migrate()
    with warehouse.transaction() as con:
        register_dataset(warehouse, APPLES, con=con)
        ensure_dataset_tables(con, APPLES)
        con.execute("CREATE TABLE batch_rows (apple_id VARCHAR, graded_at TIMESTAMPTZ, weight_g DOUBLE, variety VARCHAR)")
        con.executemany("INSERT INTO batch_rows VALUES (?, ?, ?, ?)", BATCH_ROWS)
        con.execute(
            "INSERT INTO ds_apples (apple_id, graded_at, weight_g, variety, _batch_id) VALUES ('a0', ?, 180, 'gala', 'old')",
            [START - timedelta(days=1)],
        )
    return warehouse


def run(warehouse: Warehouse, check, *, arrived=None, text_source=False, history="ds_apples", now=NEWEST + timedelta(hours=2)):
    with warehouse.read() as con:
        target = CheckTarget(APPLES, "batch_rows", COLUMNS, arrived, text_source, history_table=history)
        return evaluate_checks(con, target, [check], now=now)[0]


# --- Each check kind, passing and failing ------------------------------------------------------

CASES = [
    (NotNullCheck(name="c", column="weight_g"), "fail", 2),  # None and NaN
    (NotNullCheck(name="c", column="weight_g", severity="warn"), "warn", 2),
    (NotNullCheck(name="c", column="apple_id"), "pass", 0),
    (RangeCheck(name="c", column="weight_g", min=80, max=400), "fail", 2),
    (RangeCheck(name="c", column="weight_g", min=60), "pass", 0),
    (RangeCheck(name="c", column="graded_at", max=datetime(2026, 6, 1, 12, tzinfo=UTC)), "fail", 5),
    (AllowedValuesCheck(name="c", column="variety", values=("gala", "fuji")), "fail", 1),
    (AllowedValuesCheck(name="c", column="variety", values=("gala", "fuji", "pink")), "pass", 0),
    (UniqueCheck(name="c", columns=("apple_id",)), "fail", 3),  # a8 twice + a0 already stored
    (UniqueCheck(name="c", columns=("apple_id", "variety")), "fail", 1),  # only a0 + gala is stored; the a8s differ in variety
    (UniqueCheck(name="c", columns=("graded_at",)), "pass", 0),
    (NullShareCheck(name="c", column="weight_g", max_share=0.1), "fail", 2),
    (NullShareCheck(name="c", column="weight_g", max_share=0.25), "pass", 2),
    (RowCountCheck(name="c", min=5, max=20), "pass", 0),
    (RowCountCheck(name="c", min=11), "fail", 0),
    (RowCountCheck(name="c", min=None, max=9, severity="warn"), "warn", 0),
    (FreshnessCheck(name="c", max_age_hours=24), "pass", 0),
    (FreshnessCheck(name="c", column="graded_at", max_age_hours=1), "fail", 0),
    (RequiredColumnsCheck(name="c", columns=("apple_id", "variety")), "pass", 0),
    (SchemaCheck(name="c", columns=COLUMNS), "pass", 0),
]


@pytest.mark.parametrize(("check", "status", "failed"), CASES, ids=[f"{c.kind}-{s}-{i}" for i, (c, s, _) in enumerate(CASES)])
def test_each_check_kind_passes_and_fails(warehouse, check, status, failed):
    result = run(warehouse, check)
    assert (result.status, result.failed_rows, result.total_rows) == (status, failed, 10)
    assert result.message and result.description


def test_row_predicate_selects_exactly_the_failing_rows(warehouse):
    target = CheckTarget(APPLES, "batch_rows", COLUMNS, history_table="ds_apples")
    expectations = {
        RangeCheck(name="r", column="weight_g", min=80, max=400): {"a3", "a8"},  # 500 g, and the second a8 (70 g)
        AllowedValuesCheck(name="v", column="variety", values=("gala", "fuji")): {"a4"},
        UniqueCheck(name="u", columns=("apple_id",)): {"a0", "a8"},
        NotNullCheck(name="n", column="weight_g"): {"a4", "a7"},
    }
    with warehouse.read() as con:
        for check, ids in expectations.items():
            predicate = row_predicate(check, target)
            rows = con.execute(f"SELECT t.apple_id, t.weight_g FROM batch_rows AS t WHERE {predicate.sql}", list(predicate.params)).fetchall()
            assert {row[0] for row in rows} == ids, check.name
        with pytest.raises(ValueError, match="batch-level"):
            row_predicate(RowCountCheck(name="x"), target)


def test_unique_without_stored_rows_only_counts_duplicates_in_the_batch(warehouse):
    assert run(warehouse, UniqueCheck(name="u", columns=("apple_id",)), history=None).failed_rows == 2


def test_one_pass_flags_rows_with_error_and_warn_check_names(warehouse):
    checks = [
        RangeCheck(name="weight_range", column="weight_g", min=80, max=400),
        AllowedValuesCheck(name="variety_known", column="variety", values=("gala", "fuji"), severity="warn"),
        NotNullCheck(name="weight_present", column="weight_g", severity="warn"),
    ]
    with warehouse.read() as con:
        target = CheckTarget(APPLES, "batch_rows", COLUMNS, history_table="ds_apples")
        results = evaluate_checks(con, target, checks, now=NEWEST)
        flags = con.execute(
            "SELECT b.apple_id, f._errors, f._warnings FROM _mlops_flags f JOIN batch_rows b ON b.rowid = f._row ORDER BY b.rowid"
        ).fetchall()
    assert [r.status for r in results] == ["fail", "warn", "warn"]
    assert flags == [
        ("a3", ["weight_range"], []),
        ("a4", [], ["variety_known", "weight_present"]),
        ("a7", [], ["weight_present"]),
        ("a8", ["weight_range"], []),
    ]


def test_required_columns_and_schema_judge_the_file_as_it_arrived(warehouse):
    arrived = {"apple_id": "VARCHAR", "graded_at": "TIMESTAMP WITH TIME ZONE", "weight_g": "VARCHAR", "crate": "BIGINT"}
    required = run(warehouse, RequiredColumnsCheck(name="req", columns=("apple_id", "variety")), arrived=arrived)
    assert required.status == "fail" and required.detail["missing"] == ["variety"]
    assert "lacks 1 required column: variety" in required.message

    schema = SchemaCheck(name="schema", columns=COLUMNS, allow_extra_columns=False)
    result = run(warehouse, schema, arrived=arrived)
    assert result.status == "fail"
    assert result.message == (
        "Columns do not match the expected schema: missing variety; "
        "wrong type weight_g (VARCHAR, expected DOUBLE); unexpected crate."
    )
    # In a CSV every value is text; whether it reads as DOUBLE is proven while staging.
    csv_result = run(warehouse, SchemaCheck(name="schema", columns={"weight_g": "DOUBLE"}), arrived=arrived, text_source=True)
    assert csv_result.status == "pass"
    widened = run(warehouse, SchemaCheck(name="s", columns={"crate": "DOUBLE"}), arrived=arrived)
    assert widened.status == "pass", "an integer column delivered for a DOUBLE one is a safe widening"


def test_freshness_uses_the_given_now_and_reports_age(warehouse):
    result = run(warehouse, FreshnessCheck(name="fresh", max_age_hours=36), now=NEWEST + timedelta(hours=40))
    assert result.status == "fail"
    assert result.detail["value"] == pytest.approx(40.0)
    assert result.message == "The newest graded_at is 40.0 hours old (limit 36 hours)."


# --- Distribution ---------------------------------------------------------------------------


def _history_and_batch(warehouse, *, shift: float, categories=("gala", "fuji", "honeycrisp"), current_p=(0.5, 0.3, 0.2)):
    rng = np.random.default_rng(3)
    reference = [
        (f"h{i}", START - timedelta(days=10) + timedelta(hours=i), float(rng.normal(200, 20)), str(rng.choice(categories, p=(0.5, 0.3, 0.2))))
        for i in range(400)
    ]
    current = [
        (f"c{i}", START + timedelta(minutes=i), float(rng.normal(200 + shift, 20)), str(rng.choice(categories, p=current_p)))
        for i in range(300)
    ]
    with warehouse.transaction() as con:
        con.executemany("INSERT INTO ds_apples (apple_id, graded_at, weight_g, variety, _batch_id) VALUES (?, ?, ?, ?, 'ref')", reference)
        con.execute("CREATE OR REPLACE TABLE batch_rows AS SELECT * FROM batch_rows LIMIT 0")
        con.executemany("INSERT INTO batch_rows VALUES (?, ?, ?, ?)", current)
    return pd.DataFrame(reference, columns=list(COLUMNS)), pd.DataFrame(current, columns=list(COLUMNS))


def _drift(warehouse, **fields):
    return run(warehouse, DistributionCheck(name="drift", reference=ReferenceWindow(last_days=30), **fields), now=START + timedelta(days=1))


def test_distribution_passes_on_the_same_distribution_and_fails_on_a_shift(warehouse):
    _history_and_batch(warehouse, shift=0.0)
    same = _drift(warehouse, column="weight_g")
    assert same.status == "pass" and same.detail["statistic"] == "wasserstein" and same.detail["value"] < 0.1
    # The reference: the 400 stored rows plus the one stored by the fixture, all inside 30 days.
    assert same.detail["reference_rows"] == 401 and same.detail["current_rows"] == 300


def test_distribution_detects_a_shift_and_says_so(warehouse):
    _history_and_batch(warehouse, shift=15.0)
    shifted = _drift(warehouse, column="weight_g", severity="warn")
    assert shifted.status == "warn" and shifted.detail["value"] > 0.5
    assert shifted.message.startswith("weight_g moved away from the last 30 days of stored data (401 values)")
    psi = _drift(warehouse, column="weight_g", statistic="psi", threshold=0.2)
    assert psi.status == "fail" and psi.detail["value"] > 0.2


def test_categorical_distribution_uses_psi_and_total_variation(warehouse):
    _history_and_batch(warehouse, shift=0.0, current_p=(0.2, 0.3, 0.5))
    psi = _drift(warehouse, column="variety")
    assert psi.detail["statistic"] == "psi" and psi.status == "fail"
    tvd = _drift(warehouse, column="variety", statistic="total_variation", threshold=0.5)
    assert tvd.status == "pass" and 0.2 < tvd.detail["value"] < 0.5


def test_distribution_is_skipped_without_reference_data(warehouse):
    _history_and_batch(warehouse, shift=0.0)
    empty_window = ReferenceWindow(start=date(2020, 1, 1), end=date(2020, 12, 31))
    result = run(warehouse, DistributionCheck(name="d", column="weight_g", reference=empty_window))
    assert result.status == "skipped" and "0 reference" in result.message
    assert run(warehouse, DistributionCheck(name="d", column="weight_g", reference=empty_window), history=None).status == "skipped"


def test_results_agree_with_evidently(warehouse):
    """The same data through Evidently 0.7 and through our SQL gives the same numbers."""
    reference, current = _history_and_batch(warehouse, shift=6.0, current_p=(0.4, 0.4, 0.2))
    reference = pd.concat([reference, pd.DataFrame([("a0", START - timedelta(days=1), 180.0, "gala")], columns=list(COLUMNS))])
    with warehouse.transaction() as con:  # add missing values to the batch, in both copies
        con.execute("UPDATE batch_rows SET weight_g = NULL WHERE apple_id IN ('c1', 'c2', 'c3')")
    current.loc[current["apple_id"].isin(["c1", "c2", "c3"]), "weight_g"] = np.nan

    from evidently import DataDefinition, Dataset, Report  # imported here: ~8 s
    from evidently.metrics import MissingValueCount, OutListValueCount, OutRangeValueCount, RowCount, ValueDrift

    definition = DataDefinition(numerical_columns=["weight_g"], categorical_columns=["variety"])
    report = Report([
        MissingValueCount(column="weight_g"),
        OutRangeValueCount(column="weight_g", left=180, right=230),
        OutListValueCount(column="variety", values=["gala", "fuji"]),
        RowCount(),
        ValueDrift(column="weight_g", method="wasserstein"),
        ValueDrift(column="variety", method="psi"),
    ])
    snapshot = report.run(Dataset.from_pandas(current, data_definition=definition), Dataset.from_pandas(reference, data_definition=definition))
    evidently = [metric["value"] for metric in snapshot.dict()["metrics"]]

    ours = {
        "missing": run(warehouse, NullShareCheck(name="n", column="weight_g", max_share=0.5)),
        "range": run(warehouse, RangeCheck(name="r", column="weight_g", min=180, max=230)),
        "values": run(warehouse, AllowedValuesCheck(name="v", column="variety", values=("gala", "fuji"))),
        "rows": run(warehouse, RowCountCheck(name="rows")),
        "wasserstein": _drift(warehouse, column="weight_g"),
        "psi": _drift(warehouse, column="variety"),
    }
    assert ours["missing"].failed_rows == evidently[0]["count"] == 3
    assert ours["missing"].detail["value"] == pytest.approx(evidently[0]["share"])
    assert ours["range"].failed_rows == evidently[1]["count"] > 0
    assert ours["values"].failed_rows == evidently[2]["count"] > 0
    assert ours["rows"].detail["value"] == evidently[3] == 300
    assert ours["wasserstein"].detail["value"] == pytest.approx(evidently[4], rel=1e-9)
    assert ours["psi"].detail["value"] == pytest.approx(evidently[5], rel=1e-9)
    assert math.isfinite(evidently[4]) and evidently[4] > 0.1


# --- Declarations and their files ---------------------------------------------------------


def _example_checks() -> DatasetChecks:
    return DatasetChecks(
        dataset="apples",
        checks=(
            RangeCheck(name="weight_range", column="weight_g", min=80, max=400, description="Weight must be between 80 and 400 g"),
            AllowedValuesCheck(name="variety_known", column="variety", values=("gala", "yes", "no"), severity="warn"),
            UniqueCheck(name="apple_id_unique", columns=("apple_id",)),
            DistributionCheck(name="weight_drift", column="weight_g", reference=ReferenceWindow(start=date(2026, 6, 1), end=date(2026, 6, 30))),
        ),
    )


def test_checks_round_trip_through_an_atomic_yaml_file(tmp_path):
    home = tmp_path / "home"
    path = save_checks(home, _example_checks(), identity=ADMIN, dataset=APPLES)
    assert path == home / "checks" / "apples.yaml"
    assert [p.name for p in path.parent.iterdir()] == ["apples.yaml"], "no temp file left behind"
    text = path.read_text()
    assert "description: Weight must be between 80 and 400 g" in text
    assert "- 'yes'" in text, "YAML booleans look-alikes are quoted so they stay text"
    assert load_checks(home, "apples") == _example_checks()
    assert load_checks(home, "pears") == DatasetChecks(dataset="pears"), "no file: no declared checks"


def test_unique_accepts_the_column_shorthand():
    checks = checks_from_yaml("checks:\n  - {name: u, kind: unique, column: apple_id}\n", dataset="apples")
    assert checks.get("u").columns == ("apple_id",)
    with pytest.raises(NotFoundError, match="no check named 'x'. Its checks: u"):
        checks.get("x")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("checks:\n  - {name: weight_range, kind: range, column: weight_g, min: heavy}\n",
         r"check 'weight_range' \(number 1\), field 'min': Input should be a valid number"),
        ("checks:\n  - {name: w, kind: range, column: weight_g}\n", r"check 'w' \(number 1\).*give min, max or both"),
        ("checks:\n  - {name: ok, kind: not_null, column: a}\n  - {name: bad, kind: sparkle}\n",
         r"check 'bad' \(number 2\).*does not match any of the expected tags: 'schema'"),
        ("checks:\n  - {name: n, kind: not_null, column: a, colour: red}\n", r"field 'colour': Extra inputs are not permitted"),
        ("checks:\n  - {name: n, kind: not_null, column: Weight G}\n", r"field 'column'.*not a column name"),
        ("checks:\n  - {name: n, kind: not_null, column: a}\n  - {name: n, kind: not_null, column: b}\n", r"two checks are named 'n'"),
        ("checks:\n  - {name: s, kind: schema, columns: {a: DOUBLE); DROP TABLE x}}\n", r"field 'columns'.*is not supported"),
        ("dataset: pears\nchecks: []\n", r"declares dataset 'pears' but belongs to 'apples'"),
        ("checks: [\n", r"is not valid YAML"),
    ],
)
def test_invalid_checks_files_name_the_file_the_check_and_the_field(tmp_path, text, message):
    path = checks_path(tmp_path, "apples")
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.raises(ChecksConfigError, match=message) as caught:
        load_checks(tmp_path, "apples")
    assert str(path) in str(caught.value)


def test_checks_must_match_the_dataset_columns():
    checks = DatasetChecks(dataset="apples", checks=(RangeCheck(name="size", column="diameter_mm", max=120),))
    with pytest.raises(ChecksConfigError, match="Check 'size' of dataset 'apples' uses column 'diameter_mm'.*Columns: apple_id, graded_at"):
        checks.validate_against(APPLES)
    wrong = DatasetChecks(dataset="apples", checks=(RangeCheck(name="v", column="variety", max=3),))
    with pytest.raises(ChecksConfigError, match="a range needs a numeric, date or time column; 'variety' is VARCHAR"):
        wrong.validate_against(APPLES)
    drift = DatasetChecks(dataset="apples", checks=(DistributionCheck(name="d", column="variety", statistic="wasserstein", reference=ReferenceWindow(last_days=7)),))
    with pytest.raises(ChecksConfigError, match="wasserstein statistic needs a numeric column"):
        drift.validate_against(APPLES)
    untimed = Dataset("apples", "", "", "", APPLES.columns)
    with pytest.raises(ChecksConfigError, match="needs a time column"):
        DatasetChecks(dataset="apples", checks=(FreshnessCheck(name="f", max_age_hours=1),)).validate_against(untimed)


def test_only_admins_save_checks_and_names_cannot_escape_the_folder(tmp_path):
    with pytest.raises(PermissionDeniedError, match="edit checks needs the admin role"):
        save_checks(tmp_path, _example_checks(), identity=REVIEWER)
    assert not (tmp_path / "checks").exists()
    for hostile in ("../x", "%2e%2e", "a/b", "a\\b", "/etc/passwd", "", "x" * 61, "Apples", "аpples"):
        with pytest.raises(InvalidNameError):
            checks_path(tmp_path, hostile)


def test_yaml_text_of_the_checks_reads_back_the_same():
    checks = _example_checks()
    text = checks_to_yaml(checks)
    assert checks_from_yaml(text, dataset="apples") == checks
    # Reading order for a person editing the file: name, kind, column, the rule, severity, description.
    assert text.index("- name: weight_range\n  kind: range\n  column: weight_g\n  min: 80\n  max: 400\n  description:") > 0
