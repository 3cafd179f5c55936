"""The demo home: an apple orchard's grading line over one season.

Apples are graded good or bad from weight, diameter, colour, blemish area, firmness and
sugar (brix), by variety and orchard block, in daily harvest batches. The season moves the
fruit (heavier, sweeter, softer, redder as it ripens), and on 20 August two things change at
once: a young block (``block-h``) starts delivering, and the grading line gets a new machine
whose colour sensor reads about 8 points redder and whose scale reads about 6 g heavier. A
drift report should catch both. Ground truth (was the apple really bad?) comes from a
quality inspection 2-6 days after grading, so the most recent days are not labelled yet.

Everything is generated vectorised with one seed, so the same settings build the same home,
and the first build stays well inside the two-minute budget on 2 cores.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlops_app.auth import Identity, require
from mlops_app.config import Settings
from mlops_app.datasets import BATCH_COLUMN, Dataset, columns_from_frame, create_dataset_table
from mlops_app.demo_features import install_demo_features
from mlops_app.demo_quality import ingest_recent_days, split_recent
from mlops_app.errors import MlopsError
from mlops_app.evaluation import classification_metrics, regression_metrics
from mlops_app.experiments import register_run_model
from mlops_app.promotion import install_demo_promotions
from mlops_app.training import train
from mlops_app.registry import Registry
from mlops_app.warehouse import Warehouse

LOG = logging.getLogger("mlops_app.demo")

SEASON_START = date(2026, 6, 1)
CHANGE_DAY = date(2026, 8, 20)  # new block and new grading machine
DATASET = "apple_harvest"
MANIFEST_NAME = "demo-manifest.json"
# Folders under the home that the demo (through the library) fills, removed by --reset.
GENERATED_FOLDERS = ("runs", "checks", "features", "demo", "outbox", "monitoring")
# The last weeks of the season arrive as daily files through the quality checks.
DELIVERED_DAYS = 21
# Bump when the generated content changes, so an old demo home is rebuilt, not half-reused.
DEMO_VERSION = 6

BLOCK_VARIETY = {
    "block-a": "gala",
    "block-b": "gala",
    "block-c": "fuji",
    "block-d": "fuji",
    "block-e": "honeycrisp",
    "block-f": "granny_smith",
    "block-g": "granny_smith",
}
NEW_BLOCK, NEW_BLOCK_VARIETY = "block-h", "honeycrisp"
VARIETY_WEIGHT_G = {"gala": 150.0, "fuji": 200.0, "honeycrisp": 230.0, "granny_smith": 190.0}
VARIETY_RED_SHARE = {"gala": 72.0, "fuji": 62.0, "honeycrisp": 66.0, "granny_smith": 8.0}
VARIETY_BRIX = {"gala": 0.8, "fuji": 1.6, "honeycrisp": 0.6, "granny_smith": -0.8}

GRADER_FEATURES = ["weight_g", "diameter_mm", "colour_score", "blemish_area_mm2", "firmness_n", "sugar_brix", "variety", "orchard_block"]
SUGAR_FEATURES = ["weight_g", "diameter_mm", "colour_score", "firmness_n", "variety"]
# The search also tries two block-level features from the feature store (point in time).
SEARCH_FEATURES = [*GRADER_FEATURES, "block_blemish_area_mean_7d", "block_bad_share_14d"]
COLUMN_DESCRIPTIONS = {
    "apple_id": "Identifier printed on the tray label",
    "graded_at": "When the apple passed the grading line (UTC)",
    "harvest_date": "Day of the harvest batch",
    "orchard_block": "Block of the orchard the apple was picked in",
    "variety": "Apple variety",
    "grading_machine": "Grading machine that measured the apple",
    "weight_g": "Weight in grams",
    "diameter_mm": "Largest diameter in millimetres",
    "colour_score": "Share of the skin with the variety's ripe colour, in percent",
    "blemish_area_mm2": "Visible blemish area in square millimetres",
    "firmness_n": "Flesh firmness from the penetrometer, in newtons",
    "sugar_brix": "Sugar content in degrees Brix",
    "is_bad": "Ground truth from the quality inspection: damaged or worm-infested",
    "label_received_at": "When the inspection result arrived (empty: not yet inspected)",
}


@dataclass(frozen=True)
class DemoSummary:
    home: Path
    built: bool
    rows: int
    days: int
    models: list[str]
    seconds: float


def _season_progress(days_in: np.ndarray, total_days: int) -> np.ndarray:
    return days_in / max(total_days - 1, 1)


def generate_harvest(*, seed: int = 7, days: int = 150, apples_per_day: int = 1500, start: date = SEASON_START) -> pd.DataFrame:
    """Generate the graded apples of a season, one row per apple, deterministic for a seed.

    Returns:
        A frame with the columns of :data:`COLUMN_DESCRIPTIONS`; ``is_bad`` and
        ``label_received_at`` are missing where the inspection has not come back by the
        day after the last harvest.
    """
    if days < 1 or apples_per_day < 10:
        raise ValueError("The demo needs at least 1 day and 10 apples a day.")
    rng = np.random.default_rng(seed)
    day_index = np.arange(days)
    # Deliveries grow towards the September peak and dip on Sundays.
    peak = np.exp(-(((day_index - days * 0.65) / (days * 0.35)) ** 2))
    weekday = np.array([(start + timedelta(days=int(d))).weekday() for d in day_index])
    per_day = (apples_per_day * (0.55 + 0.7 * peak) * np.where(weekday == 6, 0.5, 1.0)).astype(int)
    per_day = np.maximum(per_day + rng.integers(-apples_per_day // 20, apples_per_day // 20 + 1, days), 10)

    day_of_row = np.repeat(day_index, per_day)
    n = day_of_row.size
    harvest_date = np.datetime64(start) + day_of_row.astype("timedelta64[D]")
    after_change = harvest_date >= np.datetime64(CHANGE_DAY)
    progress = _season_progress(day_of_row, days)

    blocks = np.array(list(BLOCK_VARIETY))
    block = blocks[rng.integers(0, blocks.size, n)]
    block = np.where(after_change & (rng.random(n) < 0.18), NEW_BLOCK, block)
    variety = np.array([BLOCK_VARIETY.get(b, NEW_BLOCK_VARIETY) for b in block])
    machine = np.where(after_change, "grader-2", "grader-1")

    # Hidden truth: damage grows late in the season, and the young block bruises more.
    bad_rate = 0.07 + 0.05 * progress + np.where(block == NEW_BLOCK, 0.06, 0.0)
    bad = rng.random(n) < bad_rate

    base_weight = np.vectorize(VARIETY_WEIGHT_G.get)(variety)
    weight = base_weight * (0.85 + 0.3 * progress) + rng.normal(0, 22, n) - np.where(bad, 14, 0)
    weight = np.clip(weight, 60, 450)
    diameter = 13.4 * np.cbrt(weight) + rng.normal(0, 1.8, n)
    colour = np.vectorize(VARIETY_RED_SHARE.get)(variety) + 14 * progress + rng.normal(0, 8, n)
    firmness = 76 - 20 * progress + rng.normal(0, 5.5, n) - np.where(bad, 14, 0)
    sugar = 11.2 + 3.0 * progress + np.vectorize(VARIETY_BRIX.get)(variety) + 0.02 * (colour - 50) + rng.normal(0, 0.7, n)
    blemish = np.where(bad, rng.lognormal(3.7, 0.6, n), rng.lognormal(1.2, 0.8, n))
    # The new machine's sensors: redder colour and a heavier scale reading.
    colour = np.clip(colour + np.where(after_change, 8.0, 0.0), 0, 100)
    weight = weight + np.where(after_change, 6.0, 0.0)

    seconds_in_day = rng.integers(6 * 3600, 18 * 3600, n)
    graded_at = harvest_date.astype("datetime64[s]") + seconds_in_day.astype("timedelta64[s]")
    delay = rng.integers(2 * 86400, 6 * 86400, n).astype("timedelta64[s]")
    label_received = graded_at + delay
    cutoff = np.datetime64(start + timedelta(days=days + 1)).astype("datetime64[s]")
    labelled = label_received <= cutoff
    # The inspection itself is imperfect: 0.3% of labels are flipped.
    observed_bad = np.where(rng.random(n) < 0.003, ~bad, bad)

    sequence = np.concatenate([np.arange(count) for count in per_day])
    frame = pd.DataFrame(
        {
            "apple_id": [f"{d}-{s:05d}" for d, s in zip(harvest_date.astype(str), sequence, strict=True)],
            "graded_at": pd.to_datetime(graded_at).tz_localize("UTC"),
            "harvest_date": pd.to_datetime(harvest_date).date,
            "orchard_block": block,
            "variety": variety,
            "grading_machine": machine,
            "weight_g": weight.round(1),
            "diameter_mm": diameter.round(1),
            "colour_score": colour.round(1),
            "blemish_area_mm2": blemish.round(1),
            "firmness_n": firmness.round(1),
            "sugar_brix": sugar.round(2),
            "is_bad": pd.array(np.where(labelled, observed_bad, False), dtype="boolean"),
            "label_received_at": pd.to_datetime(label_received).tz_localize("UTC"),
        }
    )
    frame.loc[~labelled, "is_bad"] = pd.NA
    frame.loc[~labelled, "label_received_at"] = pd.NaT
    return frame


def _pipeline(estimator, features: list[str]) -> Pipeline:
    """Scale the numeric features, one-hot encode the categorical ones, then fit ``estimator``."""
    categorical = [c for c in features if c in ("variety", "orchard_block")]
    numeric = [c for c in features if c not in categorical]
    encode = ColumnTransformer(
        [
            ("numbers", StandardScaler(), numeric),
            ("categories", OneHotEncoder(handle_unknown="ignore"), categorical),
        ]
    )
    return Pipeline([("prepare", encode), ("model", estimator)])


def _input_schema(frame: pd.DataFrame, columns: list[str]) -> list[dict[str, str]]:
    return [{"name": column, "dtype": str(frame[column].dtype)} for column in columns]


def _time_split(frame: pd.DataFrame, train_end: date, holdout_end: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    labelled = frame[frame["is_bad"].notna()]
    days = pd.to_datetime(labelled["harvest_date"])
    train = labelled[days < pd.Timestamp(train_end)]
    holdout = labelled[(days >= pd.Timestamp(train_end)) & (days < pd.Timestamp(holdout_end))]
    return train, holdout


def _train_models(frame: pd.DataFrame, registry: Registry, actor: str, fingerprint: str) -> list[str]:
    """Train and register the demo models on early-season data (time-based holdout)."""
    train, holdout = _time_split(frame, date(2026, 7, 11), date(2026, 8, 1))
    y_train, y_holdout = train["is_bad"].astype(bool), holdout["is_bad"].astype(bool)
    grader_card = {
        "key_metric": "recall_bad",
        "targets": {"recall_bad": {"min": 0.93}, "false_discard_rate": {"max": 0.04}},
        "predicts": "Whether an apple is bad (damaged or worm-infested), from the grading-line measurements.",
        "intended_use": "Sorting apples on the grading line; bad apples go to the discard pile.",
        "limits": "Trained on June-July fruit from blocks a-g measured by grader-1.",
        "training_window": {"start": str(SEASON_START), "end": "2026-07-10"},
        "holdout_window": {"start": "2026-07-11", "end": "2026-07-31"},
        "training_rows": int(len(train)),
        "holdout_rows": int(len(holdout)),
        "threshold": 0.5,
    }
    versions = [
        (
            "Logistic regression baseline",
            LogisticRegression(max_iter=500, class_weight="balanced"),
            {"family": "logistic_regression", "C": 1.0, "class_weight": "balanced"},
            datetime(2026, 7, 12, 9, 30, tzinfo=UTC),
        ),
        (
            "Gradient-boosted trees",
            HistGradientBoostingClassifier(max_iter=150, learning_rate=0.08, class_weight="balanced", random_state=0),
            {"family": "hist_gradient_boosting", "max_iter": 150, "learning_rate": 0.08, "class_weight": "balanced"},
            datetime(2026, 8, 3, 14, 5, tzinfo=UTC),
        ),
    ]
    registry.create_model(
        "apple-grader",
        description="Decides on the grading line whether an apple is bad and goes to the discard pile.",
        owner="quality-team@orchard.example",
        actor=actor,
        at=datetime(2026, 7, 1, 8, 0, tzinfo=UTC),
    )
    for description, estimator, params, created_at in versions:
        pipeline = _pipeline(estimator, GRADER_FEATURES).fit(train[GRADER_FEATURES], y_train)
        scores = pipeline.predict_proba(holdout[GRADER_FEATURES])[:, 1]
        version = registry.register_version(
            "apple-grader",
            pipeline,
            actor=actor,
            metrics=classification_metrics(y_holdout, scores, threshold=0.5),
            params=params,
            input_schema=_input_schema(frame, GRADER_FEATURES),
            dataset_fingerprint=fingerprint,
            features=GRADER_FEATURES,
            description=description,
            extra=grader_card,
            created_at=created_at,
        )
        registry.set_alias(
            "apple-grader",
            "champion",
            version.version,
            actor=actor,
            reason=f"{description} released after review",
            at=created_at + timedelta(days=1),
        )

    sugar_pipeline = _pipeline(Ridge(alpha=1.0), SUGAR_FEATURES).fit(train[SUGAR_FEATURES], train["sugar_brix"])
    registry.create_model(
        "sugar-estimator",
        description="Estimates sugar content (°Bx) without cutting the apple, to route sweet fruit to premium packs.",
        owner="packing-team@orchard.example",
        actor=actor,
        at=datetime(2026, 7, 1, 8, 30, tzinfo=UTC),
    )
    sugar = registry.register_version(
        "sugar-estimator",
        sugar_pipeline,
        actor=actor,
        metrics=regression_metrics(holdout["sugar_brix"], sugar_pipeline.predict(holdout[SUGAR_FEATURES])),
        params={"family": "ridge", "alpha": 1.0},
        input_schema=_input_schema(frame, SUGAR_FEATURES),
        dataset_fingerprint=fingerprint,
        features=SUGAR_FEATURES,
        description="Ridge regression on non-destructive measurements",
        extra={
            "key_metric": "mae",
            "metric_units": {"mae": "°Bx", "rmse": "°Bx"},
            "targets": {"mae": {"max": 0.8}},
            "predicts": "Sugar content of an apple in degrees Brix, from weight, size, colour and firmness.",
            "intended_use": "Routing sweet apples to premium packs; not for food labelling.",
            "training_rows": int(len(train)),
            "holdout_rows": int(len(holdout)),
        },
        created_at=datetime(2026, 7, 15, 11, 0, tzinfo=UTC),
    )
    registry.set_alias(
        "sugar-estimator",
        "champion",
        sugar.version,
        actor=actor,
        reason="First release after review",
        at=datetime(2026, 7, 16, 9, 0, tzinfo=UTC),
    )
    return ["apple-grader", "sugar-estimator"]


def _run_searches(warehouse: Warehouse, registry: Registry, identity: Identity, settings: Settings, progress) -> None:
    """Real AutoML searches on the orchard data, so the Experiments page has dozens of runs.

    The grader search selects on F1: selecting on ranking quality alone picked a model that
    caught only half the bad apples at the working threshold after the 20 August change.
    Its winner becomes the grader's challenger, waiting for review.
    """
    progress(f"Searching {settings.demo_trials} model configurations for the apple grader")
    grader = train(
        warehouse, dataset=DATASET, target="is_bad", experiment="apple-grader-search", identity=identity,
        trials=settings.demo_trials, max_rows=10_000, metric="f1", seed=settings.demo_seed, features=SEARCH_FEATURES,
    )  # fmt: skip
    version = register_run_model(
        warehouse, registry, grader.winner_run_id, "apple-grader", identity,
        description=f"AutoML winner: {grader.family.replace('_', ' ')} trained on the whole season",
    )  # fmt: skip
    registry.set_alias("apple-grader", "challenger", version.version, actor=identity.email, reason="Best model of the season's search")
    progress("Searching sugar estimators")
    train(
        warehouse, dataset=DATASET, target="sugar_brix", experiment="sugar-estimator-search", identity=identity,
        trials=max(settings.demo_trials // 3, 3), max_rows=6_000, features=SUGAR_FEATURES, seed=settings.demo_seed,
    )  # fmt: skip


def _fingerprint(frame: pd.DataFrame) -> str:
    digest = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return f"{len(frame)}-rows-{int(np.bitwise_xor.reduce(digest)):016x}"


def _load_harvest(warehouse: Warehouse, frame: pd.DataFrame) -> None:
    """Load the season into the warehouse as one batch per harvest day, set-based."""
    dataset = Dataset(
        name=DATASET,
        description="Every apple that passed the grading line, with its measurements and the inspection result.",
        owner="quality-team@orchard.example",
        source="Grading-line export, one file a day (demo data)",
        columns=tuple(
            columns_from_frame(
                frame,
                {"apple_id": "id", "graded_at": "timestamp", "is_bad": "target", "label_received_at": "label_time",
                 "harvest_date": "other", "grading_machine": "other"},
                COLUMN_DESCRIPTIONS,
            )
        ),
        target="is_bad",
        id_column="apple_id",
        time_column="graded_at",
        freshness_hours=36.0,
    )
    frame = frame.assign(**{BATCH_COLUMN: "apple_harvest-" + frame["harvest_date"].astype(str)})
    per_day = frame.groupby(BATCH_COLUMN, sort=True)
    batches = pd.DataFrame(
        {
            "batch_id": list(per_day.groups),
            "dataset": DATASET,
            "received_at": [
                pd.Timestamp(day.removeprefix("apple_harvest-"), tz="UTC") + pd.Timedelta(hours=19) for day in per_day.groups
            ],
            "source_name": ["grading-line-" + day.removeprefix("apple_harvest-") + ".csv" for day in per_day.groups],
            "content_sha256": [
                f"{int(np.bitwise_xor.reduce(pd.util.hash_pandas_object(group, index=False).to_numpy())):016x}"
                for _, group in per_day
            ],
            "row_count": per_day.size().to_numpy(),
            "accepted_rows": per_day.size().to_numpy(),
            "quarantined_rows": 0,
            "status": "accepted",
            "reason": None,
        }
    )
    with warehouse.transaction() as con:
        create_dataset_table(con, warehouse, dataset, frame, replace=True)
        con.register("batch_frame", batches)
        con.execute("DELETE FROM batches WHERE dataset = $1", [DATASET])
        con.execute("INSERT INTO batches BY NAME SELECT * FROM batch_frame")
        con.unregister("batch_frame")


def is_demo_home(home: Path) -> bool:
    return (home / MANIFEST_NAME).is_file()


def _reset(home: Path, settings: Settings) -> None:
    """Remove a previous demo home; refuse to touch a home that holds real work."""
    if not home.exists():
        return
    leftovers = [p for p in home.iterdir() if p.name not in ("README.md", ".gitkeep")]
    if leftovers and not is_demo_home(home):
        raise MlopsError(
            f"{home} holds data that the demo did not create, so --reset will not delete it. "
            "Point MLOPS_APP_HOME at another folder for the demo."
        )
    from mlops_app.demo_monitoring import stop_background_history

    stop_background_history(settings)  # a history build or live replay must not write into the home being deleted
    generated = [settings.warehouse_path, settings.registry_path, settings.reports_path, home / MANIFEST_NAME]
    generated += [home / name for name in GENERATED_FOLDERS]
    for path in generated:
        if path.is_dir():
            shutil.rmtree(path)
        for sibling in path.parent.glob(path.name + "*"):
            if sibling.is_file():
                sibling.unlink()


def _write_manifest(path: Path, manifest: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2))
    tmp.replace(path)


def build_demo(
    settings: Settings,
    identity: Identity,
    *,
    reset: bool = False,
    progress: Callable[[str], None] = lambda message: None,
) -> DemoSummary:
    """Build the demo home under ``settings.home`` unless it is already there.

    Idempotent: a home with a current manifest is left as it is. ``reset`` rebuilds it.

    Raises:
        PermissionDeniedError: the identity may not build the demo.
        MlopsError: ``reset`` on a home that holds data the demo did not create.
    """
    require(identity, "build_demo")
    started = datetime.now(UTC)
    home = settings.home_path
    manifest_path = home / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else None
    if reset or (manifest is not None and manifest.get("status") != "complete"):
        # A build that was killed midway left a "building" manifest: start it over.
        _reset(home, settings)
    elif manifest is not None:
        if manifest.get("demo_version") == DEMO_VERSION and manifest.get("seed") == settings.demo_seed:
            return DemoSummary(home, False, manifest["rows"], manifest["days"], manifest["models"], 0.0)
        raise MlopsError(
            f"{home} holds a demo built with other settings (version {manifest.get('demo_version')}, seed "
            f"{manifest.get('seed')}). Run `mlops-app demo --reset` to rebuild it."
        )
    elif settings.warehouse_path.exists() or settings.registry_path.exists():
        raise MlopsError(
            f"{home} already holds a warehouse or registry that the demo did not create. "
            "Point MLOPS_APP_HOME at an empty folder for the demo."
        )
    home.mkdir(parents=True, exist_ok=True)
    _write_manifest(manifest_path, {"status": "building", "demo_version": DEMO_VERSION, "seed": settings.demo_seed})

    progress(f"Generating {settings.demo_days} days of harvest")
    frame = generate_harvest(seed=settings.demo_seed, days=settings.demo_days, apples_per_day=settings.demo_apples_per_day)
    warehouse = Warehouse.from_settings(settings)
    warehouse.migrate()
    early, recent, _ = split_recent(frame, min(DELIVERED_DAYS, max(settings.demo_days // 4, 1)))
    progress(f"Loading {len(early):,} graded apples of the early season into the warehouse")
    _load_harvest(warehouse, early)
    ingest_recent_days(
        warehouse, home, recent, identity, seed=settings.demo_seed, apples_per_day=settings.demo_apples_per_day,
        progress=progress,
    )  # fmt: skip
    progress("Defining and materialising the orchard features")
    install_demo_features(settings, warehouse, identity)
    progress("Training and registering the demo models")
    registry = Registry(settings.registry_path, lock_timeout=settings.lock_timeout_seconds)
    models = _train_models(frame, registry, identity.email, _fingerprint(frame))
    _run_searches(warehouse, registry, identity, settings, progress)
    progress("Recording the release history and the challenger's pending review")
    install_demo_promotions(settings, registry, warehouse)
    seconds = (datetime.now(UTC) - started).total_seconds()
    manifest = {
        "status": "complete",
        "demo_version": DEMO_VERSION,
        "seed": settings.demo_seed,
        "days": settings.demo_days,
        "rows": int(len(frame)),
        "models": models,
        "built_at": datetime.now(UTC).isoformat(),
        "build_seconds": round(seconds, 1),
    }
    # Marked complete last: a build killed midway stays "building", so the next run redoes it.
    _write_manifest(manifest_path, manifest)
    return DemoSummary(home, True, int(len(frame)), settings.demo_days, models, seconds)
