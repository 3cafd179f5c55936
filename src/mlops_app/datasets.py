"""Datasets registered in the warehouse and the tables that hold their rows.

A dataset named ``apple_harvest`` keeps its rows in the table ``ds_apple_harvest``; every
row carries the ``_batch_id`` of the delivery it came in, so a batch can always be traced
(and, for a rejected one, removed) as a whole. Rows that passed with a ``warn`` check
carry the names of those checks in ``_warnings``; rows that failed an ``error`` check are
kept apart in ``qr_apple_harvest`` (the quarantine), with the same columns plus
``_failed_checks``. Columns whose name starts with ``_`` are system columns, never features.

Column types are DuckDB types (``DOUBLE``, ``VARCHAR``, ``TIMESTAMP WITH TIME ZONE``...).
Pandas dtype names (``float64``, ``object``, ``datetime64[us, UTC]``) are accepted too, for
catalogue entries made from a DataFrame, and mapped by :func:`duckdb_type`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import pandas as pd

from mlops_app.errors import InvalidNameError, MlopsError, NotFoundError
from mlops_app.warehouse import Warehouse, quote_identifier

DATASET_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,59}$")
TABLE_PREFIX = "ds_"
QUARANTINE_PREFIX = "qr_"
BATCH_COLUMN = "_batch_id"
WARNINGS_COLUMN = "_warnings"
FAILED_CHECKS_COLUMN = "_failed_checks"
QUARANTINED_AT_COLUMN = "_quarantined_at"
SYSTEM_COLUMNS = (BATCH_COLUMN, WARNINGS_COLUMN, FAILED_CHECKS_COLUMN, QUARANTINED_AT_COLUMN)
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


def quarantine_table(name: str) -> str:
    """The quoted table identifier holding the quarantined rows of dataset ``name``."""
    return quote_identifier(QUARANTINE_PREFIX + validate_dataset_name(name))


# DuckDB types a column may be declared with. Types are written into SQL (CREATE TABLE,
# CAST), where parameters cannot go, so only these spellings are let through.
_PLAIN_TYPES = {
    "BOOLEAN": "BOOLEAN", "BOOL": "BOOLEAN",
    "TINYINT": "TINYINT", "SMALLINT": "SMALLINT", "INTEGER": "INTEGER", "INT": "INTEGER",
    "BIGINT": "BIGINT", "HUGEINT": "HUGEINT", "UTINYINT": "UTINYINT", "USMALLINT": "USMALLINT",
    "UINTEGER": "UINTEGER", "UBIGINT": "UBIGINT",
    "FLOAT": "FLOAT", "REAL": "FLOAT", "DOUBLE": "DOUBLE",
    "VARCHAR": "VARCHAR", "TEXT": "VARCHAR", "STRING": "VARCHAR",
    "DATE": "DATE", "TIME": "TIME",
    "TIMESTAMP": "TIMESTAMP", "DATETIME": "TIMESTAMP", "TIMESTAMP_S": "TIMESTAMP_S",
    "TIMESTAMP_MS": "TIMESTAMP_MS", "TIMESTAMP_NS": "TIMESTAMP_NS",
    "TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE", "TIMESTAMP WITH TIME ZONE": "TIMESTAMP WITH TIME ZONE",
    "UUID": "UUID",
}
_DECIMAL = re.compile(r"DECIMAL\((\d{1,2}),\s*(\d{1,2})\)")
_PANDAS_TYPES = {
    "int8": "TINYINT", "int16": "SMALLINT", "int32": "INTEGER", "int64": "BIGINT",
    "uint8": "UTINYINT", "uint16": "USMALLINT", "uint32": "UINTEGER", "uint64": "UBIGINT",
    "float16": "FLOAT", "float32": "FLOAT", "float64": "DOUBLE",
    "bool": "BOOLEAN", "boolean": "BOOLEAN",
    "object": "VARCHAR", "str": "VARCHAR", "string": "VARCHAR", "category": "VARCHAR",
    "date": "DATE",
}
TYPE_FAMILIES = {
    "BOOLEAN": "boolean",
    **dict.fromkeys(("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"), "integer"),
    **dict.fromkeys(("FLOAT", "DOUBLE"), "number"),
    "VARCHAR": "text", "UUID": "text",
    "DATE": "date", "TIME": "time",
    **dict.fromkeys(("TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "TIMESTAMP WITH TIME ZONE"), "timestamp"),
}


def duckdb_type(dtype: str) -> str:
    """The canonical DuckDB type for a declared column type (DuckDB or pandas spelling).

    Raises:
        MlopsError: the type is not one mlops-app stores; the message lists the accepted ones.
    """
    text = " ".join(str(dtype).split())
    upper = text.upper()
    if upper in _PLAIN_TYPES:
        return _PLAIN_TYPES[upper]
    match = _DECIMAL.fullmatch(upper)
    if match and 0 < int(match[1]) <= 38 and int(match[2]) <= int(match[1]):
        return f"DECIMAL({int(match[1])},{int(match[2])})"
    lower = text.lower()  # pandas' nullable "Int64" / "Float64" map like int64 / float64
    if lower in _PANDAS_TYPES:
        return _PANDAS_TYPES[lower]
    if lower.startswith("datetime64["):
        # "datetime64[us, UTC]" carries a time zone; "datetime64[ns]" does not.
        return "TIMESTAMP WITH TIME ZONE" if "," in lower else "TIMESTAMP"
    raise MlopsError(
        f"Column type {dtype!r} is not supported. Use one of {', '.join(sorted(set(_PLAIN_TYPES.values())))}, "
        "DECIMAL(p,s), or a pandas dtype such as float64, int64, object, bool or datetime64[us, UTC]."
    )


def type_family(duck_type: str) -> str:
    """The family of a DuckDB type (integer, number, text, boolean, date, time, timestamp, other)."""
    upper = str(duck_type).upper()
    if upper.startswith("DECIMAL"):
        return "number"
    return TYPE_FAMILIES.get(upper, "other")


def table_columns(con, table: str) -> dict[str, str]:
    """Column name -> DuckDB type of an existing table (``table`` unquoted), in table order.

    Returns an empty dict when the table does not exist.
    """
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = $1 AND table_schema IN ('main', 'temp') ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return {name: data_type for name, data_type in rows}


def dataset_column_types(con, dataset: Dataset) -> dict[str, str]:
    """The DuckDB type of every column of the dataset (system columns excluded).

    The stored table is the ground truth when it exists (a table made from a DataFrame may
    hold DATE where the catalogue says ``object``); otherwise the declared types are mapped.
    """
    stored = table_columns(con, TABLE_PREFIX + dataset.name)
    if stored:
        declared = [column.name for column in dataset.columns]
        ordered = [name for name in declared if name in stored] + [name for name in stored if name not in declared]
        return {name: stored[name] for name in ordered if not name.startswith("_")}
    return {column.name: duckdb_type(column.dtype) for column in dataset.columns}


def ensure_dataset_tables(con, dataset: Dataset) -> dict[str, str]:
    """Create the dataset's row table and quarantine table when missing, inside ``con``.

    Adds the ``_warnings`` column to a row table made before it existed (e.g. by an older
    demo). Returns the dataset's column types (see :func:`dataset_column_types`).
    """
    types = dataset_column_types(con, dataset)
    if not types:
        raise MlopsError(f"Dataset {dataset.name!r} has no columns registered; register its schema first.")
    table, quarantine = dataset_table(dataset.name), quarantine_table(dataset.name)
    columns_sql = ", ".join(f"{quote_identifier(name)} {duckdb_type(kind)}" for name, kind in types.items())
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {table} ({columns_sql}, {quote_identifier(BATCH_COLUMN)} VARCHAR, "
        f"{quote_identifier(WARNINGS_COLUMN)} VARCHAR[])"
    )
    if WARNINGS_COLUMN not in table_columns(con, TABLE_PREFIX + dataset.name):
        con.execute(f"ALTER TABLE {table} ADD COLUMN {quote_identifier(WARNINGS_COLUMN)} VARCHAR[]")
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {quarantine} ({columns_sql}, {quote_identifier(BATCH_COLUMN)} VARCHAR, "
        f"{quote_identifier(FAILED_CHECKS_COLUMN)} VARCHAR[], {quote_identifier(WARNINGS_COLUMN)} VARCHAR[], "
        f"{quote_identifier(QUARANTINED_AT_COLUMN)} TIMESTAMPTZ)"
    )
    return types


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


def create_dataset_table(con, warehouse: Warehouse, dataset: Dataset, frame: pd.DataFrame, *, replace: bool = False) -> None:
    """Register ``dataset`` and load ``frame`` as its whole table, set-based, inside ``con``'s transaction.

    For bulk loads that are not deliveries (the demo's early season, benchmarks): no checks
    run. Deliveries go through :func:`mlops_app.ingest.ingest_file`.

    Args:
        replace: replace an existing table instead of failing on it.
    """
    register_dataset(warehouse, dataset, con=con)
    verb = "CREATE OR REPLACE TABLE" if replace else "CREATE TABLE"
    con.register("_incoming_frame", frame)
    # No finally: in an aborted transaction unregister fails too and would hide the real error;
    # the registration ends with the connection anyway.
    con.execute(f"{verb} {dataset_table(dataset.name)} AS SELECT * FROM _incoming_frame")
    con.unregister("_incoming_frame")
    refresh_dataset_stats(con, dataset.name, dataset.time_column)


def list_datasets(warehouse: Warehouse) -> pd.DataFrame:
    """Every dataset with its size, batches and times, newest data first.

    ``problem_batches`` counts rejected and partly quarantined deliveries; a re-sent
    duplicate file is recorded as a batch but is not a problem.
    """
    return warehouse.query(
        """
        SELECT d.name, d.description, d.owner, d.source, d.row_count, d.first_event_at, d.last_event_at,
               d.freshness_hours, count(b.batch_id) AS batches,
               count(b.batch_id) FILTER (WHERE b.status IN ('rejected', 'partly_quarantined')) AS problem_batches,
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
        if str(name) not in SYSTEM_COLUMNS
    )
