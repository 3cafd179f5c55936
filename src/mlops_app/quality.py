"""Data-quality checks: declared as data, run as DuckDB SQL, read back for the page.

Three parts, kept apart on purpose (STYLE.md, "configured vs computed"):

1. **Declarations.** One :class:`DatasetChecks` per dataset, a frozen pydantic model saved
   as ``<home>/checks/<dataset>.yaml`` (see :func:`load_checks`, :func:`save_checks`). Each
   check has a ``name`` (unique in the file), a ``kind``, a ``severity`` and a plain-language
   ``description`` shown to stakeholders. Example::

       dataset: apple_harvest
       checks:
         - name: weight_range
           kind: range
           column: weight_g
           min: 80
           max: 400
           severity: error
           description: Weight must be between 80 and 400 g
         - name: apple_id_unique
           kind: unique
           columns: [apple_id]
           description: Every apple is graded once

2. **The engine** (:func:`evaluate_checks`). Row-level kinds (``not_null``, ``range``,
   ``allowed_values``, ``unique``) become SQL predicates, true for a failing row; one
   statement evaluates them all and keeps only the failing rows' ids with the names of the
   checks they broke (the "flags" table), so a 10M-row batch is checked without leaving
   DuckDB. Batch-level kinds (``schema``, ``required_columns``, ``null_share``,
   ``row_count``, ``freshness``, ``distribution``) are aggregates over the same relation.

3. **Reads for the page** (:func:`scorecard`, :func:`check_history`, :func:`failing_rows`,
   :func:`column_profile`, :func:`list_batches`): small results computed in DuckDB.

Severity semantics, applied by :mod:`mlops_app.ingest`: a row failing an ``error`` check is
quarantined; a row failing only ``warn`` checks is loaded with the check names in its
``_warnings`` column; a batch-level ``error`` failure rejects the whole batch; a batch-level
``warn`` failure is recorded and the batch is loaded.

Statuses of a result: ``pass``; ``fail`` (an error check found problems); ``warn`` (a warn
check found problems); ``skipped`` (the check could not run, e.g. no reference data yet,
with the reason in the message). Shares are failed rows / all rows of the relation.

YAML note: YAML 1.1 reads unquoted ``yes``, ``no``, ``on``, ``off`` as booleans; quote such
category values (``values: ["yes", "no"]``). :func:`save_checks` always writes them quoted.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import pandas as pd
import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from mlops_app.auth import Identity, require
from mlops_app.datasets import (
    BATCH_COLUMN,
    FAILED_CHECKS_COLUMN,
    QUARANTINE_PREFIX,
    QUARANTINED_AT_COLUMN,
    TABLE_PREFIX,
    WARNINGS_COLUMN,
    Dataset,
    dataset_table,
    duckdb_type,
    get_dataset,
    quarantine_table,
    table_columns,
    type_family,
    validate_dataset_name,
)
from mlops_app.errors import ConfigError, InvalidNameError, MlopsError, NotFoundError
from mlops_app.status import Status
from mlops_app.warehouse import IDENTIFIER_PATTERN, IDENTIFIER_RULE, Warehouse, quote_identifier

__all__ = [
    "CHECKS_FOLDER",
    "AllowedValuesCheck",
    "Check",
    "CheckResult",
    "CheckTarget",
    "ChecksConfigError",
    "ColumnProfile",
    "DatasetChecks",
    "DistributionCheck",
    "FreshnessCheck",
    "NotNullCheck",
    "NullShareCheck",
    "RangeCheck",
    "ReferenceWindow",
    "RequiredColumnsCheck",
    "RowCountCheck",
    "SchemaCheck",
    "SqlPredicate",
    "UniqueCheck",
    "check_history",
    "checks_from_yaml",
    "checks_path",
    "checks_to_yaml",
    "column_profile",
    "evaluate_checks",
    "failing_rows",
    "list_batches",
    "load_checks",
    "quality_verdict",
    "row_predicate",
    "save_checks",
    "scorecard",
    "suggest_checks",
]

CHECKS_FOLDER = "checks"
FLAGS_TABLE = "_mlops_flags"
# Built-in result recorded for every delivery: could the file be read as the dataset?
FILE_CHECK_NAME = "file_readable"
# Above this many distinct values a category distribution is not a useful comparison
# (it is an id), and fetching the counts would be the expensive part.
MAX_CATEGORIES = 10_000
MAX_SAMPLE = 200_000
DEFAULT_DRIFT_THRESHOLD = {"wasserstein": 0.1, "psi": 0.1, "total_variation": 0.1}
STATISTIC_WORDS = {
    "wasserstein": "Wasserstein distance (in reference standard deviations)",
    "psi": "population stability index (PSI)",
    "total_variation": "total variation distance (share of values that moved between categories)",
}


class ChecksConfigError(ConfigError):
    """A checks file or a check declaration is invalid (the message names file, check and field)."""


# --- Declarations ------------------------------------------------------------------------


def _identifier(value: str) -> str:
    if IDENTIFIER_PATTERN.fullmatch(value) is None:
        raise ValueError(f"{value!r} is not a column name: use {IDENTIFIER_RULE}")
    return value


def _check_type(value: str) -> str:
    try:
        return duckdb_type(value)
    except MlopsError as error:
        raise ValueError(str(error)) from None


ColumnName = Annotated[str, AfterValidator(_identifier)]
CheckName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
ColumnType = Annotated[str, AfterValidator(_check_type)]
# Numbers, or dates / times (YAML `2026-06-01` or a quoted ISO text), cast to the column's type.
Bound = float | int | date | datetime


class _CheckBase(BaseModel):
    """Fields every check has. ``level`` says whether it judges single rows or the batch."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    level: ClassVar[str] = "batch"

    name: CheckName
    severity: Literal["error", "warn"] = "error"
    description: str = ""

    @property
    def columns_used(self) -> tuple[str, ...]:
        column = getattr(self, "column", None)
        return (column,) if column else ()

    @property
    def text(self) -> str:
        """The description, or a generated one when the file gives none."""
        return self.description or self._default_text()

    def _default_text(self) -> str:  # pragma: no cover - every kind overrides it
        return self.name


class SchemaCheck(_CheckBase):
    """The file has these columns, with values of these types (batch-level).

    Types are compared by family (integer, number, text, timestamp...): a Parquet file
    writing weights as text fails; INTEGER delivered for DOUBLE passes (widening). CSV
    values are text by nature: there the type part is whether every value can be read,
    which ingestion already guarantees. ``allow_extra_columns: false`` also fails on
    columns the check does not list.
    """

    kind: Literal["schema"] = "schema"
    columns: dict[ColumnName, ColumnType] = Field(min_length=1)
    allow_extra_columns: bool = True

    @property
    def columns_used(self) -> tuple[str, ...]:
        return tuple(self.columns)

    def _default_text(self) -> str:
        return "The file has the expected columns and types"


class RequiredColumnsCheck(_CheckBase):
    """These columns must be present in the delivered file (batch-level)."""

    kind: Literal["required_columns"] = "required_columns"
    columns: tuple[ColumnName, ...] = Field(min_length=1)

    @property
    def columns_used(self) -> tuple[str, ...]:
        return self.columns

    def _default_text(self) -> str:
        return f"The file must contain {', '.join(self.columns)}"


class NotNullCheck(_CheckBase):
    """Every row has a value in ``column`` (row-level; NaN counts as missing)."""

    kind: Literal["not_null"] = "not_null"
    level: ClassVar[str] = "row"
    column: ColumnName

    def _default_text(self) -> str:
        return f"{self.column} must not be empty"


class NullShareCheck(_CheckBase):
    """At most ``max_share`` (0-1) of the batch's values in ``column`` are missing (batch-level)."""

    kind: Literal["null_share"] = "null_share"
    column: ColumnName
    max_share: float = Field(ge=0, le=1)

    def _default_text(self) -> str:
        return f"At most {self.max_share:.1%} of {self.column} values may be missing"


class RangeCheck(_CheckBase):
    """Values of ``column`` lie in [min, max], bounds inclusive, either may be omitted (row-level).

    Empty values pass (``not_null`` judges them). Bounds are cast to the column's type, so
    dates and times work too (``min: 2026-01-01``).
    """

    kind: Literal["range"] = "range"
    level: ClassVar[str] = "row"
    column: ColumnName
    min: Bound | None = None
    max: Bound | None = None

    @model_validator(mode="after")
    def _has_a_bound(self) -> RangeCheck:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        numbers = (int, float)
        if isinstance(self.min, numbers) and isinstance(self.max, numbers) and self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self

    def _default_text(self) -> str:
        if self.min is not None and self.max is not None:
            return f"{self.column} must be between {self.min} and {self.max}"
        if self.min is not None:
            return f"{self.column} must be at least {self.min}"
        return f"{self.column} must be at most {self.max}"


class AllowedValuesCheck(_CheckBase):
    """Values of ``column`` are one of ``values`` (row-level; empty values pass)."""

    kind: Literal["allowed_values"] = "allowed_values"
    level: ClassVar[str] = "row"
    column: ColumnName
    values: tuple[str | int | float | bool, ...] = Field(min_length=1)

    def _default_text(self) -> str:
        shown = ", ".join(str(value) for value in self.values[:8]) + (", ..." if len(self.values) > 8 else "")
        return f"{self.column} must be one of {shown}"


class UniqueCheck(_CheckBase):
    """No two rows share a value of ``columns`` (row-level).

    A row fails when its key appears more than once in the batch (every copy fails: which
    one is right cannot be known) or is already stored in the dataset. Rows with an empty
    key part are not judged here (``not_null`` does). ``column: x`` is short for
    ``columns: [x]``.
    """

    kind: Literal["unique"] = "unique"
    level: ClassVar[str] = "row"
    columns: tuple[ColumnName, ...] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _column_shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict) and "column" in data and "columns" not in data:
            data = {**data, "columns": [data["column"]]}
            del data["column"]
        return data

    @property
    def columns_used(self) -> tuple[str, ...]:
        return self.columns

    def _default_text(self) -> str:
        return f"Each {' + '.join(self.columns)} appears only once"


class RowCountCheck(_CheckBase):
    """The batch has between ``min`` and ``max`` rows (batch-level; skipped on stored data)."""

    kind: Literal["row_count"] = "row_count"
    min: int | None = Field(default=1, ge=0)
    max: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> RowCountCheck:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self

    def _default_text(self) -> str:
        if self.max is None:
            return f"A delivery has at least {self.min or 0:,} rows"
        return f"A delivery has between {self.min or 0:,} and {self.max:,} rows"


class FreshnessCheck(_CheckBase):
    """The newest value of ``column`` is at most ``max_age_hours`` old (batch-level).

    Age is measured against the ingestion time (or the ``now`` given to ingest / recheck).
    ``column`` defaults to the dataset's time column. A DATE column counts from the start
    of its newest day.
    """

    kind: Literal["freshness"] = "freshness"
    column: ColumnName | None = None
    max_age_hours: float = Field(gt=0)

    def _default_text(self) -> str:
        return f"The newest {self.column or 'event time'} is at most {self.max_age_hours:g} hours old"


class ReferenceWindow(BaseModel):
    """Which stored rows a distribution is compared with.

    Either ``last_days: N`` (the N days up to the newest stored event, so a re-run gives the
    same answer whatever the wall clock says) or a fixed ``start`` / ``end`` (a date in
    ``end`` includes that whole day). ``time_column`` defaults to the dataset's.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    last_days: float | None = Field(default=None, gt=0)
    start: date | datetime | None = None
    end: date | datetime | None = None
    time_column: ColumnName | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> ReferenceWindow:
        fixed = self.start is not None or self.end is not None
        if (self.last_days is None) == (not fixed):
            raise ValueError("give either last_days, or start and/or end")
        return self

    def describe(self) -> str:
        if self.last_days is not None:
            return f"the last {self.last_days:g} days of stored data"
        return f"stored data from {self.start or 'the beginning'} to {self.end or 'now'}"


class DistributionCheck(_CheckBase):
    """The batch's values of ``column`` are distributed like a reference window (batch-level).

    Statistics, all computed in DuckDB:

    * ``wasserstein`` (numeric default): the first Wasserstein distance between the two
      empirical distributions, divided by the reference's population standard deviation
      (floored at 0.001). Same definition as Evidently's ``wasserstein`` drift method.
    * ``psi`` (categorical default): population stability index. For categories, shares per
      value with Evidently's rule for empty cells, so it matches Evidently's ``psi``. For
      numbers, ``bins`` bins at the reference's quantiles (Evidently bins differently, so
      numeric PSI values are close to Evidently's but not equal).
    * ``total_variation``: half the sum of absolute share differences across categories.

    The check fails when the statistic is at or above ``threshold`` (default 0.1). With fewer
    than ``min_rows`` rows on either side it is skipped. Numeric statistics on more than
    200,000 values a side use a repeatable hash sample of about 200,000 rows (the sort is
    the cost; the sampling error is about 0.002 standard deviations).
    """

    kind: Literal["distribution"] = "distribution"
    column: ColumnName
    reference: ReferenceWindow
    statistic: Literal["wasserstein", "psi", "total_variation"] | None = None
    threshold: float | None = Field(default=None, gt=0)
    bins: int = Field(default=10, ge=2, le=100)
    min_rows: int = Field(default=30, ge=1)

    def _default_text(self) -> str:
        return f"{self.column} is distributed like {self.reference.describe()}"


Check = Annotated[
    SchemaCheck
    | RequiredColumnsCheck
    | NotNullCheck
    | NullShareCheck
    | RangeCheck
    | AllowedValuesCheck
    | UniqueCheck
    | RowCountCheck
    | FreshnessCheck
    | DistributionCheck,
    Field(discriminator="kind"),
]
CHECK_KINDS = (
    "schema", "required_columns", "not_null", "null_share", "range", "allowed_values",
    "unique", "row_count", "freshness", "distribution",
)


class DatasetChecks(BaseModel):
    """All checks declared for one dataset (the content of ``checks/<dataset>.yaml``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dataset: str = Field(pattern=r"^[a-z][a-z0-9_]{0,59}$")
    checks: tuple[Check, ...] = ()

    @model_validator(mode="after")
    def _unique_names(self) -> DatasetChecks:
        seen: set[str] = set()
        for check in self.checks:
            if check.name in seen:
                raise ValueError(f"two checks are named {check.name!r}; names must be unique")
            seen.add(check.name)
        return self

    def get(self, name: str) -> Check:
        """The check called ``name``. Raises NotFoundError listing the known names."""
        for check in self.checks:
            if check.name == name:
                return check
        known = ", ".join(check.name for check in self.checks) or "none"
        raise NotFoundError(f"Dataset {self.dataset!r} has no check named {name!r}. Its checks: {known}.")

    def validate_against(self, dataset: Dataset, column_types: Mapping[str, str] | None = None) -> None:
        """Check that every referenced column exists and suits the check.

        Args:
            column_types: the dataset's DuckDB column types; from the catalogue when omitted.

        Raises:
            ChecksConfigError: naming the check, the column and what is wrong.
        """
        types = dict(column_types) if column_types is not None else {c.name: duckdb_type(c.dtype) for c in dataset.columns}
        known = ", ".join(types)
        for check in self.checks:
            where = f"Check {check.name!r} of dataset {dataset.name!r}"
            for column in check.columns_used:
                if column not in types:
                    raise ChecksConfigError(f"{where} uses column {column!r}, which the dataset does not have. Columns: {known}.")
            if isinstance(check, FreshnessCheck | DistributionCheck):
                time_column = check.column if isinstance(check, FreshnessCheck) else check.reference.time_column
                time_column = time_column or dataset.time_column
                if not time_column:
                    raise ChecksConfigError(f"{where} needs a time column: set `column` (or reference.time_column), or register the dataset's time column.")
                if time_column not in types:
                    raise ChecksConfigError(f"{where} uses time column {time_column!r}, which the dataset does not have. Columns: {known}.")
                if type_family(types[time_column]) not in ("timestamp", "date"):
                    raise ChecksConfigError(f"{where}: column {time_column!r} is {types[time_column]}, not a date or time.")
            if isinstance(check, DistributionCheck):
                family = type_family(types[check.column])
                if check.statistic == "wasserstein" and family not in ("integer", "number"):
                    raise ChecksConfigError(f"{where}: the wasserstein statistic needs a numeric column; {check.column!r} is {types[check.column]}. Use psi.")
            if isinstance(check, RangeCheck) and type_family(types[check.column]) in ("text", "boolean"):
                raise ChecksConfigError(f"{where}: a range needs a numeric, date or time column; {check.column!r} is {types[check.column]}. Use allowed_values.")


# --- Checks files ------------------------------------------------------------------------


def checks_path(home: Path | str, dataset: str) -> Path:
    """``<home>/checks/<dataset>.yaml``; the name is validated so the path stays in the folder."""
    folder = (Path(home).expanduser().resolve() / CHECKS_FOLDER)
    path = (folder / f"{validate_dataset_name(dataset)}.yaml").resolve()
    if path.parent != folder:  # pragma: no cover - the name rule already forbids separators
        raise InvalidNameError(f"Dataset name {dataset!r} would leave the checks folder.")
    return path


def _format_validation_error(error: ValidationError, data: Any, source: str) -> str:
    problems: list[str] = []
    seen: set[tuple[str, str]] = set()
    for item in error.errors():
        location = item["loc"]
        if len(location) >= 2 and location[0] == "checks" and isinstance(location[1], int):
            index = location[1]
            raw = data.get("checks", [])[index] if isinstance(data, dict) else None
            name = raw.get("name") if isinstance(raw, dict) else None
            where = f"check {name!r} (number {index + 1})" if name else f"check number {index + 1}"
            # loc is ("checks", i, <kind tag>, field, ...): the field follows the tag.
            fields = [str(part) for part in location[3:4]]
        else:
            where = "the file"
            fields = [str(part) for part in location[:1]]
        field_text = f", field {fields[0]!r}" if fields else ""
        message = item["msg"].removeprefix("Value error, ")
        key = (where + field_text, "")
        if key in seen:  # a union field reports once per member type; the first is enough
            continue
        seen.add(key)
        problems.append(f"{where}{field_text}: {message}")
    return f"{source} is not a valid checks file: " + "; ".join(problems) + "."


def checks_from_yaml(text: str, *, dataset: str | None = None, source: str = "The checks text") -> DatasetChecks:
    """Parse and validate checks from YAML text (a file's content, or an admin's edit).

    Args:
        dataset: when given, the file must declare this dataset.
        source: how to name the text in messages (e.g. the file path).

    Raises:
        ChecksConfigError: bad YAML, or a check with a bad field; names the check and field.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ChecksConfigError(f"{source} is not valid YAML: {error}.") from None
    if data is None:
        data = {"dataset": dataset, "checks": []}
    if not isinstance(data, dict):
        raise ChecksConfigError(f"{source} must be a mapping with `dataset:` and `checks:` keys.")
    if dataset is not None:
        data.setdefault("dataset", dataset)
        if data["dataset"] != dataset:
            raise ChecksConfigError(f"{source} declares dataset {data['dataset']!r} but belongs to {dataset!r}.")
    if data.get("checks") is None:
        data["checks"] = []
    try:
        return DatasetChecks.model_validate(data)
    except ValidationError as error:
        raise ChecksConfigError(_format_validation_error(error, data, source)) from None


def checks_to_yaml(checks: DatasetChecks) -> str:
    """YAML text of ``checks`` (fields at their default value left out, strings quoted as needed)."""
    payload = checks.model_dump(mode="json", exclude_defaults=True)
    payload["dataset"] = checks.dataset
    # Keys in reading order: what, on which column, the rule, then severity and description.
    first, last = ("name", "kind", "column", "columns"), ("severity", "description")
    payload["checks"] = [
        {
            "name": check.name,
            "kind": check.kind,
            **{key: item[key] for key in first if key in item and key not in ("name", "kind")},
            **{key: value for key, value in item.items() if key not in first + last},
            **{key: item[key] for key in last if key in item},
        }
        for check, item in zip(checks.checks, payload.get("checks", []), strict=True)
    ]
    return yaml.safe_dump(payload, sort_keys=False, allow_unicode=True, width=100)


def load_checks(home: Path | str, dataset: str) -> DatasetChecks:
    """The checks declared for ``dataset`` in ``<home>/checks/<dataset>.yaml``.

    Returns an empty :class:`DatasetChecks` when the file does not exist.

    Raises:
        ChecksConfigError: the file is invalid; the message names the file, check and field.
    """
    path = checks_path(home, dataset)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return DatasetChecks(dataset=dataset)
    return checks_from_yaml(text, dataset=dataset, source=f"Checks file {path}")


def save_checks(
    home: Path | str,
    checks: DatasetChecks,
    *,
    identity: Identity,
    dataset: Dataset | None = None,
    column_types: Mapping[str, str] | None = None,
) -> Path:
    """Write ``checks`` to ``<home>/checks/<dataset>.yaml`` atomically (temp file, then rename).

    Args:
        dataset: when given, the checks are validated against its columns first.

    Raises:
        PermissionDeniedError: the identity may not edit checks (admins only).
        ChecksConfigError: the checks reference columns the dataset lacks.
    """
    require(identity, "edit_checks")
    if dataset is not None:
        checks.validate_against(dataset, column_types)
    path = checks_path(home, checks.dataset)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    header = f"# Data-quality checks of dataset {checks.dataset}; edited by {identity.email} on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.\n"
    temporary.write_text(header + checks_to_yaml(checks), encoding="utf-8")
    os.replace(temporary, path)
    return path


# --- The engine --------------------------------------------------------------------------


@dataclass(frozen=True)
class SqlPredicate:
    """A SQL boolean expression over a relation aliased ``t``, true for a failing row.

    ``params`` fill its ``?`` placeholders in order. Identifiers inside are quoted by
    :func:`quote_identifier`; values always travel as parameters.
    """

    sql: str
    params: tuple[Any, ...] = ()


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check on one relation."""

    name: str
    kind: str
    level: str  # "row" or "batch"
    severity: str
    column: str | None
    status: str  # pass | warn | fail | skipped
    failed_rows: int
    total_rows: int
    detail: dict[str, Any]
    message: str
    description: str
    predicate: SqlPredicate | None = None

    @property
    def share(self) -> float:
        return self.failed_rows / self.total_rows if self.total_rows else 0.0

    @property
    def rejects_batch(self) -> bool:
        return self.level == "batch" and self.status == "fail"


@dataclass(frozen=True)
class CheckTarget:
    """What a check run looks at.

    Attributes:
        dataset: the catalogue entry (time column for freshness and reference windows).
        relation: unquoted name of the table holding the rows to check (a staged batch in a
            temp table, or the dataset's table for stored data).
        column_types: DuckDB type of each dataset column in ``relation``.
        arrived_columns: for a delivery, the file's own columns and types (name -> type);
            None when checking stored data (then the table's columns are used).
        text_source: the file is CSV, so its types are text and castability is the type test.
        history_table: unquoted table of already-stored rows, for ``unique`` and reference
            windows; None on a first delivery.
        current_relation: rows a ``distribution`` check compares (default ``relation``).
        exclude_batch: batch id left out of the reference window.
        is_delivery: row-count bounds apply only to a delivery.
    """

    dataset: Dataset
    relation: str
    column_types: Mapping[str, str]
    arrived_columns: Mapping[str, str] | None = None
    text_source: bool = False
    history_table: str | None = None
    current_relation: str | None = None
    exclude_batch: str | None = None
    is_delivery: bool = True


def _column(name: str, alias: str = "t") -> str:
    return f"{alias}.{quote_identifier(name)}"


def _is_float(column_type: str) -> bool:
    return column_type.upper() in ("FLOAT", "DOUBLE")


def _missing_sql(name: str, column_type: str, alias: str = "t") -> str:
    column = _column(name, alias)
    # NaN is a value to DuckDB but "missing" to pandas and Evidently; count it as missing.
    return f"({column} IS NULL OR isnan({column}))" if _is_float(column_type) else f"({column} IS NULL)"


def row_predicate(check: Check, target: CheckTarget) -> SqlPredicate:
    """The SQL predicate selecting the rows that fail a row-level ``check`` in ``target.relation``.

    The same predicate drives quarantine at ingestion and drill-down on stored data.

    Raises:
        ValueError: ``check`` is batch-level.
    """
    types = target.column_types
    if isinstance(check, NotNullCheck):
        return SqlPredicate(_missing_sql(check.column, types[check.column]))
    if isinstance(check, RangeCheck):
        column, kind = _column(check.column), duckdb_type(types[check.column])
        present = f"{column} IS NOT NULL" + (f" AND NOT isnan({column})" if _is_float(kind) else "")
        outside, params = [], []
        if check.min is not None:
            outside.append(f"{column} < CAST(? AS {kind})")
            params.append(_bound_param(check.min))
        if check.max is not None:
            outside.append(f"{column} > CAST(? AS {kind})")
            params.append(_bound_param(check.max))
        return SqlPredicate(f"({present} AND ({' OR '.join(outside)}))", tuple(params))
    if isinstance(check, AllowedValuesCheck):
        column, kind = _column(check.column), duckdb_type(types[check.column])
        values = [str(value).lower() if isinstance(value, bool) else str(value) for value in check.values]
        # The list travels as text and is cast to the column's type, so 1 and "1" both match an INTEGER column.
        return SqlPredicate(f"({column} IS NOT NULL AND NOT list_contains(CAST(CAST(? AS VARCHAR[]) AS {kind}[]), {column}))", (values,))
    if isinstance(check, UniqueCheck):
        keys = ", ".join(_column(name) for name in check.columns)
        bare = ", ".join(quote_identifier(name) for name in check.columns)
        present = " AND ".join(f"{_column(name)} IS NOT NULL" for name in check.columns)
        relation = quote_identifier(target.relation)
        # Group 64-bit hashes first (twice as fast as grouping 10M strings, measured), then
        # confirm the few candidate keys exactly, so a hash collision never fails a row.
        candidates = f"SELECT hash({bare}) FROM {relation} GROUP BY 1 HAVING count(*) > 1"
        parts = [f"({keys}) IN (SELECT {bare} FROM {relation} WHERE hash({bare}) IN ({candidates}) GROUP BY ALL HAVING count(*) > 1)"]
        if target.history_table and target.history_table != target.relation:
            history = quote_identifier(target.history_table)
            # Narrow the stored side to keys of this batch first, so the hash table is built
            # from the (small) overlap and not from every stored row.
            parts.append(f"({keys}) IN (SELECT {bare} FROM {history} WHERE ({bare}) IN (SELECT {bare} FROM {relation}))")
        return SqlPredicate(f"({present} AND ({' OR '.join(parts)}))")
    raise ValueError(f"Check {check.name!r} ({check.kind}) is batch-level and has no row predicate.")


def _bound_param(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _status_for(check: Check, problem: bool) -> str:
    if not problem:
        return "pass"
    return "fail" if check.severity == "error" else "warn"


def _rows_text(count: int) -> str:
    return f"{count:,} row{'s' if count != 1 else ''}"


def evaluate_checks(
    con,
    target: CheckTarget,
    checks: Sequence[Check],
    *,
    now: datetime | None = None,
    flags_table: str = FLAGS_TABLE,
) -> list[CheckResult]:
    """Run ``checks`` over ``target.relation`` inside an open DuckDB connection.

    Row-level checks are evaluated in one statement that writes ``flags_table`` (a temp
    table): one row per failing row of the relation, ``_row`` (its rowid), ``_errors`` and
    ``_warnings`` (names of the error / warn checks it broke). The caller uses it to split
    accepted from quarantined rows, and drops it when done.

    Args:
        con: an open connection (of a warehouse unit of work).
        now: the reference time for freshness; the current time when omitted.

    Returns:
        One result per check, in the order given.
    """
    now = _aware(now or datetime.now(UTC))
    relation = quote_identifier(target.relation)
    total = int(con.execute(f"SELECT count(*) FROM {relation}").fetchone()[0])
    row_checks = [check for check in checks if check.level == "row"]
    counts = _run_row_checks(con, target, row_checks, flags_table) if row_checks else {}
    aggregates = _batch_aggregates(con, target, checks)

    results: list[CheckResult] = []
    for check in checks:
        if check.level == "row":
            failed = counts.get(check.name, 0)
            share = failed / total if total else 0.0
            if failed:
                verb = "breaks" if failed == 1 else "break"
                message = f"{_rows_text(failed)} of {total:,} ({share:.1%}) {verb} the rule: {check.text}."
            else:
                message = f"All {total:,} rows meet the rule: {check.text}."
            results.append(
                _result(check, _status_for(check, failed > 0), failed, total, {"value": share, "failed_rows": failed}, message,
                        predicate=row_predicate(check, target))
            )
        else:
            results.append(_batch_result(con, target, check, total, aggregates, now))
    return results


def _result(check: Check, status: str, failed: int, total: int, detail: dict[str, Any], message: str, predicate=None) -> CheckResult:
    column = getattr(check, "column", None)
    if column is None and check.columns_used:
        column = ", ".join(check.columns_used)
    return CheckResult(check.name, check.kind, check.level, check.severity, column, status, int(failed), int(total),
                       detail, message, check.text, predicate)


def _run_row_checks(con, target: CheckTarget, checks: Sequence[Check], flags_table: str) -> dict[str, int]:
    predicates = [(check, row_predicate(check, target)) for check in checks]
    params: list[Any] = []
    # Each predicate is computed once, as a boolean column of the inner query, and the outer
    # query keeps only the failing rows: a unique check's join then runs once, not twice.
    inner, where = [], []
    for position, (check, predicate) in enumerate(predicates):
        inner.append(f"coalesce({predicate.sql}, false) AS _p{position}")
        params.extend(predicate.params)
        where.append(f"_p{position}")

    def names_list(severity: str) -> str:
        parts = [f"CASE WHEN _p{position} THEN ? END" for position, (check, _) in enumerate(predicates) if check.severity == severity]
        names.extend(check.name for check, _ in predicates if check.severity == severity)
        if not parts:
            return "CAST([] AS VARCHAR[])"
        return f"list_filter([{', '.join(parts)}], lambda name: name IS NOT NULL)"

    names: list[str] = []
    errors_sql = names_list("error")
    warnings_sql = names_list("warn")
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {quote_identifier(flags_table)} AS "
        f"SELECT _row, {errors_sql} AS _errors, {warnings_sql} AS _warnings "
        f"FROM (SELECT t.rowid AS _row, {', '.join(inner)} FROM {quote_identifier(target.relation)} AS t) "
        f"WHERE {' OR '.join(where)}",
        [*names, *params],
    )
    rows = con.execute(
        f"SELECT name, count(*) FROM (SELECT unnest(_errors || _warnings) AS name FROM {quote_identifier(flags_table)}) GROUP BY name"
    ).fetchall()
    return {name: int(count) for name, count in rows}


def _batch_aggregates(con, target: CheckTarget, checks: Sequence[Check]) -> dict[str, Any]:
    """One pass over the relation for every null count and newest time the checks need."""
    expressions: dict[str, str] = {}
    for check in checks:
        if isinstance(check, NullShareCheck) and check.column in target.column_types:
            expressions[f"nulls:{check.column}"] = f"count(*) FILTER (WHERE {_missing_sql(check.column, target.column_types[check.column])})"
        if isinstance(check, FreshnessCheck):
            column = check.column or target.dataset.time_column
            if column in target.column_types:
                expressions[f"newest:{column}"] = f"max({_column(column)})"
    if not expressions:
        return {}
    keys = list(expressions)
    row = con.execute(
        f"SELECT {', '.join(expressions[key] for key in keys)} FROM {quote_identifier(target.relation)} AS t"
    ).fetchone()
    return dict(zip(keys, row, strict=True))


def _arrived(target: CheckTarget) -> dict[str, str]:
    """Lower-cased column name -> type of what arrived (the file, or the stored table)."""
    columns = target.arrived_columns if target.arrived_columns is not None else target.column_types
    return {name.lower(): kind for name, kind in columns.items()}


def _compatible(found: str, expected: str, text_source: bool) -> bool:
    found_family, expected_family = type_family(found), type_family(expected)
    if text_source and found_family == "text":
        return True  # CSV: every value was already proven readable as the column's type
    if found_family == expected_family:
        return True
    return (found_family, expected_family) in {("integer", "number"), ("date", "timestamp")}


def _batch_result(con, target: CheckTarget, check: Check, total: int, aggregates: Mapping[str, Any], now: datetime) -> CheckResult:
    if isinstance(check, RequiredColumnsCheck):
        arrived = _arrived(target)
        missing = [column for column in check.columns if column.lower() not in arrived]
        detail = {"value": len(missing), "threshold": 0, "missing": missing}
        if missing:
            message = f"The file lacks {len(missing)} required column{'s' if len(missing) > 1 else ''}: {', '.join(missing)}."
        else:
            message = f"All {len(check.columns)} required columns are present."
        return _result(check, _status_for(check, bool(missing)), 0, total, detail, message)

    if isinstance(check, SchemaCheck):
        arrived = _arrived(target)
        missing = [column for column in check.columns if column.lower() not in arrived]
        wrong = {
            column: {"found": arrived[column.lower()], "expected": expected}
            for column, expected in check.columns.items()
            if column.lower() in arrived and not _compatible(arrived[column.lower()], expected, target.text_source)
        }
        listed = {column.lower() for column in check.columns}
        extra = [] if check.allow_extra_columns else sorted(name for name in arrived if name not in listed)
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if wrong:
            parts.append("wrong type " + ", ".join(f"{c} ({w['found']}, expected {w['expected']})" for c, w in wrong.items()))
        if extra:
            parts.append(f"unexpected {', '.join(extra)}")
        detail = {"value": len(missing) + len(wrong) + len(extra), "threshold": 0, "missing": missing, "wrong_types": wrong, "unexpected": extra}
        message = ("Columns do not match the expected schema: " + "; ".join(parts) + ".") if parts else f"All {len(check.columns)} expected columns are present with the expected types."
        return _result(check, _status_for(check, bool(parts)), 0, total, detail, message)

    if isinstance(check, NullShareCheck):
        nulls = int(aggregates.get(f"nulls:{check.column}") or 0)
        share = nulls / total if total else 0.0
        problem = share > check.max_share
        message = f"{share:.1%} of {check.column} values are missing ({_rows_text(nulls)} of {total:,}; limit {check.max_share:.1%})."
        return _result(check, _status_for(check, problem), nulls, total, {"value": share, "threshold": check.max_share}, message)

    if isinstance(check, RowCountCheck):
        if not target.is_delivery:
            return _result(check, "skipped", 0, total, {"value": total}, "Row-count bounds apply to one delivery, not to all stored data.")
        low, high = check.min, check.max
        problem = (low is not None and total < low) or (high is not None and total > high)
        expected = f"at least {low or 0:,}" if high is None else f"{low or 0:,} to {high:,}"
        message = f"The delivery has {total:,} rows (expected {expected})."
        return _result(check, _status_for(check, problem), 0, total, {"value": total, "min": low, "max": high}, message)

    if isinstance(check, FreshnessCheck):
        column = check.column or target.dataset.time_column
        newest = _aware(aggregates.get(f"newest:{column}"))
        if newest is None:
            message = f"No {column} values, so the data's age is unknown (limit {check.max_age_hours:g} hours)."
            result = _result(check, _status_for(check, True), 0, total, {"value": None, "threshold": check.max_age_hours}, message)
        else:
            age = (now - newest).total_seconds() / 3600
            message = f"The newest {column} is {age:,.1f} hours old (limit {check.max_age_hours:g} hours)."
            detail = {"value": age, "threshold": check.max_age_hours, "newest": newest.isoformat(), "now": now.isoformat()}
            result = _result(check, _status_for(check, age > check.max_age_hours), 0, total, detail, message)
        return replace(result, column=column)

    if isinstance(check, DistributionCheck):
        return _distribution_result(con, target, check, total)
    raise AssertionError(f"unhandled check kind {check.kind}")  # pragma: no cover


# --- Distribution statistics ----------------------------------------------------------------


def _aware(value: Any) -> datetime | None:
    """A timezone-aware UTC datetime for a DuckDB time value (naive values are taken as UTC)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time.min, UTC)
    return None


def _time_param(value: datetime, column_type: str) -> Any:
    """A time bound in the form that compares correctly with a column of ``column_type``."""
    family, upper = type_family(column_type), column_type.upper()
    if family == "date":
        return value.date()
    if "TIME ZONE" in upper:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)  # naive columns hold UTC


def _reference_filter(con, target: CheckTarget, check: DistributionCheck) -> tuple[str, list[Any], dict[str, Any]]:
    """WHERE clause (alias ``h``) selecting the reference rows in the history table."""
    time_column = check.reference.time_column or target.dataset.time_column
    column_type = target.column_types[time_column]
    history = quote_identifier(target.history_table)
    clauses, params = [], []
    if target.exclude_batch is not None:
        clauses.append(f"h.{quote_identifier(BATCH_COLUMN)} IS DISTINCT FROM ?")
        params.append(target.exclude_batch)
    window = check.reference
    if window.last_days is not None:
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        newest = _aware(con.execute(f"SELECT max(h.{quote_identifier(time_column)}) FROM {history} AS h{where}", params).fetchone()[0])
        if newest is None:
            return "false", [], {}
        start, end = newest - timedelta(days=window.last_days), newest + timedelta(microseconds=1)
    else:
        start = _aware(window.start) if window.start is not None else None
        end = None
        if window.end is not None:
            end = _aware(window.end)
            if not isinstance(window.end, datetime):
                end = end + timedelta(days=1)  # a date as end includes that whole day
    column = _column(time_column, "h")
    if start is not None:
        clauses.append(f"{column} >= ?")
        params.append(_time_param(start, column_type))
    if end is not None:
        clauses.append(f"{column} < ?")
        params.append(_time_param(end, column_type))
    bounds = {"reference_start": start.isoformat() if start else None, "reference_end": end.isoformat() if end else None}
    return (" AND ".join(clauses) or "true"), params, bounds


def _fill_zeros(shares: list[float]) -> list[float]:
    """Evidently's rule for empty cells, so PSI values agree with Evidently's."""
    nonzero = [share for share in shares if share > 0]
    if not nonzero:
        return shares
    smallest = min(nonzero)
    fill = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return [share if share > 0 else fill for share in shares]


def _share_statistic(statistic: str, reference: Mapping[Any, int], current: Mapping[Any, int]) -> float:
    keys = list(set(reference) | set(current))
    n_reference, n_current = sum(reference.values()), sum(current.values())
    ref = [reference.get(key, 0) / n_reference for key in keys]
    cur = [current.get(key, 0) / n_current for key in keys]
    if statistic == "total_variation":
        return 0.5 * sum(abs(r - c) for r, c in zip(ref, cur, strict=True))
    ref, cur = _fill_zeros(ref), _fill_zeros(cur)
    return float(sum((r - c) * math.log(r / c) for r, c in zip(ref, cur, strict=True)))


def _sampled(sql: str, alias: str, rows: int) -> tuple[str, int]:
    """``sql`` restricted to about MAX_SAMPLE of its ``rows`` by a hash of the row id (repeatable)."""
    if rows <= MAX_SAMPLE:
        return sql, rows
    per_million = math.ceil(MAX_SAMPLE / rows * 1_000_000)
    return f"{sql} AND hash({alias}.rowid) % 1000000 < {per_million}", -1


def _distribution_result(con, target: CheckTarget, check: DistributionCheck, total: int) -> CheckResult:
    kind = target.column_types[check.column]
    numeric = type_family(kind) in ("integer", "number")
    statistic = check.statistic or ("wasserstein" if numeric else "psi")
    threshold = check.threshold if check.threshold is not None else DEFAULT_DRIFT_THRESHOLD[statistic]
    base = {"statistic": statistic, "threshold": threshold, "reference": check.reference.describe()}

    def skipped(reason: str, **extra: Any) -> CheckResult:
        return _result(check, "skipped", 0, total, {**base, "value": None, **extra}, f"Not checked: {reason}.")

    if target.history_table is None:
        return skipped("no stored data to compare with yet")
    where, params, bounds = _reference_filter(con, target, check)
    base.update(bounds)
    history = quote_identifier(target.history_table)
    current = quote_identifier(target.current_relation or target.relation)
    numeric_values = numeric and statistic != "total_variation"
    if numeric_values:
        value_ref = f"CAST({_column(check.column, 'h')} AS DOUBLE)"
        value_cur = f"CAST({_column(check.column, 't')} AS DOUBLE)"
        reference_sql = f"SELECT {value_ref} AS x FROM {history} AS h WHERE ({where}) AND {value_ref} IS NOT NULL AND NOT isnan({value_ref})"
        current_sql = f"SELECT {value_cur} AS x FROM {current} AS t WHERE {value_cur} IS NOT NULL AND NOT isnan({value_cur})"
    else:
        value_ref, value_cur = f"CAST({_column(check.column, 'h')} AS VARCHAR)", f"CAST({_column(check.column, 't')} AS VARCHAR)"
        reference_sql = f"SELECT {value_ref} AS x FROM {history} AS h WHERE ({where}) AND {value_ref} IS NOT NULL"
        current_sql = f"SELECT {value_cur} AS x FROM {current} AS t WHERE {value_cur} IS NOT NULL"
    n_reference, n_current = (int(v) for v in con.execute(
        f"SELECT (SELECT count(*) FROM ({reference_sql})), (SELECT count(*) FROM ({current_sql}))", params
    ).fetchone())
    base.update(reference_rows=n_reference, current_rows=n_current)
    if n_reference < check.min_rows or n_current < check.min_rows:
        return skipped(f"{n_reference:,} reference and {n_current:,} current values, fewer than the {check.min_rows:,} needed", reference_rows=n_reference, current_rows=n_current)
    if numeric_values:
        # Numeric statistics sort the values; above MAX_SAMPLE values per side they use a
        # deterministic hash sample of the rows (sampling error about 0.002 standard
        # deviations), which keeps a 10M-row batch inside the ingestion budget.
        reference_sql, n_reference = _sampled(reference_sql, "h", n_reference)
        current_sql, n_current = _sampled(current_sql, "t", n_current)
        if n_reference != base["reference_rows"] or n_current != base["current_rows"]:
            n_reference, n_current = (int(v) for v in con.execute(
                f"SELECT (SELECT count(*) FROM ({reference_sql})), (SELECT count(*) FROM ({current_sql}))", params
            ).fetchone())
            base.update(sampled_reference_rows=n_reference, sampled_current_rows=n_current)

    if statistic == "wasserstein":
        # Exact W1 = integral of |F_ref - F_cur| over x, from the two step ECDFs, in one sort.
        value, spread = con.execute(
            f"""
            WITH ref AS ({reference_sql}), cur AS ({current_sql}),
            points AS (
                SELECT x, sum(in_ref) AS in_ref, sum(in_cur) AS in_cur
                FROM (SELECT x, 1 AS in_ref, 0 AS in_cur FROM ref UNION ALL SELECT x, 0, 1 FROM cur)
                GROUP BY x
            ),
            steps AS (
                SELECT sum(in_ref) OVER running / ? AS f_ref, sum(in_cur) OVER running / ? AS f_cur,
                       lead(x) OVER (ORDER BY x) - x AS width
                FROM points WINDOW running AS (ORDER BY x ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
            )
            SELECT (SELECT coalesce(sum(abs(f_ref - f_cur) * width), 0) FROM steps), (SELECT stddev_pop(x) FROM ref)
            """,
            [*params, n_reference, n_current],
        ).fetchone()
        norm = max(float(spread or 0.0), 0.001)  # Evidently's floor for a constant reference
        measured = float(value) / norm
        base["reference_std"] = float(spread or 0.0)
    elif numeric and statistic == "psi":
        probabilities = [i / check.bins for i in range(1, check.bins)]
        edges = con.execute(f"SELECT quantile_cont(x, ?) FROM ({reference_sql})", [probabilities, *params]).fetchone()[0]
        edges = sorted(set(float(edge) for edge in edges))
        bucket = " + ".join(["0", *("CAST(x > ? AS INTEGER)" for _ in edges)])
        rows = con.execute(
            f"SELECT 'r', {bucket} AS b, count(*) FROM ({reference_sql}) GROUP BY b "
            f"UNION ALL SELECT 'c', {bucket} AS b, count(*) FROM ({current_sql}) GROUP BY b",
            [*edges, *params, *edges],
        ).fetchall()
        reference_counts = {bucket_id: 0 for bucket_id in range(len(edges) + 1)}
        current_counts = dict(reference_counts)
        for side, bucket_id, count in rows:
            (reference_counts if side == "r" else current_counts)[bucket_id] = int(count)
        measured = _share_statistic("psi", reference_counts, current_counts)
        base["bin_edges"] = edges
    else:
        rows = con.execute(
            f"SELECT 'r', x, count(*) FROM ({reference_sql}) GROUP BY x "
            f"UNION ALL SELECT 'c', x, count(*) FROM ({current_sql}) GROUP BY x LIMIT {2 * MAX_CATEGORIES + 1}",
            [*params],
        ).fetchall()
        if len(rows) > 2 * MAX_CATEGORIES:
            return skipped(f"{check.column} has too many distinct values for a category comparison")
        reference_counts = {value: int(count) for side, value, count in rows if side == "r"}
        current_counts = {value: int(count) for side, value, count in rows if side == "c"}
        measured = _share_statistic(statistic, reference_counts, current_counts)
    problem = measured >= threshold
    base["value"] = measured
    verb = "moved away from" if problem else "is in line with"
    message = (
        f"{check.column} {verb} {check.reference.describe()} ({base['reference_rows']:,} values): "
        f"{STATISTIC_WORDS[statistic]} {measured:.3g} (limit {threshold:g})."
    )
    return _result(check, _status_for(check, problem), 0, total, base, message)


# --- Suggested checks ------------------------------------------------------------------------


def _nice(value: float, up: bool) -> float:
    """Round a bound outwards to 2 significant digits, so suggestions read like a person wrote them."""
    if value == 0 or not math.isfinite(value):
        return float(value)
    step = 10 ** (math.floor(math.log10(abs(value))) - 1)
    rounded = (math.ceil if up else math.floor)(value / step) * step
    return float(round(rounded, 10))


def suggest_checks_for_relation(con, relation: str, dataset: Dataset, column_types: Mapping[str, str]) -> DatasetChecks:
    """A sensible starting check set from the rows in ``relation`` (see :func:`suggest_checks`)."""
    roles = {column.name: column.role for column in dataset.columns}
    labels = {column.name: (column.description or column.name) for column in dataset.columns}
    numeric = [c for c, t in column_types.items() if type_family(t) in ("integer", "number")]
    texts = [c for c, t in column_types.items() if type_family(t) in ("text", "boolean")]
    table = quote_identifier(relation)
    expressions = ["count(*)"]
    for name, kind in column_types.items():
        expressions.append(f"count(*) FILTER (WHERE {_missing_sql(name, kind)})")
    for name in numeric:
        value = f"CAST({_column(name)} AS DOUBLE)"
        expressions.append(f"min({value}) FILTER (WHERE NOT isnan({value}))")
        expressions.append(f"max({value}) FILTER (WHERE NOT isnan({value}))")
    for name in texts:
        expressions.append(f"approx_count_distinct({_column(name)})")
    row = list(con.execute(f"SELECT {', '.join(expressions)} FROM {table} AS t").fetchone())
    total = int(row.pop(0))
    nulls = {name: int(row.pop(0)) for name in column_types}
    bounds = {name: (row.pop(0), row.pop(0)) for name in numeric}
    distinct = {name: int(row.pop(0) or 0) for name in texts}

    checks: list[Any] = [
        RequiredColumnsCheck(name="required_columns", columns=tuple(column_types), description="Every column of the dataset is in the file"),
        SchemaCheck(name="schema", columns=dict(column_types), description="Columns have the expected types"),
        RowCountCheck(name="row_count", min=1, description="A delivery is not empty"),
    ]
    id_column, time_column = dataset.id_column, dataset.time_column
    if id_column in column_types:
        checks.append(NotNullCheck(name=f"{id_column}_present", column=id_column, description=f"Every row has its {labels[id_column].lower()}"))
        checks.append(UniqueCheck(name=f"{id_column}_unique", columns=(id_column,), description=f"Each {labels[id_column].lower()} appears only once"))
    if time_column in column_types:
        checks.append(NotNullCheck(name=f"{time_column}_present", column=time_column, description=f"Every row has its {labels[time_column].lower()}"))
        if dataset.freshness_hours:
            checks.append(FreshnessCheck(name="freshness", column=time_column, max_age_hours=dataset.freshness_hours, severity="warn",
                                         description=f"New data arrives at least every {dataset.freshness_hours:g} hours"))
    for name in column_types:
        if roles.get(name, "feature") != "feature" or total == 0:
            continue
        share = nulls[name] / total
        checks.append(NullShareCheck(name=f"{name}_missing", column=name, max_share=min(1.0, round(share * 2 + 0.01, 3)), severity="warn",
                                     description=f"{labels[name]}: at most {min(1.0, share * 2 + 0.01):.0%} missing"))
        if name in bounds and bounds[name][0] is not None:
            low, high = float(bounds[name][0]), float(bounds[name][1])
            margin = (high - low) * 0.1
            low, high = _nice(low - margin, up=False), _nice(high + margin, up=True)
            if type_family(column_types[name]) == "integer":
                low, high = int(math.floor(low)), int(math.ceil(high))
            checks.append(RangeCheck(name=f"{name}_range", column=name, min=low, max=high, severity="warn",
                                     description=f"{labels[name]} between {low:g} and {high:g}"))
            if time_column in column_types:
                checks.append(DistributionCheck(name=f"{name}_drift", column=name, reference=ReferenceWindow(last_days=30), severity="warn",
                                                description=f"{labels[name]} is distributed like the last 30 days"))
        if name in distinct and 0 < distinct[name] <= 20:
            values = [value for (value,) in con.execute(
                f"SELECT DISTINCT CAST({_column(name)} AS VARCHAR) AS v FROM {table} AS t WHERE v IS NOT NULL ORDER BY v LIMIT 50"
            ).fetchall()]
            if len(values) <= 20:
                checks.append(AllowedValuesCheck(name=f"{name}_values", column=name, values=tuple(values), severity="warn",
                                                 description=f"{labels[name]} is one of the known values"))
    return DatasetChecks(dataset=dataset.name, checks=tuple(checks))


def suggest_checks(warehouse: Warehouse, dataset: str) -> DatasetChecks:
    """A starting check set inferred from the dataset's schema and stored rows.

    Error checks: the columns are present with their types, the batch is not empty, the id
    is present and unique, the time is present. Warn checks (to review before making them
    errors): missing-value shares at twice what was seen (+1 point), numeric ranges 10% wider
    than seen, allowed values for text columns with at most 20 values, freshness from the
    dataset's expectation, and a drift check per numeric feature against the last 30 days.

    Raises:
        NotFoundError: no such dataset.
        MlopsError: the dataset has no stored rows to learn from.
    """
    entry = get_dataset(warehouse, dataset)
    with warehouse.read() as con:
        types = {name: kind for name, kind in table_columns(con, TABLE_PREFIX + entry.name).items() if not name.startswith("_")}
        if not types:
            raise MlopsError(f"Dataset {dataset!r} has no stored rows to suggest checks from; ingest a first file.")
        return suggest_checks_for_relation(con, TABLE_PREFIX + entry.name, entry, types)


# --- Reads for the page ----------------------------------------------------------------------

_STATUS_ORDER = "CASE status WHEN 'fail' THEN 0 WHEN 'warn' THEN 1 WHEN 'skipped' THEN 2 ELSE 3 END"


def scorecard(warehouse: Warehouse, dataset: str, checks: DatasetChecks | None = None) -> pd.DataFrame:
    """The latest result of every check of ``dataset``, worst first.

    Columns: check_name, check_kind, column_name, severity, status, failed_rows, total_rows,
    share, value, threshold, message (a plain-language sentence), description, batch_id
    (a delivery, or ``recheck-...``), checked_at. Empty when nothing was checked yet.

    Args:
        checks: when given, only its checks (and the built-in ``file_readable``) are shown,
            so a check removed from the file disappears from the card.
    """
    validate_dataset_name(dataset)
    names_filter, params = "", [dataset]
    if checks is not None:
        names_filter = "AND list_contains(?, check_name)"
        params.append([FILE_CHECK_NAME, *(check.name for check in checks.checks)])
    return warehouse.query(
        f"""
        SELECT check_name, check_kind, column_name, severity, status, failed_rows, total_rows,
               CASE WHEN total_rows > 0 THEN failed_rows / total_rows ELSE 0 END AS share,
               TRY_CAST(json_extract_string(detail, '$.value') AS DOUBLE) AS value,
               TRY_CAST(json_extract_string(detail, '$.threshold') AS DOUBLE) AS threshold,
               message, description, batch_id, checked_at
        FROM quality_results
        WHERE dataset = ? {names_filter}
        QUALIFY row_number() OVER (PARTITION BY check_name ORDER BY checked_at DESC, batch_id DESC) = 1
        ORDER BY {_STATUS_ORDER}, check_name
        """,
        params,
    )


def quality_verdict(card: pd.DataFrame) -> tuple[Status, str]:
    """The one-sentence verdict that opens the data-quality page, from a :func:`scorecard`.

    Act when an error check fails, Watch when a warn check fires, Healthy when all pass,
    Not checked when nothing ran yet.
    """
    if card.empty:
        return Status.UNKNOWN, "Not checked yet: ingest a file (mlops-app ingest DATASET FILE) to run the checks."
    failing, warning = card[card.status == "fail"], card[card.status == "warn"]
    if not failing.empty:
        first = failing.iloc[0]
        more = f" (and {len(failing) - 1} more failing check{'s' if len(failing) > 2 else ''})" if len(failing) > 1 else ""
        return Status.ACT, f"{first.message}{more}"
    if not warning.empty:
        first = warning.iloc[0]
        more = f" (and {len(warning) - 1} more warning{'s' if len(warning) > 2 else ''})" if len(warning) > 1 else ""
        return Status.WATCH, f"{first.message}{more}"
    passed = int((card.status == "pass").sum())
    return Status.HEALTHY, f"All {passed} checks pass on the latest data."


def check_history(warehouse: Warehouse, dataset: str, check: str | None = None, *, limit: int = 200) -> pd.DataFrame:
    """Per batch (and recheck), the result of each check: the trend the page charts.

    Returns the newest ``limit`` runs, oldest first. Columns: batch_id, checked_at,
    received_at (null for rechecks), batch_status, check_name, status, failed_rows,
    total_rows, share, value, threshold.
    """
    validate_dataset_name(dataset)
    params: dict[str, Any] = {"dataset": dataset, "limit": int(limit)}
    check_filter = ""
    if check is not None:
        check_filter = "AND q.check_name = $check"
        params["check"] = check
    return warehouse.query(
        f"""
        WITH runs AS (
            SELECT batch_id, max(checked_at) AS run_at FROM quality_results WHERE dataset = $dataset
            GROUP BY batch_id ORDER BY run_at DESC LIMIT $limit
        )
        SELECT q.batch_id, q.checked_at, b.received_at, b.status AS batch_status, q.check_name, q.status,
               q.failed_rows, q.total_rows,
               CASE WHEN q.total_rows > 0 THEN q.failed_rows / q.total_rows ELSE 0 END AS share,
               TRY_CAST(json_extract_string(q.detail, '$.value') AS DOUBLE) AS value,
               TRY_CAST(json_extract_string(q.detail, '$.threshold') AS DOUBLE) AS threshold
        FROM quality_results q JOIN runs USING (batch_id) LEFT JOIN batches b ON b.batch_id = q.batch_id
        WHERE q.dataset = $dataset {check_filter}
        ORDER BY q.checked_at, q.batch_id, q.check_name
        """,
        params,
    )


def failing_rows(
    warehouse: Warehouse,
    dataset: str,
    batch_id: str,
    check_name: str,
    *,
    limit: int = 100,
    checks: DatasetChecks | None = None,
) -> pd.DataFrame:
    """Rows of a batch that failed a check, with their values.

    For a delivery: its quarantined rows that failed ``check_name`` (``_outcome`` =
    ``quarantined``; for a warn check, quarantined rows it flagged as well, since they were
    set aside by another check) and its loaded rows flagged by it (``flagged``). For a ``recheck-...``
    run the stored rows are selected with the check's predicate now, so ``checks`` must be
    given. Batch-level checks have no failing rows: the result is empty.

    Raises:
        MlopsError: a recheck drill-down without ``checks``.
    """
    entry = get_dataset(warehouse, dataset)
    limit = max(1, int(limit))
    table, quarantine = dataset_table(entry.name), quarantine_table(entry.name)
    with warehouse.read() as con:
        stored = table_columns(con, TABLE_PREFIX + entry.name)
        if not stored:
            return pd.DataFrame()
        if batch_id.startswith("recheck-"):
            if checks is None:
                raise MlopsError("Pass the dataset's checks to drill into a recheck: its rows are selected by the check's rule.")
            check = checks.get(check_name)
            if check.level != "row":
                return pd.DataFrame()
            types = {name: kind for name, kind in stored.items() if not name.startswith("_")}
            target = CheckTarget(entry, TABLE_PREFIX + entry.name, types, history_table=TABLE_PREFIX + entry.name, is_delivery=False)
            predicate = row_predicate(check, target)
            return con.execute(
                f"SELECT t.*, 'stored' AS _outcome FROM {table} AS t WHERE {predicate.sql} LIMIT ?", [*predicate.params, limit]
            ).df()
        parts, params = [], []
        if table_columns(con, QUARANTINE_PREFIX + entry.name):
            parts.append(
                f"SELECT * EXCLUDE ({quote_identifier(QUARANTINED_AT_COLUMN)}), 'quarantined' AS _outcome FROM {quarantine} "
                f"WHERE {quote_identifier(BATCH_COLUMN)} = ? AND (list_contains({quote_identifier(FAILED_CHECKS_COLUMN)}, ?) "
                f"OR list_contains({quote_identifier(WARNINGS_COLUMN)}, ?))"
            )
            params += [batch_id, check_name, check_name]
        if WARNINGS_COLUMN in stored:
            parts.append(
                f"SELECT *, 'flagged' AS _outcome FROM {table} "
                f"WHERE {quote_identifier(BATCH_COLUMN)} = ? AND list_contains({quote_identifier(WARNINGS_COLUMN)}, ?)"
            )
            params += [batch_id, check_name]
        if not parts:
            return pd.DataFrame()
        return con.execute(f"SELECT * FROM ({' UNION ALL BY NAME '.join(parts)}) LIMIT ?", [*params, limit]).df()


@dataclass(frozen=True)
class ColumnProfile:
    """Summary of one column, computed in DuckDB.

    ``histogram`` (numeric columns) has bin_start, bin_end, rows; ``top_values`` (text and
    boolean columns) has value, rows, share. ``quantiles`` maps 0.01 ... 0.99 to values.
    """

    column: str
    column_type: str
    rows: int
    nulls: int
    distinct: int
    minimum: Any = None
    maximum: Any = None
    mean: float | None = None
    std: float | None = None
    quantiles: dict[float, float] = field(default_factory=dict)
    histogram: pd.DataFrame = field(default_factory=pd.DataFrame)
    top_values: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def null_share(self) -> float:
        return self.nulls / self.rows if self.rows else 0.0


_PROFILE_QUANTILES = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99]


def column_profile(warehouse: Warehouse, dataset: str, column: str, batch_id: str | None = None, *, bins: int = 20) -> ColumnProfile:
    """Nulls, distinct values, min / max, quantiles and a histogram (or top values) of a column.

    Args:
        batch_id: profile only that delivery: its loaded and its quarantined rows.
        bins: equal-width histogram bins for numeric columns.

    Raises:
        NotFoundError: no such dataset or column.
    """
    entry = get_dataset(warehouse, dataset)
    bins = min(max(int(bins), 1), 200)
    with warehouse.read() as con:
        stored = table_columns(con, TABLE_PREFIX + entry.name)
        if column not in stored or column.startswith("_"):
            known = ", ".join(name for name in stored if not name.startswith("_")) or "none (no rows yet)"
            raise NotFoundError(f"Dataset {dataset!r} has no column {column!r}. Columns: {known}.")
        kind, name = stored[column], quote_identifier(column)
        source, params = f"SELECT {name} AS v FROM {dataset_table(entry.name)}", []
        if batch_id is not None:
            source += f" WHERE {quote_identifier(BATCH_COLUMN)} = ?"
            params.append(batch_id)
            if table_columns(con, QUARANTINE_PREFIX + entry.name):
                source += f" UNION ALL SELECT {name} FROM {quarantine_table(entry.name)} WHERE {quote_identifier(BATCH_COLUMN)} = ?"
                params.append(batch_id)
        missing = "(v IS NULL OR isnan(v))" if _is_float(kind) else "(v IS NULL)"
        family = type_family(kind)
        con.execute(f"CREATE OR REPLACE TEMP TABLE _mlops_profile AS {source}", params)
        try:
            rows, nulls, distinct, low, high = con.execute(
                f"SELECT count(*), count(*) FILTER (WHERE {missing}), approx_count_distinct(v), "
                f"min(v) FILTER (WHERE NOT {missing}), max(v) FILTER (WHERE NOT {missing}) FROM _mlops_profile"
            ).fetchone()
            profile = ColumnProfile(column, kind, int(rows), int(nulls), int(distinct or 0), low, high)
            if family in ("integer", "number") and rows > nulls:
                value = "CAST(v AS DOUBLE)"
                mean, std, quantiles = con.execute(
                    f"SELECT avg({value}), stddev_samp({value}), quantile_cont({value}, ?) FROM _mlops_profile WHERE NOT {missing}",
                    [_PROFILE_QUANTILES],
                ).fetchone()
                low_f, high_f = float(low), float(high)
                width = (high_f - low_f) / bins if high_f > low_f else 1.0
                histogram = con.execute(
                    f"SELECT least(CAST(floor(({value} - ?) / ?) AS INTEGER), ?) AS bin, count(*) AS rows "
                    f"FROM _mlops_profile WHERE NOT {missing} GROUP BY bin ORDER BY bin",
                    [low_f, width, bins - 1],
                ).df()
                histogram.insert(0, "bin_start", low_f + histogram["bin"] * width)
                histogram.insert(1, "bin_end", histogram["bin_start"] + width)
                profile = ColumnProfile(
                    column, kind, profile.rows, profile.nulls, profile.distinct, low, high,
                    float(mean), float(std) if std is not None else None,
                    dict(zip(_PROFILE_QUANTILES, (float(q) for q in quantiles), strict=True)),
                    histogram.drop(columns="bin"),
                )
            elif family in ("text", "boolean"):
                top = con.execute(
                    "SELECT CAST(v AS VARCHAR) AS value, count(*) AS rows, count(*) / ? AS share FROM _mlops_profile "
                    "WHERE v IS NOT NULL GROUP BY value ORDER BY rows DESC, value LIMIT 20",
                    [max(int(rows), 1)],
                ).df()
                profile = ColumnProfile(column, kind, profile.rows, profile.nulls, profile.distinct, low, high, top_values=top)
        finally:
            con.execute("DROP TABLE IF EXISTS _mlops_profile")
    return profile


def list_batches(warehouse: Warehouse, dataset: str, *, limit: int = 200) -> pd.DataFrame:
    """The dataset's deliveries, newest first, with their outcome and failed / warned check counts.

    Columns: batch_id, received_at, source_name, status, row_count, accepted_rows,
    quarantined_rows, warned_rows, reason, ingested_by, content_sha256, failed_checks,
    warned_checks.
    """
    validate_dataset_name(dataset)
    return warehouse.query(
        """
        WITH outcome AS (
            SELECT batch_id, count(*) FILTER (WHERE status = 'fail') AS failed_checks,
                   count(*) FILTER (WHERE status = 'warn') AS warned_checks
            FROM quality_results WHERE dataset = ? GROUP BY batch_id
        )
        SELECT b.batch_id, b.received_at, b.source_name, b.status, b.row_count, b.accepted_rows,
               b.quarantined_rows, b.warned_rows, b.reason, b.ingested_by, b.content_sha256,
               coalesce(o.failed_checks, 0) AS failed_checks, coalesce(o.warned_checks, 0) AS warned_checks
        FROM batches b LEFT JOIN outcome o USING (batch_id)
        WHERE b.dataset = ?
        ORDER BY b.received_at DESC, b.batch_id DESC
        LIMIT ?
        """,
        [dataset, dataset, int(limit)],
    )


def result_rows(results: Iterable[CheckResult], *, batch_id: str, dataset: str, checked_at: datetime) -> list[list[Any]]:
    """Rows for ``quality_results`` (see :func:`record_results`)."""
    return [
        [batch_id, dataset, r.name, r.kind, r.column, r.severity, r.status, r.failed_rows, r.total_rows,
         json.dumps(r.detail, default=str), r.message, r.description, checked_at]
        for r in results
    ]


def record_results(con, results: Iterable[CheckResult], *, batch_id: str, dataset: str, checked_at: datetime) -> None:
    """Insert check results into ``quality_results`` inside ``con``'s transaction."""
    rows = result_rows(results, batch_id=batch_id, dataset=dataset, checked_at=checked_at)
    if rows:
        con.executemany(
            "INSERT INTO quality_results (batch_id, dataset, check_name, check_kind, column_name, severity, status, "
            "failed_rows, total_rows, detail, message, description, checked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )

