"""The demo orchard's feature definitions, and the step of the demo build that installs them.

Raw features are named like the columns the demo models were trained on (``weight_g``,
``variety``...), so the models' cards link to them (lineage). The windowed aggregates per
orchard block show what the store adds: the 14-day bad-apple share counts an inspection
only from when its result arrived (``available_at: label_received_at``), never from when
the apple was graded, which would leak labels from the future into training.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mlops_app.auth import Identity
from mlops_app.config import Settings
from mlops_app.features import (
    ApplyResult,
    MaterializeResult,
    apply_features,
    features_folder,
    load_definitions,
    materialize,
)
from mlops_app.warehouse import Warehouse

DEMO_FEATURES_FILE = "orchard.yaml"

DEMO_FEATURES_YAML = """\
# Feature definitions of the demo orchard. `mlops-app features apply` registers every
# file in this folder; `mlops-app features materialize` computes the values.
entities:
  - name: apple
    key: apple_id
    description: One apple that passed the grading line
  - name: orchard_block
    key: orchard_block
    description: A block of the orchard; its apples share soil, age and care

features:
  # Raw measurements of each apple, known when it passes the grading line.
  - name: weight_g
    entity: apple
    dataset: apple_harvest
    value_type: number
    description: Weight in grams, from the grading-line scale
    owner: quality-team@orchard.example
    tags: [measurement, grading-line]
  - name: diameter_mm
    entity: apple
    dataset: apple_harvest
    value_type: number
    description: Largest diameter in millimetres
    owner: quality-team@orchard.example
    tags: [measurement, grading-line]
  - name: colour_score
    entity: apple
    dataset: apple_harvest
    value_type: number
    description: Share of the skin with the variety's ripe colour, in percent
    owner: quality-team@orchard.example
    tags: [measurement, grading-line, camera]
  - name: blemish_area_mm2
    entity: apple
    dataset: apple_harvest
    value_type: number
    description: Visible blemish area in square millimetres
    owner: quality-team@orchard.example
    tags: [measurement, grading-line, camera]
  - name: firmness_n
    entity: apple
    dataset: apple_harvest
    value_type: number
    description: Flesh firmness from the penetrometer, in newtons
    owner: quality-team@orchard.example
    tags: [measurement, grading-line]
  - name: sugar_brix
    entity: apple
    dataset: apple_harvest
    value_type: number
    description: Sugar content in degrees Brix
    owner: packing-team@orchard.example
    tags: [measurement, grading-line]
  - name: variety
    entity: apple
    dataset: apple_harvest
    value_type: text
    description: Apple variety
    owner: orchard-team@orchard.example
    tags: [orchard]
  - name: orchard_block
    entity: apple
    dataset: apple_harvest
    value_type: text
    description: Block of the orchard the apple was picked in
    owner: orchard-team@orchard.example
    tags: [orchard]

  # Recent history of each orchard block, as known just before an apple is graded.
  - name: block_blemish_area_mean_7d
    entity: orchard_block
    dataset: apple_harvest
    kind: aggregate
    expression: blemish_area_mm2
    aggregation: avg
    window: 7d
    value_type: number
    description: Average blemish area of the block's apples graded in the last 7 days
    owner: quality-team@orchard.example
    tags: [orchard, trend]
  - name: block_blemished_share_7d
    entity: orchard_block
    dataset: apple_harvest
    kind: aggregate
    expression: blemish_area_mm2 > 30
    aggregation: share
    window: 7d
    value_type: number
    description: Share of the block's apples graded in the last 7 days with more than 30 mm² of blemishes
    owner: quality-team@orchard.example
    tags: [orchard, trend]
  - name: block_firmness_mean_7d
    entity: orchard_block
    dataset: apple_harvest
    kind: aggregate
    expression: firmness_n
    aggregation: avg
    window: 7d
    value_type: number
    description: Average firmness of the block's apples graded in the last 7 days; falls as fruit ripens
    owner: quality-team@orchard.example
    tags: [orchard, trend, ripeness]
  - name: block_apples_graded_3d
    entity: orchard_block
    dataset: apple_harvest
    kind: aggregate
    expression: apple_id
    aggregation: count
    window: 3d
    value_type: integer
    description: Number of the block's apples graded in the last 3 days (harvest pace)
    owner: orchard-team@orchard.example
    tags: [orchard, volume]
  - name: block_bad_share_14d
    entity: orchard_block
    dataset: apple_harvest
    kind: aggregate
    expression: is_bad
    aggregation: share
    window: 14d
    available_at: label_received_at
    freshness_hours: 168
    value_type: number
    description: >-
      Share of the block's inspected apples found bad, over inspection results received in
      the last 14 days. Counted from when each result arrived, not from grading, so a
      training set never sees a result before it was known.
    owner: quality-team@orchard.example
    tags: [orchard, labels, trend]
"""


@dataclass(frozen=True)
class DemoFeaturesSummary:
    path: Path
    applied: ApplyResult
    materialized: MaterializeResult


def install_demo_features(settings: Settings, warehouse: Warehouse, identity: Identity) -> DemoFeaturesSummary:
    """Write the demo definitions into ``<home>/features/``, apply the folder, compute values.

    Call it after the harvest is loaded (the definitions are checked against it). Applying
    the whole folder means definitions a user added beside the demo's are checked too.

    Raises:
        PermissionDeniedError: the identity may not apply features.
        FeatureDefinitionError: a definition in the folder is invalid.
    """
    folder = features_folder(settings)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / DEMO_FEATURES_FILE
    # Atomic: a reader (or a crash) sees the old file or the new one, never half of it.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(DEMO_FEATURES_YAML, encoding="utf-8")
    os.replace(temporary, path)
    applied = apply_features(warehouse, load_definitions(folder), identity)
    return DemoFeaturesSummary(path, applied, materialize(warehouse, identity))
