"""The demo's declared checks and its last weeks of deliveries, ingested for real.

The early season is bulk-loaded (it was delivered before the checks existed); the last
weeks arrive as daily CSV files through :func:`mlops_app.ingest.ingest_file`, exactly as a
grading line's export would, and a few of them are bad in the ways real deliveries are:

- a firmness sensor that reports zeros for part of a day (rows quarantined),
- a block whose colour readings are missing (rows pass with a warning),
- the same day's file delivered twice (detected by its content hash, nothing duplicated),
- a file from the old export format without the sugar column (the batch is rejected).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from mlops_app.auth import Identity
from mlops_app.ingest import IngestResult, ingest_file
from mlops_app.quality import checks_from_yaml, save_checks
from mlops_app.warehouse import Warehouse

DATASET = "apple_harvest"
INCOMING_FOLDER = "demo/incoming"

CHECKS_YAML = """
dataset: apple_harvest
checks:
  - name: columns_present
    kind: required_columns
    columns: [apple_id, graded_at, orchard_block, variety, weight_g, diameter_mm, colour_score,
              blemish_area_mm2, firmness_n, sugar_brix]
    description: Every measurement the grading line exports must be in the file
  - name: apple_id_unique
    kind: unique
    columns: [apple_id]
    description: Each apple is graded once; a repeated tray label means a double delivery
  - name: deliveries_size
    kind: row_count
    min: {min_rows}
    max: {max_rows}
    description: A day's delivery holds between {min_rows:,} and {max_rows:,} apples
  - name: data_is_recent
    kind: freshness
    column: graded_at
    max_age_hours: 48
    severity: warn
    description: The newest apple in a delivery was graded within the last 48 hours
  - name: weight_range
    kind: range
    column: weight_g
    min: 50
    max: 500
    description: Weight must be between 50 and 500 g
  - name: diameter_range
    kind: range
    column: diameter_mm
    min: 40
    max: 130
    description: Diameter must be between 40 and 130 mm
  - name: firmness_range
    kind: range
    column: firmness_n
    min: 15
    max: 120
    description: Firmness must be between 15 and 120 N; 0 means the penetrometer failed
  - name: sugar_range
    kind: range
    column: sugar_brix
    min: 5
    max: 25
    description: Sugar must be between 5 and 25 °Bx
  - name: colour_range
    kind: range
    column: colour_score
    min: 0
    max: 100
    description: Colour coverage is a percentage, 0 to 100
  - name: colour_present
    kind: not_null
    column: colour_score
    severity: warn
    description: Every apple should have a colour reading; the grader still works without it
  - name: variety_known
    kind: allowed_values
    column: variety
    values: [gala, fuji, honeycrisp, granny_smith]
    description: Only the orchard's four varieties
  - name: block_known
    kind: allowed_values
    column: orchard_block
    values: [block-a, block-b, block-c, block-d, block-e, block-f, block-g, block-h]
    severity: warn
    description: Apples come from the orchard's known blocks
  - name: weight_distribution
    kind: distribution
    column: weight_g
    reference: {{last_days: 28}}
    statistic: wasserstein
    threshold: 0.25
    severity: warn
    description: A day's weights look like the last four weeks' (a scale fault shows here first)
"""


def _write_day(frame: pd.DataFrame, folder: Path, name: str) -> Path:
    path = folder / name
    frame.to_csv(path, index=False)
    return path


def demo_checks_yaml(apples_per_day: int) -> str:
    """The demo's checks; a day's size bounds follow the configured deliveries (quiet Sundays are half)."""
    return CHECKS_YAML.format(min_rows=max(apples_per_day // 8, 5), max_rows=apples_per_day * 4)


def ingest_recent_days(
    warehouse: Warehouse,
    home: Path,
    recent: pd.DataFrame,
    identity: Identity,
    *,
    seed: int,
    apples_per_day: int,
    progress: Callable[[str], None] = lambda message: None,
) -> list[IngestResult]:
    """Declare the checks, then ingest ``recent`` day by day as CSV deliveries, bad ones included.

    Args:
        recent: the generated rows of the days to deliver (harvest_date column).
    """
    save_checks(home, checks_from_yaml(demo_checks_yaml(apples_per_day), dataset=DATASET), identity=identity)
    folder = home / INCOMING_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + 1)
    days = sorted(recent["harvest_date"].unique())
    bad = {
        "zeros": days[len(days) // 4],
        "missing_colour": days[len(days) // 2],
        "duplicate": days[(2 * len(days)) // 3],
        "old_format": days[(5 * len(days)) // 6],
    }
    results = []
    progress(f"Delivering the last {len(days)} days through the quality checks")
    for day in days:
        rows = recent[recent["harvest_date"] == day].reset_index(drop=True)
        now = pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=19)
        name = f"grading-line-{day}.csv"
        if day == bad["zeros"]:
            # The firmness penetrometer failed after lunch and reported zeros.
            afternoon = rows["graded_at"].dt.hour >= 13
            rows.loc[afternoon & (rng.random(len(rows)) < 0.8), "firmness_n"] = 0.0
        if day == bad["missing_colour"]:
            rows.loc[rows["orchard_block"] == "block-c", "colour_score"] = np.nan
        if day == bad["old_format"]:
            # A file from the old export, before sugar was measured: refused whole.
            old = _write_day(rows.drop(columns=["sugar_brix"]), folder, f"grading-line-{day}-old-export.csv")
            results.append(ingest_file(warehouse, DATASET, old, identity=identity, home=home, now=now.to_pydatetime(), raise_on_reject=False))
            now = now + pd.Timedelta(hours=2)
        path = _write_day(rows, folder, name)
        results.append(ingest_file(warehouse, DATASET, path, identity=identity, home=home, now=now.to_pydatetime(), raise_on_reject=False))
        if day == bad["duplicate"]:
            # The export job ran twice: the same file arrives again an hour later.
            results.append(
                ingest_file(
                    warehouse, DATASET, path, identity=identity, home=home, now=(now + pd.Timedelta(hours=1)).to_pydatetime(),
                    source_name=f"grading-line-{day} (resent).csv", raise_on_reject=False,
                )
            )  # fmt: skip
    return results


def split_recent(frame: pd.DataFrame, days: int) -> tuple[pd.DataFrame, pd.DataFrame, date]:
    """Split the season into the bulk-loaded early part and the last ``days`` days to deliver."""
    last = max(frame["harvest_date"])
    first_recent = last - timedelta(days=days - 1)
    recent_mask = frame["harvest_date"] >= first_recent
    return frame[~recent_mask], frame[recent_mask], first_recent
