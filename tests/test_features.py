"""The feature store: definitions, guarded SQL, point-in-time correctness, page reads, lineage.

Everything runs on real DuckDB files in tmp_path; the leakage tests build data where a
value from the future would change the answer, and compare with a naive pandas reference.
"""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from mlops_app import features as F
from mlops_app.auth import Identity
from mlops_app.config import load_settings
from mlops_app.datasets import Dataset, columns_from_frame, dataset_table, refresh_dataset_stats, register_dataset
from mlops_app.demo import DATASET, GRADER_FEATURES, SUGAR_FEATURES, generate_harvest
from mlops_app.demo_features import DEMO_FEATURES_FILE, install_demo_features
from mlops_app.errors import MlopsError, NotFoundError, PermissionDeniedError
from mlops_app.features import FeatureDefinitionError
from mlops_app.registry import Registry
from mlops_app.status import Status
from mlops_app.warehouse import Warehouse

ADMIN = Identity("data@orchard.example", "data", "admin", "local")
VIEWER = Identity("viewer@orchard.example", "viewer", "viewer", "local")
DAY0 = pd.Timestamp("2026-06-01", tz="UTC")

ENTITIES_YAML = """
entities:
  - name: apple
    key: apple_id
  - name: orchard_block
    key: orchard_block
"""


def _at(day: float, hour: float = 0, minute: float = 0) -> pd.Timestamp:
    return DAY0 + pd.Timedelta(days=day, hours=hour, minutes=minute)


def _load_dataset(
    warehouse: Warehouse, name: str, frame: pd.DataFrame, *, time_column: str = "graded_at", roles=None, freshness_hours=None
) -> None:
    dataset = Dataset(
        name=name, description="test rows", owner="tests", source="tests",
        columns=tuple(columns_from_frame(frame, {"apple_id": "id", "graded_at": "timestamp", **(roles or {})})),
        id_column="apple_id", time_column=time_column, freshness_hours=freshness_hours,
    )  # fmt: skip
    with warehouse.transaction() as connection:
        register_dataset(warehouse, dataset, con=connection)
        connection.register("incoming", frame)
        connection.execute(f"CREATE OR REPLACE TABLE {dataset_table(name)} AS SELECT * FROM incoming")
        connection.unregister("incoming")
        refresh_dataset_stats(connection, name, time_column)


def _apply(warehouse: Warehouse, features_yaml: str, *, prune: bool = False, source: str = "test.yaml") -> F.ApplyResult:
    return F.apply_features(warehouse, F.definitions_from_yaml(ENTITIES_YAML + features_yaml, source), ADMIN, prune=prune)


def _catalogue(warehouse: Warehouse) -> list[tuple]:
    rows = warehouse.query("SELECT name, CAST(definition AS VARCHAR), materialized_at FROM feature_definitions ORDER BY name")
    return [tuple(row) for row in rows.itertuples(index=False)]


@pytest.fixture
def warehouse(tmp_path) -> Warehouse:
    warehouse = Warehouse(tmp_path / "warehouse.duckdb")
    warehouse.migrate()
    return warehouse


def _build_apples(warehouse: Warehouse) -> Warehouse:
    frame = pd.DataFrame(
        {
            "apple_id": [f"a{i}" for i in range(8)],
            "graded_at": [_at(d, 12) for d in (1, 2, 3, 4, 5, 6, 2, 3)],
            "orchard_block": ["b1"] * 6 + ["b2"] * 2,
            "variety": ["gala", "gala", "fuji", "gala", "fuji", "gala", "fuji", "fuji"],
            "weight_g": [150.0, 160.0, 170.0, 180.0, 190.0, 200.0, 210.0, None],
            "blemish_area_mm2": [1.0, 1.0, 1.0, 1.0, 1.0, 100.0, 5.0, 7.0],
            "is_bad": pd.array([True, False, None, None, None, None, False, True], dtype="boolean"),
            "label_received_at": [_at(4, 10), _at(3, 10), pd.NaT, pd.NaT, pd.NaT, pd.NaT, _at(4), _at(5)],
        }
    )
    _load_dataset(warehouse, "apples", frame)
    return warehouse


@pytest.fixture
def apples(warehouse) -> Warehouse:
    """A small hand-made harvest: two blocks, labels arriving days after grading."""
    return _build_apples(warehouse)


APPLE_FEATURES = """
features:
  - name: weight_g
    entity: apple
    dataset: apples
    value_type: number
    owner: quality@orchard.example
    tags: [measurement]
    description: Weight in grams
  - name: variety
    entity: apple
    dataset: apples
    value_type: text
    owner: orchard@orchard.example
    tags: [orchard]
  - name: block_blemish_mean_7d
    entity: orchard_block
    dataset: apples
    kind: aggregate
    expression: blemish_area_mm2
    aggregation: avg
    window: 7d
    value_type: number
    owner: quality@orchard.example
    tags: [orchard, trend]
    description: Average blemish area of the block over 7 days
  - name: block_bad_share_14d
    entity: orchard_block
    dataset: apples
    kind: aggregate
    expression: is_bad
    aggregation: share
    window: 14d
    available_at: label_received_at
    value_type: number
    owner: quality@orchard.example
    tags: [orchard, labels]
"""


@pytest.fixture
def applied(apples) -> Warehouse:
    _apply(apples, APPLE_FEATURES)
    F.materialize(apples, ADMIN)
    return apples


@pytest.fixture(scope="module")
def refusing(tmp_path_factory) -> Warehouse:
    """One applied warehouse for every refusal case: a refusal must leave it unchanged."""
    warehouse = Warehouse(tmp_path_factory.mktemp("refusals") / "warehouse.duckdb")
    warehouse.migrate()
    _build_apples(warehouse)
    _apply(warehouse, APPLE_FEATURES)
    F.materialize(warehouse, ADMIN)
    return warehouse


# --- Schema and definitions -------------------------------------------------------------------


def test_migration_three_creates_the_catalogue(warehouse):
    assert warehouse.schema_version() >= 3
    assert warehouse.table_exists("feature_definitions") and warehouse.table_exists("feature_entities")
    assert 3 in {row[0] for row in warehouse.query("SELECT version FROM schema_migrations").itertuples(index=False)}


def test_yaml_defaults_and_normalisation():
    feature_set = F.definitions_from_yaml(ENTITIES_YAML + APPLE_FEATURES, "orchard.yaml")
    by_name = {feature.name: feature for feature in feature_set.features}
    assert by_name["weight_g"].expression == "weight_g"  # a raw feature defaults to its own column
    assert by_name["block_bad_share_14d"].window_seconds == 14 * 86400
    assert feature_set.source_of("feature", "variety") == "orchard.yaml"
    assert [entity.key for entity in feature_set.entities] == ["apple_id", "orchard_block"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("window: 7 fortnights", r"Feature 'f' \(bad\.yaml, entry 1\), field 'window'.*7 fortnights.*not understood"),
        ("window: 0d", r"longer than zero"),
        ("window: 400d", r"at most 366 days"),
        ("colour: red", r"field 'colour'.*Extra inputs"),
    ],
)
def test_bad_yaml_fields_name_the_feature_file_and_field(entry, message):
    text = f"""
features:
  - name: f
    entity: apple
    dataset: apples
    kind: aggregate
    expression: weight_g
    aggregation: avg
    value_type: number
    {entry if entry.startswith('window') else 'window: 7d'}
    {'' if entry.startswith('window') else entry}
"""
    with pytest.raises(FeatureDefinitionError, match=message):
        F.definitions_from_yaml(text, "bad.yaml")


def test_aggregate_needs_window_and_raw_refuses_one():
    with pytest.raises(FeatureDefinitionError, match=r"needs both `aggregation`.*and `window`"):
        F.definitions_from_yaml("features: [{name: f, entity: apple, dataset: apples, kind: aggregate, expression: x, value_type: number}]")
    with pytest.raises(FeatureDefinitionError, match=r"belong to aggregate features"):
        F.definitions_from_yaml("features: [{name: f, entity: apple, dataset: apples, window: 7d, value_type: number}]")
    with pytest.raises(FeatureDefinitionError, match=r"Feature name 'Bad-Name' is not allowed"):
        F.definitions_from_yaml("features: [{name: Bad-Name, entity: apple, dataset: apples, value_type: number}]")
    with pytest.raises(FeatureDefinitionError, match=r"reserved"):
        F.definitions_from_yaml("features: [{name: value_time, entity: apple, dataset: apples, value_type: number}]")


def test_duplicate_name_across_files_is_refused(tmp_path):
    folder = tmp_path / "features"
    folder.mkdir()
    (folder / "a.yaml").write_text(ENTITIES_YAML + APPLE_FEATURES)
    (folder / "b.yml").write_text("features: [{name: weight_g, entity: apple, dataset: apples, value_type: number}]")
    with pytest.raises(FeatureDefinitionError, match=r"Feature 'weight_g' is defined twice \(a\.yaml and b\.yml\)"):
        F.load_definitions(folder)
    assert F.load_definitions(tmp_path / "missing").features == ()


# --- Refused definitions: nothing registered -------------------------------------------------


def _entry(**fields) -> str:
    """One feature as a YAML list item (JSON is YAML), with test defaults."""
    base = {"name": "new_feature", "entity": "apple", "dataset": "apples", "value_type": "number"}
    base.update(fields)
    return "  - " + json.dumps(base) + "\n"


def _one_feature(**fields) -> str:
    return "features:\n" + _entry(**fields)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"expression": "weight_g +"}, r"Feature 'new_feature' \(test\.yaml\): the expression is not valid SQL"),
        ({"expression": "weight_kg * 2"}, r"column 'weight_kg' does not exist in the dataset \(did you mean 'weight_g'\?\)"),
        ({"dataset": "pear_harvest"}, r"unknown dataset 'pear_harvest' \(known: apples\)"),
        ({"entity": "pear"}, r"unknown entity 'pear'"),
        ({"expression": "weight_g; DROP TABLE ds_apples"}, r"contains ';'"),
        ({"expression": "(SELECT max(weight_g) FROM ds_apples)"}, r"uses FROM, SELECT"),
        ({"expression": "weight_g IN (TABLE ds_apples)"}, r"contains a subquery"),
        ({"expression": "read_csv('/etc/passwd')"}, r"read_csv\(\) reads files"),
        ({"expression": "getenv('HOME')"}, r"getenv\(\) reads files, settings"),
        ({"expression": "weight_g -- sneaky"}, r"comment"),
        ({"expression": "avg(weight_g) OVER ()"}, r"uses OVER"),
        ({"expression": "avg(weight_g)"}, r"aggregate function avg\(\) reads other rows"),
        ({"expression": "weight_g * random()"}, r"random\(\) gives a different result on every run"),
        ({"expression": "COLUMNS(*)"}, r"'\*', COLUMNS\(\)"),
        ({"expression": "variety"}, r"value_type is number, but the computed values are text"),
        ({"expression": "weight_g || 'g'", "value_type": "text", "available_at": "variety"}, r"availability column 'variety' is VARCHAR"),
        ({"entity_column": "block"}, r"entity key column 'block' does not exist"),
        ({"kind": "aggregate", "expression": "weight_g", "aggregation": "share", "window": "7d"}, r"share needs a true/false expression"),
        ({"kind": "aggregate", "expression": "variety", "aggregation": "avg", "window": "7d"}, r"avg needs a numeric expression"),
        ({"expression": "upper(weight_g)"}, r"does not compile against dataset 'apples'"),
    ],
)
def test_bad_definitions_are_refused_with_the_reason_and_nothing_is_registered(refusing, fields, message):
    before = _catalogue(refusing)
    assert len(before) == 4
    good = _entry(name="good_feature", expression="weight_g / 1000")
    with pytest.raises(FeatureDefinitionError, match=message) as refused:
        _apply(refusing, _one_feature(**fields) + good)
    assert "nothing was registered" in str(refused.value)
    assert _catalogue(refusing) == before  # the good feature of the same set was not registered either


def test_a_refused_change_keeps_the_old_definition_and_its_values(applied):
    before = _catalogue(applied)
    changed = APPLE_FEATURES.replace("window: 7d", "window: 3d") + _entry(name="broken", expression="nope")
    with pytest.raises(FeatureDefinitionError, match=r"Feature 'broken'.*column 'nope' does not exist"):
        _apply(applied, changed)
    assert _catalogue(applied) == before
    entities = pd.DataFrame({"orchard_block": ["b1"], "t": [_at(9)]})
    # Still the 7-day value: the 7 days before day 9 hold b1's apples of days 2-6.
    assert F.training_set(applied, entities, ["block_blemish_mean_7d"], time_column="t").iloc[0, -1] == pytest.approx((4 + 100) / 5)


def test_every_problem_of_a_set_is_listed(apples):
    text = _one_feature(expression="nope") + _entry(name="other", dataset="pears")
    with pytest.raises(FeatureDefinitionError) as refused:
        _apply(apples, text)
    assert len(refused.value.problems) == 2
    assert "column 'nope'" in refused.value.problems[0] and "unknown dataset 'pears'" in refused.value.problems[1]


def test_a_viewer_may_not_apply_or_materialize(apples):
    with pytest.raises(PermissionDeniedError, match=r"viewer@orchard\.example has the viewer role"):
        F.apply_features(apples, F.definitions_from_yaml(ENTITIES_YAML + APPLE_FEATURES), VIEWER)
    assert _catalogue(apples) == []
    with pytest.raises(PermissionDeniedError):
        F.materialize(apples, VIEWER)


def test_reapply_reports_changes_and_a_changed_feature_must_be_materialized_again(applied):
    result = _apply(applied, APPLE_FEATURES)
    assert result.added == () and result.changed == () and len(result.unchanged) == 4
    result = _apply(applied, APPLE_FEATURES.replace("window: 7d", "window: 3d"))
    assert result.changed == ("block_blemish_mean_7d",) and result.needs_materialize == ("block_blemish_mean_7d",)
    entities = pd.DataFrame({"orchard_block": ["b1"], "t": [_at(9)]})
    with pytest.raises(MlopsError, match=r"Feature block_blemish_mean_7d has no values yet.*features materialize"):
        F.training_set(applied, entities, ["block_blemish_mean_7d"], time_column="t")
    F.materialize(applied, ADMIN, ["block_blemish_mean_7d"])
    # The 3 days before day 9 00:00 hold only day 6's apple; the old 7-day value was 17.5.
    assert F.training_set(applied, entities, ["block_blemish_mean_7d"], time_column="t").loc[0, "block_blemish_mean_7d"] == 100.0


def test_a_changed_entity_key_changes_the_features_that_use_it(applied):
    text = ENTITIES_YAML.replace("key: orchard_block", "key: variety") + APPLE_FEATURES
    result = F.apply_features(applied, F.definitions_from_yaml(text), ADMIN)
    assert result.changed == ("block_bad_share_14d", "block_blemish_mean_7d")
    assert F.feature_detail(applied, "block_blemish_mean_7d").entity_column == "variety"


def test_prune_removes_features_missing_from_the_set_and_their_tables(applied):
    tables_before = set(applied.query("SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'fv_%'")["table_name"])
    only_raw = APPLE_FEATURES.split("  - name: block_blemish_mean_7d")[0]
    result = _apply(applied, only_raw, prune=True)
    assert result.removed == ("block_bad_share_14d", "block_blemish_mean_7d")
    assert list(F.list_features(applied)["name"]) == ["variety", "weight_g"]
    tables_after = set(applied.query("SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'fv_%'")["table_name"])
    assert len(tables_after) == 1 and tables_after < tables_before


# --- Point in time: never from the future ------------------------------------------------------


def test_an_aggregate_that_jumps_after_t_is_never_seen_before_t(applied):
    # Block b1: blemish 1.0 on days 1-5 at noon, then 100 on day 6 at noon.
    entities = pd.DataFrame(
        {"orchard_block": ["b1", "b1", "b1", "b1"], "graded_at": [_at(6, 11, 59), _at(6, 12), _at(6, 12, 1), _at(1, 12)]}
    )
    result = F.training_set(applied, entities, ["block_blemish_mean_7d"], time_column="graded_at")
    assert result["block_blemish_mean_7d"].iloc[:3].tolist() == pytest.approx([1.0, 1.0, (5 * 1.0 + 100) / 6])
    assert pd.isna(result["block_blemish_mean_7d"].iloc[3])  # an apple never sees its own value in its block's aggregate


def test_a_label_counts_only_once_it_arrived(applied):
    # b1: apple a0 graded day 1 (bad, label day 4 10:00), a1 graded day 2 (good, label day 3 10:00).
    entities = pd.DataFrame({"orchard_block": ["b1"] * 4, "at": [_at(3, 9), _at(3, 12), _at(4, 10), _at(4, 10, 1)]})
    result = F.training_set(applied, entities, ["block_bad_share_14d"], time_column="at")
    values = result["block_bad_share_14d"].tolist()
    assert pd.isna(values[0]) and values[1:] == [0.0, 0.0, 0.5]
    # The trap: counting labels from grading time would have shown 0.5 on day 3, a label from the future.
    leaky_entry = _entry(name="leaky_bad_share", entity="orchard_block", kind="aggregate", expression="is_bad", aggregation="share", window="14d")
    _apply(applied, APPLE_FEATURES + leaky_entry)
    F.materialize(applied, ADMIN, ["leaky_bad_share"])
    leaky = F.training_set(applied, entities, ["leaky_bad_share"], time_column="at")["leaky_bad_share"].tolist()
    assert leaky[1] == 0.5 != values[1]


def test_raw_features_come_as_of_the_rows_own_time_and_later_corrections_stay_in_the_future(warehouse):
    frame = pd.DataFrame(
        {
            "apple_id": ["a1", "a1", "a2"],
            "graded_at": [_at(1, 8), _at(2, 8), _at(1, 9)],
            "weight_g": [150.0, 155.0, 170.0],
        }
    )
    _load_dataset(warehouse, "apples", frame)
    _apply(warehouse, _one_feature(name="weight_g"))
    F.materialize(warehouse, ADMIN)
    entities = pd.DataFrame(
        {
            "apple_id": ["a1", "a1", "a1", "a2", "a2", "zz", None],
            "graded_at": [_at(1, 7), _at(1, 8), _at(2, 7), _at(1, 9), _at(9), _at(9), _at(9)],
        }
    )
    result = F.training_set(warehouse, entities, ["weight_g"], time_column="graded_at")
    expected = [np.nan, 150.0, 150.0, 170.0, 170.0, np.nan, np.nan]
    np.testing.assert_allclose(result["weight_g"].to_numpy(dtype=float), expected)


def _naive(source: pd.DataFrame, entities: pd.DataFrame, spec: dict) -> list[float]:
    """The definition of point-in-time correctness, row by row, with nothing clever."""
    basis = spec.get("available_at", "graded_at")
    window = F.parse_window(spec["window"]) if "window" in spec else None
    known_rows = source[source[basis].notna() & source["key"].notna()]
    by_key = {
        key: (rows[basis].dt.tz_convert(None).to_numpy("datetime64[us]"), rows[spec["column"]].to_numpy(dtype=float, na_value=np.nan))
        for key, rows in known_rows.groupby("key")
    }
    out = []
    for key, t in zip(entities["key"], entities["t"], strict=True):
        if key is None or pd.isna(key) or pd.isna(t):
            out.append(np.nan)
            continue
        times, values = by_key.get(key, (np.array([], dtype="datetime64[us]"), np.array([])))
        t = np.datetime64(pd.Timestamp(t).tz_convert(None), "us")
        if window is None:
            known = np.flatnonzero(times <= t)
            if known.size == 0:
                out.append(np.nan)
                continue
            latest = known[times[known] == times[known].max()]
            out.append(values[latest[-1]])  # the row loaded last wins a tie
            continue
        inside = values[(times >= t - np.timedelta64(window)) & (times < t)]
        inside = inside[~np.isnan(inside)]
        aggregation = spec["aggregation"]
        if aggregation == "count":
            out.append(float(inside.size))
        elif aggregation == "sum":
            out.append(float(inside.sum()))
        elif inside.size == 0:
            out.append(np.nan)
        else:
            out.append(float({"avg": np.mean, "min": np.min, "max": np.max, "share": np.mean}[aggregation](inside)))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_training_set_equals_a_naive_reference_on_random_data(warehouse, seed):
    rng = np.random.default_rng(seed)
    n = 160
    # Times on a 30-minute grid so events, window edges and entity times often coincide.
    graded = DAY0 + pd.to_timedelta(rng.integers(0, 240, n) * 30, unit="min")
    lag = pd.to_timedelta(rng.integers(0, 100, n) * 30, unit="min")
    source = pd.DataFrame(
        {
            "apple_id": [f"a{i}" for i in range(n)],
            "key": pd.array(rng.choice(["k1", "k2", "k3", None], n, p=[0.4, 0.3, 0.2, 0.1]), dtype="str"),
            "graded_at": graded,
            "x": np.where(rng.random(n) < 0.1, np.nan, rng.normal(100, 20, n).round(2)),
            "flag": pd.array(np.where(rng.random(n) < 0.15, None, rng.random(n) < 0.3), dtype="boolean"),
            "labelled_at": pd.Series(graded + lag).where(rng.random(n) < 0.8),
        }
    )
    _load_dataset(warehouse, "events", source)
    specs = {
        "raw_x": {"column": "x"},
        "raw_x_late": {"column": "x", "available_at": "labelled_at"},
        "avg_x_1d": {"column": "x", "aggregation": "avg", "window": "1d"},
        "sum_x_6h": {"column": "x", "aggregation": "sum", "window": "6h"},
        "count_x_1d": {"column": "x", "aggregation": "count", "window": "1d"},
        "min_x_2d": {"column": "x", "aggregation": "min", "window": "2d"},
        "max_x_2d": {"column": "x", "aggregation": "max", "window": "2d"},
        "share_flag_1d": {"column": "flag", "aggregation": "share", "window": "1d", "available_at": "labelled_at"},
        "avg_x_labelled_1d": {"column": "x", "aggregation": "avg", "window": "1d", "available_at": "labelled_at"},
    }
    entries = []
    for name, spec in specs.items():
        entry = {"name": name, "entity": "thing", "dataset": "events", "entity_column": "key", "expression": spec["column"],
                 "value_type": "integer" if spec.get("aggregation") == "count" else "number"}  # fmt: skip
        if "aggregation" in spec:
            entry.update(kind="aggregate", aggregation=spec["aggregation"], window=spec["window"])
        if "available_at" in spec:
            entry["available_at"] = spec["available_at"]
        entries.append("  - " + json.dumps(entry))
    text = "entities:\n  - {name: thing, key: key}\nfeatures:\n" + "\n".join(entries) + "\n"
    F.apply_features(warehouse, F.definitions_from_yaml(text), ADMIN)
    F.materialize(warehouse, ADMIN)
    m = 120
    entities = pd.DataFrame(
        {
            "key": pd.array(rng.choice(["k1", "k2", "k3", "zz", None], m), dtype="str"),
            "t": pd.Series(DAY0 + pd.to_timedelta(rng.integers(-20, 300, m) * 30, unit="min")).where(rng.random(m) < 0.95),
            "row": np.arange(m),
        }
    )
    result = F.training_set(warehouse, entities, list(specs), time_column="t")
    assert result["row"].tolist() == list(range(m))  # the entity rows keep their order
    for name, spec in specs.items():
        expected = np.array(_naive(source, entities, spec), dtype=float)
        np.testing.assert_allclose(result[name].to_numpy(dtype=float), expected, rtol=1e-9, atol=1e-9, err_msg=name)


def test_training_set_errors_name_what_is_missing(applied):
    entities = pd.DataFrame({"apple_id": ["a1"], "graded_at": [_at(9)]})
    with pytest.raises(MlopsError, match=r"entity 'orchard_block'.*no column 'orchard_block'.*entity_columns="):
        F.training_set(applied, entities, ["block_blemish_mean_7d"], time_column="graded_at")
    with pytest.raises(NotFoundError, match=r"No feature named 'weight'.*did you mean 'weight_g'"):
        F.training_set(applied, entities, ["weight"], time_column="graded_at")
    with pytest.raises(MlopsError, match=r"no time column 'when'"):
        F.training_set(applied, entities, ["weight_g"], time_column="when")
    with pytest.raises(MlopsError, match=r"must hold dates or times"):
        F.training_set(applied, entities, ["weight_g"], time_column="apple_id")
    # An entity mapped to another column works.
    renamed = pd.DataFrame({"block": ["b1"], "graded_at": [_at(6, 13)]})
    result = F.training_set(applied, renamed, ["block_blemish_mean_7d"], entity_columns={"orchard_block": "block"}, time_column="graded_at")
    assert result.columns.tolist() == ["block", "graded_at", "block_blemish_mean_7d"]


def test_training_set_from_a_dataset_and_naive_times(applied):
    result = F.training_set(applied, "apples", ["weight_g", "block_bad_share_14d"])
    assert len(result) == 8 and {"apple_id", "graded_at", "orchard_block", "weight_g"} <= set(result.columns)
    assert result.sort_values("apple_id")["weight_g"].iloc[:7].tolist() == [150.0, 160.0, 170.0, 180.0, 190.0, 200.0, 210.0]
    # Naive times are read as UTC.
    naive = pd.DataFrame({"orchard_block": ["b1"], "t": [pd.Timestamp("2026-06-07 12:01")]})
    assert F.training_set(applied, naive, ["block_blemish_mean_7d"], time_column="t").iloc[0, -1] == pytest.approx(17.5)


def test_features_for_scoring_keeps_live_values_and_looks_up_the_rest(applied):
    frame = pd.DataFrame({"apple_id": ["new-apple"], "orchard_block": ["b1"], "weight_g": [222.0]}, index=[7])
    result = F.features_for_scoring(applied, frame, ["weight_g", "block_blemish_mean_7d"], as_of=_at(6, 12, 1).to_pydatetime())
    assert result.columns.tolist() == ["apple_id", "orchard_block", "weight_g", "block_blemish_mean_7d"]
    assert result.loc[0, "weight_g"] == 222.0 and result.loc[0, "block_blemish_mean_7d"] == pytest.approx(17.5)
    # Default as-of is now: the 7-day window is long past, so the block has no recent apples.
    assert pd.isna(F.features_for_scoring(applied, frame, ["block_blemish_mean_7d"]).loc[0, "block_blemish_mean_7d"])


# --- Reads for the page ------------------------------------------------------------------------


def test_list_features_filters(applied):
    assert F.list_features(applied)["name"].tolist() == ["block_bad_share_14d", "block_blemish_mean_7d", "variety", "weight_g"]
    assert F.list_features(applied, search="BLEMISH")["name"].tolist() == ["block_blemish_mean_7d"]
    assert F.list_features(applied, search="grams")["name"].tolist() == ["weight_g"]
    assert F.list_features(applied, tag="labels")["name"].tolist() == ["block_bad_share_14d"]
    assert F.list_features(applied, owner="Orchard@Orchard.example")["name"].tolist() == ["variety"]
    assert F.list_features(applied, entity="apple", tag="measurement")["name"].tolist() == ["weight_g"]
    assert F.list_features(applied, search="nothing-like-this").empty
    assert F.list_entities(applied).set_index("name")["features"].to_dict() == {"apple": 2, "orchard_block": 2}


def test_statistics_histogram_and_trend_match_pandas(applied):
    stats = F.feature_statistics(applied, "weight_g")
    weights = pd.Series([150.0, 160.0, 170.0, 180.0, 190.0, 200.0, 210.0, None])
    assert (stats.rows, stats.values, stats.entities) == (8, 7, 8)
    assert stats.null_share == pytest.approx(1 / 8)
    assert stats.mean == pytest.approx(weights.mean()) and stats.std == pytest.approx(weights.std())
    assert (stats.min, stats.median, stats.max) == (150.0, pytest.approx(weights.median()), 210.0)
    histogram = F.feature_histogram(applied, "weight_g", bins=6)
    assert histogram["count"].sum() == 7 and len(histogram) == 6 and histogram["count"].iloc[-1] == 2
    top = F.feature_statistics(applied, "variety").top
    assert top[0][:2] == ("fuji", 4) and top[0][2] == pytest.approx(0.5)
    assert F.feature_histogram(applied, "variety")["value"].tolist() == ["fuji", "gala"]
    trend = F.feature_trend(applied, "weight_g")
    assert len(trend) == 6 and trend["values"].sum() == 7
    assert trend.set_index("day").loc[pd.Timestamp("2026-06-03"), "mean"] == pytest.approx(185.0)  # a1 and a6
    assert len(F.feature_trend(applied, "weight_g", days=2)) == 2
    info = F.feature_detail(applied, "block_bad_share_14d")
    assert info.available_at_column == "label_received_at" and "label_received_at" in info.columns_used
    assert "14 days" in info.summary and "is true" in info.summary


def test_freshness_status_against_the_expectation(apples):
    _apply(apples, APPLE_FEATURES.replace("    tags: [measurement]", "    tags: [measurement]\n    freshness_hours: 10"))
    assert F.feature_freshness(apples, "weight_g").status is Status.UNKNOWN
    assert F.list_features(apples, search="weight_g")["status"].tolist() == ["Not checked"]
    F.materialize(apples, ADMIN)
    last = _at(6, 12).to_pydatetime()  # the newest apple with a weight (a7 has none)
    assert F.feature_freshness(apples, "weight_g", now=last + timedelta(hours=5)).status is Status.HEALTHY
    assert F.feature_freshness(apples, "weight_g", now=last + timedelta(hours=15)).status is Status.WATCH
    late = F.feature_freshness(apples, "weight_g", now=last + timedelta(hours=30))
    assert late.status is Status.ACT and late.message.startswith("Act: Newest value 30.0 hours old (expected within 10.0 hours)")
    assert F.list_features(apples, search="weight_g", now=last + timedelta(hours=5))["status"].tolist() == ["Healthy"]
    # New source rows not materialised yet: at least Watch, and the message says what to run.
    with apples.transaction() as connection:
        connection.execute(
            f"INSERT INTO {dataset_table('apples')} (apple_id, graded_at, orchard_block, weight_g) VALUES ('a9', $1, 'b1', 190)", [_at(7)]
        )
    behind = F.feature_freshness(apples, "weight_g", now=_at(7, 1).to_pydatetime())
    assert behind.status is Status.WATCH and "not materialised yet: run `mlops-app features materialize`" in behind.message
    late = F.feature_freshness(apples, "weight_g", now=_at(7, 12).to_pydatetime())
    assert late.status is Status.ACT and "not materialised yet" in late.message  # 24 hours old: worse than behind
    # The new row is in that moment's future, so it does not count against it.
    assert F.feature_freshness(apples, "weight_g", now=last + timedelta(hours=5)).status is Status.HEALTHY
    F.materialize(apples, ADMIN)
    assert F.feature_freshness(apples, "weight_g", now=_at(7, 1).to_pydatetime()).status is Status.HEALTHY


def test_unknown_feature_suggests_a_close_name(applied):
    with pytest.raises(NotFoundError, match=r"No feature named 'weigth_g' \(did you mean 'weight_g'\?\)"):
        F.feature_detail(applied, "weigth_g")


# --- The demo: lineage both ways, and no leakage on real demo data ---------------------------


@pytest.fixture(scope="module")
def demo_copy(tmp_path_factory):
    """A home with the demo's harvest and cards like the demo models', then the demo features.

    Built here rather than copied from the shared demo home, whose full build (searches,
    quality ingest) is much slower than what these tests need.
    """
    from sklearn.linear_model import LogisticRegression

    home = tmp_path_factory.mktemp("features-demo") / "home"
    settings = load_settings({"MLOPS_APP_HOME": str(home)})
    warehouse = Warehouse.from_settings(settings)
    warehouse.migrate()
    harvest = generate_harvest(seed=3, days=40, apples_per_day=150)
    roles = {"is_bad": "target", "label_received_at": "label_time"}
    _load_dataset(warehouse, DATASET, harvest, roles=roles, freshness_hours=36)
    registry = Registry(settings.registry_path)
    numbers = harvest[["weight_g", "diameter_mm"]].iloc[:200]
    estimator = LogisticRegression().fit(numbers, harvest["weight_g"].iloc[:200] > 200)
    for model, features in (("apple-grader", GRADER_FEATURES), ("apple-grader", GRADER_FEATURES), ("sugar-estimator", SUGAR_FEATURES)):
        registry.register_version(model, estimator, actor=ADMIN.email, features=features)
    registry.set_alias("sugar-estimator", "champion", 1, actor=ADMIN.email, reason="test")
    summary = install_demo_features(settings, warehouse, ADMIN)
    return settings, warehouse, summary


def test_demo_installs_a_dozen_orchard_features(demo_copy):
    settings, warehouse, summary = demo_copy
    assert (settings.home_path / "features" / DEMO_FEATURES_FILE).is_file()
    listing = F.list_features(warehouse)
    assert len(listing) >= 12 and set(listing["kind"]) == {"raw", "aggregate"}
    assert set(summary.materialized.features) == set(listing["name"])
    assert listing.set_index("name").loc["block_bad_share_14d", "window"] == "14d"


def test_lineage_both_ways(demo_copy):
    settings, warehouse, _ = demo_copy
    registry = Registry(settings.registry_path)
    lineage = F.feature_lineage(warehouse, registry, "weight_g")
    assert lineage.dataset == "apple_harvest" and lineage.columns[0] == "weight_g"
    assert {(use.model, use.version) for use in lineage.models} == {("apple-grader", 1), ("apple-grader", 2), ("sugar-estimator", 1)}
    assert "champion" in next(use.aliases for use in lineage.models if use.model == "sugar-estimator")
    labels = F.feature_lineage(warehouse, registry, "block_bad_share_14d")
    assert labels.models == () and set(labels.columns) == {"is_bad", "orchard_block", "label_received_at"}
    assert F.feature_lineage(warehouse, registry, "sugar_brix").models and not any(
        use.model == "sugar-estimator" for use in F.feature_lineage(warehouse, registry, "sugar_brix").models
    )


def test_demo_label_feature_never_uses_labels_from_the_future(demo_copy):
    _, warehouse, _ = demo_copy
    result = F.training_set(warehouse, "apple_harvest", ["block_bad_share_14d", "weight_g"])
    harvest = warehouse.query(f"SELECT orchard_block, is_bad, label_received_at FROM {dataset_table('apple_harvest')}")
    harvest = harvest.rename(columns={"orchard_block": "key", "is_bad": "flag"})
    sample = result.sample(60, random_state=0).rename(columns={"orchard_block": "key", "graded_at": "t"})
    expected = _naive(harvest, sample, {"column": "flag", "aggregation": "share", "window": "14d", "available_at": "label_received_at"})
    np.testing.assert_allclose(sample["block_bad_share_14d"].to_numpy(dtype=float), expected, rtol=1e-9)
    assert result["weight_g"].notna().all()


def test_feature_overview_gathers_the_page_in_one_call(demo_copy, apples):
    settings, warehouse, _ = demo_copy
    overview = F.feature_overview(warehouse, Registry(settings.registry_path), "block_firmness_mean_7d", bins=12, trend_days=7)
    assert overview.info.definition.aggregation == "avg" and overview.lineage.dataset == "apple_harvest"
    assert len(overview.histogram) == 12 and overview.histogram["count"].sum() == overview.statistics.values
    assert len(overview.trend) == 7 and overview.freshness.status in (Status.HEALTHY, Status.WATCH, Status.ACT)
    # Registered but not materialised: definition, freshness and lineage, no values yet.
    _apply(apples, APPLE_FEATURES)
    pending = F.feature_overview(apples, Registry(settings.registry_path), "weight_g")
    assert pending.statistics is None and pending.freshness.status is Status.UNKNOWN


def test_check_definitions_is_a_dry_run(apples):
    F.check_definitions(apples, F.definitions_from_yaml(ENTITIES_YAML + APPLE_FEATURES))
    assert _catalogue(apples) == []
    with pytest.raises(FeatureDefinitionError, match=r"column 'nope' does not exist"):
        F.check_definitions(apples, F.definitions_from_yaml(ENTITIES_YAML + _one_feature(expression="nope")))
    with pytest.raises(NotFoundError, match=r"No feature named 'weight_g'.*none yet"):
        F.materialize(apples, ADMIN, ["weight_g"])
