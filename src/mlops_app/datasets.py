"""Datasets registered in the warehouse and the tables that hold their rows.

A dataset named ``apple_harvest`` keeps its rows in the table ``ds_apple_harvest``; every
row carries the ``_batch_id`` of the delivery it came in, so a batch can always be traced
(and, for a rejected one, removed) as a whole.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import pandas as pd

from mlops_app.errors import InvalidNameError, NotFoundError
from mlops_app.warehouse import Warehouse, quote_identifier

DATASET_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,59}$")
TABLE_PREFIX = "ds_"
BATCH_COLUMN = "_batch_id"
COLUMN_ROLES = ("id", "timestamp", "feature", "target", "label_time", "other")


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str
    role: str = "feature"
    description: str = ""


@dataclass(frozen=True)
class Dataset:
    """What the warehouse knows about one dataset."""

    name: str
    description: str
    owner: str
    source: str
    columns: tuple[Column, ...] = field(default=())
    target: str | None = None
    id_column: str | None = None
    time_column: str | None = None
    freshness_hours: float | None = None


def validate_dataset_name(name: str) -> str:
    """Return ``name`` if it is a valid dataset name, else raise InvalidNameError naming the rule."""
    if not isinstance(name, str) or not DATASET_NAME_PATTERN.fullmatch(name):
        raise InvalidNameError(
            f"Dataset name {name!r} is not allowed: use 1-60 characters, lowercase letters, digits and '_', "
            "starting with a letter (e.g. apple_harvest)."
        )
    return name


def dataset_table(name: str) -> str:
    """The quoted table identifier holding the rows of dataset ``name``."""
    return quote_identifier(TABLE_PREFIX + validate_dataset_name(name))


def register_dataset(warehouse: Warehouse, dataset: Dataset, con=None) -> None:
    """Insert or update the dataset's catalogue entry (not its rows).

    Args:
        con: an open connection of a running ``warehouse.transaction()`` to join it;
            otherwise the entry is written in its own unit of work.
    """
    validate_dataset_name(dataset.name)
    now = datetime.now(UTC)
    schema = json.dumps([asdict(column) for column in dataset.columns])
    params = [
        dataset.name,
        dataset.description,
        dataset.owner,
        dataset.source,
        schema,
        dataset.target,
        dataset.id_column,
        dataset.time_column,
        dataset.freshness_hours,
        now,
    ]
    sql = """
        INSERT INTO datasets (name, description, owner, source, schema_json, target, id_column,
                              time_column, freshness_hours, created_at, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)
        ON CONFLICT (name) DO UPDATE SET description = excluded.description, owner = excluded.owner,
            source = excluded.source, schema_json = excluded.schema_json, target = excluded.target,
            id_column = excluded.id_column, time_column = excluded.time_column,
            freshness_hours = excluded.freshness_hours, updated_at = excluded.updated_at
    """
    if con is not None:
        con.execute(sql, params)
    else:
        warehouse.execute(sql, params)


def refresh_dataset_stats(con, name: str, time_column: str | None) -> None:
    """Recompute row count and first / last event time from the dataset's table, inside ``con``."""
    table = dataset_table(name)
    if time_column:
        column = quote_identifier(time_column)
        row = con.execute(f"SELECT count(*), min({column}), max({column}) FROM {table}").fetchone()
    else:
        row = (con.execute(f"SELECT count(*) FROM {table}").fetchone()[0], None, None)
    con.execute(
        "UPDATE datasets SET row_count = $1, first_event_at = $2, last_event_at = $3, updated_at = $4 WHERE name = $5",
        [row[0], row[1], row[2], datetime.now(UTC), name],
    )


def list_datasets(warehouse: Warehouse) -> pd.DataFrame:
    """Every dataset with its size, batches and times, newest data first."""
    return warehouse.query(
        """
        SELECT d.name, d.description, d.owner, d.source, d.row_count, d.first_event_at, d.last_event_at,
               d.freshness_hours, count(b.batch_id) AS batches,
               count(b.batch_id) FILTER (WHERE b.status <> 'accepted') AS problem_batches,
               max(b.received_at) AS last_received_at
        FROM datasets d LEFT JOIN batches b ON b.dataset = d.name
        GROUP BY ALL
        ORDER BY d.last_event_at DESC NULLS LAST, d.name
        """
    )


def get_dataset(warehouse: Warehouse, name: str) -> Dataset:
    """The catalogue entry of ``name``.

    Raises:
        NotFoundError: no such dataset; the message lists the known ones.
    """
    validate_dataset_name(name)
    row = warehouse.query_one(
        "SELECT name, description, owner, source, schema_json, target, id_column, time_column, freshness_hours "
        "FROM datasets WHERE name = $1",
        [name],
    )
    if row is None:
        known = ", ".join(list_datasets(warehouse)["name"]) or "none yet"
        raise NotFoundError(f"No dataset named {name!r}. Known datasets: {known}.")
    columns = tuple(Column(**column) for column in json.loads(row[4] or "[]"))
    return Dataset(row[0], row[1] or "", row[2] or "", row[3] or "", columns, row[5], row[6], row[7], row[8])


def columns_from_frame(frame: pd.DataFrame, roles: dict[str, str], descriptions: dict[str, str] | None = None) -> Sequence[Column]:
    """Column entries for a frame, with roles (default ``feature``) and optional descriptions."""
    descriptions = descriptions or {}
    return tuple(
        Column(str(name), str(dtype), roles.get(str(name), "feature"), descriptions.get(str(name), ""))
        for name, dtype in frame.dtypes.items()
        if name != BATCH_COLUMN
    )
