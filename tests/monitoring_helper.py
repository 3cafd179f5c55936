"""Synthetic fruit for the scoring, monitoring and alert tests, and a second process for the crash test.

Usage as a process: python monitoring_helper.py HOME KILL_AT_WINDOW UNTIL

  Runs the monitoring job on HOME (built by :func:`build_home`) up to UNTIL (an ISO
  time) and, while the window
  number KILL_AT_WINDOW (1-based) is being written inside its transaction, prints
  "writing <n>" and sleeps: the test SIGKILLs the process there. Windows before it print
  "done <n>" once committed.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlops_app.auth import Identity
from mlops_app.config import Settings, load_settings
from mlops_app.datasets import BATCH_COLUMN, Dataset, columns_from_frame, create_dataset_table
from mlops_app.registry import Registry
from mlops_app.warehouse import Warehouse

MODEL = "fruit-grader"
DATASET = "fruit"
NUMERIC = ["weight", "size"]
CATEGORICAL = ["colour"]
FEATURES = [*NUMERIC, *CATEGORICAL]
REFERENCE_START = date(2026, 1, 1)
REFERENCE_DAYS = 20
FIRST_DAY = date(2026, 2, 1)
ANA = Identity("ana@orchard.example", "Ana", "reviewer", "local")
VIEWER = Identity("vic@orchard.example", "Vic", "viewer", "local")
MONITORING_YAML = """\
model: fruit-grader
window: 1d
kpi_period: 2d
sample_rows: 2000
min_rows: 30
min_labelled_rows: 50
drift_share_threshold: 0.3
resolve_after_windows: 2
kpis:
  - metric: recall_bad
    label: Share of bad fruit caught
    min: 0.9
  - metric: false_discard_rate
    label: Share of good fruit discarded
    max: 0.2
retrain:
  enabled: false
"""


def fruit(day: date, rows: int, *, shift: float = 0.0, seed: int = 0, prefix: str = "f") -> pd.DataFrame:
    """One day of fruit; ``shift`` moves weight and size (in standard deviations) and reddens the colours."""
    rng = np.random.default_rng(seed)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    weight = rng.normal(150 + 20 * shift, 20, rows)
    size = rng.normal(70 + 5 * shift, 5, rows)
    colours = ["green", "red", "yellow"]
    share = np.array([0.5, 0.3, 0.2]) if shift == 0 else np.array([0.2, 0.6, 0.2])
    colour = rng.choice(colours, rows, p=share)
    risk = -0.08 * (weight - 150) + np.where(colour == "green", 0.8, 0.0) + rng.normal(0, 1, rows)
    return pd.DataFrame(
        {
            "fruit_id": [f"{prefix}{day:%m%d}-{index:05d}" for index in range(rows)],
            "measured_at": start + pd.to_timedelta(rng.integers(0, 86_399, rows), unit="s"),
            "weight": weight.round(2),
            "size": size.round(2),
            "colour": colour,
            "is_bad": risk > 1.5,
        }
    )


def reference_frame(rows_per_day: int = 150) -> pd.DataFrame:
    return pd.concat(
        [fruit(REFERENCE_START + timedelta(days=offset), rows_per_day, seed=100 + offset, prefix="r") for offset in range(REFERENCE_DAYS)],
        ignore_index=True,
    )


def settings_for(home: Path, **extra: str) -> Settings:
    return load_settings({"MLOPS_APP_HOME": str(home), **extra})


@dataclass(frozen=True)
class Home:
    settings: Settings
    warehouse: Warehouse
    registry: Registry


def build_home(home: Path, *, monitoring_yaml: str | None = MONITORING_YAML, webhook_url: str = "") -> Home:
    """A home with the reference dataset and a registered champion trained on it."""
    settings = settings_for(home, **({"MLOPS_APP_WEBHOOK_URL": webhook_url} if webhook_url else {}))
    warehouse = Warehouse.from_settings(settings)
    frame = reference_frame()
    dataset = Dataset(
        name=DATASET, description="synthetic fruit", owner="test", source="test",
        columns=tuple(columns_from_frame(frame, {"fruit_id": "id", "measured_at": "timestamp", "is_bad": "target"})),
        target="is_bad", id_column="fruit_id", time_column="measured_at",
    )  # fmt: skip
    with warehouse.transaction() as connection:
        create_dataset_table(connection, warehouse, dataset, frame.assign(**{BATCH_COLUMN: "b0"}))
    pipeline = Pipeline(
        [
            ("prepare", ColumnTransformer([("n", StandardScaler(), NUMERIC), ("c", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL)])),
            ("model", LogisticRegression(max_iter=500, class_weight="balanced")),
        ]
    ).fit(frame[FEATURES], frame["is_bad"])
    registry = Registry(settings.registry_path)
    version = registry.register_version(
        MODEL, pipeline, actor=ANA.email, metrics={"recall_bad": 0.95, "roc_auc": 0.97},
        input_schema=[{"name": "weight", "dtype": "DOUBLE"}, {"name": "size", "dtype": "DOUBLE"}, {"name": "colour", "dtype": "VARCHAR"}],
        features=FEATURES,
        extra={
            "dataset": DATASET, "target": "is_bad", "key_metric": "recall_bad", "threshold": 0.5,
            "training_window": {"start": str(REFERENCE_START), "end": str(REFERENCE_START + timedelta(days=REFERENCE_DAYS - 1))},
        },
    )  # fmt: skip
    registry.set_alias(MODEL, "champion", version.version, actor=ANA.email)
    if monitoring_yaml is not None:
        folder = home / "monitoring"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{MODEL}.yaml").write_text(monitoring_yaml, encoding="utf-8")
    return Home(settings, warehouse, registry)


def score_days(home: Home, days: list[tuple[date, float]], rows: int = 200) -> list[pd.DataFrame]:
    """Score one batch per (day, shift); return the scored input frames."""
    from mlops_app.scoring import score_frame

    frames = []
    for index, (day, shift) in enumerate(days):
        frame = fruit(day, rows, shift=shift, seed=index + 1)
        score_frame(home.warehouse, home.registry, MODEL, frame.drop(columns=["is_bad"]), ANA)
        frames.append(frame)
    return frames


def main(argv: list[str]) -> int:
    home, kill_at, until = Path(argv[0]), int(argv[1]), datetime.fromisoformat(argv[2])
    from mlops_app.monitoring import run_monitor

    settings = settings_for(home)
    state = {"window": 0}

    def progress(event: str, details: dict) -> None:
        if event == "window_started":
            state["window"] += 1
        elif event == "window_writing" and state["window"] == kill_at:
            print(f"writing {state['window']}", flush=True)
            time.sleep(120)  # inside the window's transaction: the test kills us here
        elif event == "window_done":
            print(f"done {state['window']}", flush=True)

    run_monitor(settings, MODEL, until=until, progress=progress, retrain=False, notify=False)
    print("finished", flush=True)
    return 0



# --- A wide model for the drift agreement test -------------------------------------------------

WIDE_MODEL = "wide-grader"
WIDE_DATASET = "wide"
# Location shifts in standard deviations: the normed Wasserstein distance of a shift is about
# the shift itself, so these sit well away from Evidently's 0.1 threshold on either side.
WIDE_SHIFTS = [0.0, 0.0, 0.0, 0.0, 0.02, 0.03, 0.04, 0.05, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0]
WIDE_CATEGORIES = 4


def wide_frame(rows: int, *, current: bool, seed: int, start: datetime) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data: dict[str, object] = {
        "row_id": [f"{'c' if current else 'r'}{index:06d}" for index in range(rows)],
        "at": start + pd.to_timedelta(rng.integers(0, 86_399, rows), unit="s"),
    }
    for index, shift in enumerate(WIDE_SHIFTS):
        data[f"x{index:02d}"] = rng.normal(shift if current else 0.0, 1.0, rows)
    for index in range(WIDE_CATEGORIES):
        moved = current and index >= 2  # two categorical columns change a lot, two do not
        shares = [0.1, 0.2, 0.7] if moved else [0.4, 0.35, 0.25]
        data[f"k{index}"] = rng.choice(["a", "b", "c"], rows, p=shares)
    frame = pd.DataFrame(data)
    frame["is_bad"] = (frame["x00"] + frame["x08"] + rng.normal(0, 1, rows)) > 1.5
    return frame


def wide_features() -> tuple[list[str], list[str]]:
    return [f"x{index:02d}" for index in range(len(WIDE_SHIFTS))], [f"k{index}" for index in range(WIDE_CATEGORIES)]


def build_wide_home(home: Path, *, reference_rows: int, sample_rows: int) -> tuple[Home, pd.DataFrame]:
    """A home whose model reads 20 features, with ``reference_rows`` training rows on 2026-01-01."""
    settings = settings_for(home)
    warehouse = Warehouse.from_settings(settings)
    numeric, categorical = wide_features()
    frame = wide_frame(reference_rows, current=False, seed=11, start=datetime(2026, 1, 1, tzinfo=UTC))
    dataset = Dataset(
        name=WIDE_DATASET, description="wide", owner="test", source="test",
        columns=tuple(columns_from_frame(frame, {"row_id": "id", "at": "timestamp", "is_bad": "target"})),
        target="is_bad", id_column="row_id", time_column="at",
    )  # fmt: skip
    with warehouse.transaction() as connection:
        create_dataset_table(connection, warehouse, dataset, frame.assign(**{BATCH_COLUMN: "b0"}))
    features = [*numeric, *categorical]
    pipeline = Pipeline(
        [
            ("prepare", ColumnTransformer([("n", StandardScaler(), numeric), ("c", OneHotEncoder(handle_unknown="ignore"), categorical)])),
            ("model", LogisticRegression(max_iter=500)),
        ]
    ).fit(frame[features], frame["is_bad"])
    registry = Registry(settings.registry_path)
    registry.register_version(
        WIDE_MODEL, pipeline, actor=ANA.email, features=features,
        input_schema=[{"name": name, "dtype": "DOUBLE"} for name in numeric] + [{"name": name, "dtype": "VARCHAR"} for name in categorical],
        extra={"dataset": WIDE_DATASET, "target": "is_bad", "training_window": {"start": "2026-01-01", "end": "2026-01-01"}},
    )  # fmt: skip
    folder = home / "monitoring"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{WIDE_MODEL}.yaml").write_text(f"model: {WIDE_MODEL}\nsample_rows: {sample_rows}\nretrain:\n  enabled: false\n", encoding="utf-8")
    return Home(settings, warehouse, registry), frame


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
