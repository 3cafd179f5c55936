"""Ingestion: a delivered CSV or Parquet file becomes a checked, recorded batch.

The path of one file through :func:`ingest_file`:

1. Refuse early what cannot be a delivery: an unknown dataset (listing the known ones), a
   missing file, a file over ``max_file_bytes``, an empty file.
2. Stage the file inside DuckDB, never through pandas: ``read_parquet``, or ``read_csv``
   with a fixed dialect (comma, double quotes, a header line, strict rows; no sniffing, so
   a malformed line is an error and not a guess) into a temp table, then cast each column
   to the dataset's type. Values that cannot be read as their column's type reject the
   batch, naming the column, the type and an example. Columns the file lacks are staged
   as empty; the ``required_columns`` / ``schema`` checks decide whether that is allowed
   (with neither declared, every dataset column is required).
3. Meanwhile a second thread streams the file's sha256; the same content already loaded
   for the dataset makes the batch a ``duplicate``: recorded, nothing loaded.
4. Run the declared checks (:func:`mlops_app.quality.evaluate_checks`).
5. In one transaction: load accepted rows (``warn``-flagged ones with their flags) into
   ``ds_<dataset>``, quarantined rows into ``qr_<dataset>`` with the checks they failed,
   the batch into ``batches`` and every check result into ``quality_results``. A batch
   rejected by a batch-level ``error`` check loads no rows; its record and results remain.

Why a typed quarantine table per dataset rather than one table of JSON rows: drill-down
shows failing rows with their real types (sortable numbers, formatted times), the column
profile runs on them unchanged, and fixed rows can be moved back with one
``INSERT ... SELECT``. Uncastable values never reach it: they reject the batch at step 2.

Every rejection (bad input, or a batch-level ``error`` check that failed) is recorded
first and then raised as :class:`BatchRejectedError` (a :class:`MlopsError`) carrying the
:class:`IngestResult`, so a pipeline stops and the CLI prints the reason; pass
``raise_on_reject=False`` to get the result back instead (the page, the demo). A duplicate
is not an error: it is returned with status ``duplicate``.

Locking: the whole ingestion is one warehouse unit of work (staging lives in temp tables
of that connection), so other processes wait for it; at the measured speed a 10M-row
batch holds the lock for seconds. Files over the size limit never take the lock.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import re
import secrets
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from mlops_app.auth import Identity, require
from mlops_app.datasets import (
    BATCH_COLUMN,
    FAILED_CHECKS_COLUMN,
    QUARANTINED_AT_COLUMN,
    TABLE_PREFIX,
    WARNINGS_COLUMN,
    Column,
    Dataset,
    dataset_column_types,
    dataset_table,
    duckdb_type,
    ensure_dataset_tables,
    get_dataset,
    quarantine_table,
    refresh_dataset_stats,
    register_dataset,
    table_columns,
    type_family,
    validate_dataset_name,
)
from mlops_app.errors import MlopsError, NotFoundError
from mlops_app.quality import (
    FILE_CHECK_NAME,
    FLAGS_TABLE,
    CheckResult,
    CheckTarget,
    DatasetChecks,
    RequiredColumnsCheck,
    SchemaCheck,
    evaluate_checks,
    load_checks,
    record_results,
    suggest_checks_for_relation,
)
from mlops_app.warehouse import IDENTIFIER_PATTERN, IDENTIFIER_RULE, Warehouse, quote_identifier

__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "BatchRejectedError",
    "IngestResult",
    "RecheckResult",
    "file_sha256",
    "ingest_file",
    "recheck_dataset",
    "register_dataset_from_file",
    "suggest_checks_from_file",
]

# A setting would be the right home for this limit (the lead adds `max_ingest_file_bytes`
# to config.py); until then callers pass it. 1 GiB of Parquet is ~20M rows of 15 columns.
DEFAULT_MAX_FILE_BYTES = 1 << 30
STAGE_TABLE = "_mlops_stage"
RAW_TABLE = "_mlops_raw"
LATEST_TABLE = "_mlops_latest"
_HASH_CHUNK_BYTES = 1 << 20
_IMPLICIT_REQUIRED = "all_columns_present"
_LOADED_STATUSES = ("accepted", "partly_quarantined")
_CSV_SUFFIXES = {".csv": ",", ".tsv": "\t"}
_PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")


class BatchRejectedError(MlopsError):
    """The file could not be taken in as a batch (unreadable, wrong types, empty, too large).

    ``result`` is the recorded rejection (its ``batch_id`` and ``reason``).
    """

    def __init__(self, message: str, result: IngestResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class IngestResult:
    """What happened to one delivered file.

    ``status`` is ``accepted`` (every row loaded, possibly some with warnings),
    ``partly_quarantined`` (rows failing error checks were set aside), ``rejected``
    (nothing loaded) or ``duplicate`` (the same content was loaded before; nothing loaded).
    """

    batch_id: str
    dataset: str
    status: str
    rows: int
    accepted_rows: int
    quarantined_rows: int
    warned_rows: int
    reason: str | None
    content_sha256: str | None
    source_name: str
    received_at: datetime
    results: tuple[CheckResult, ...] = field(default=())
    duplicate_of: str | None = None
    seconds: float = 0.0

    @property
    def message(self) -> str:
        """One sentence for the person who sent the file."""
        if self.status == "duplicate":
            return f"{self.source_name} was not loaded again: {self.reason}"
        if self.status == "rejected":
            return f"{self.source_name} was rejected (batch {self.batch_id}): {self.reason}"
        text = f"Loaded {self.accepted_rows:,} of {self.rows:,} rows of {self.source_name} into {self.dataset} (batch {self.batch_id})."
        if self.quarantined_rows:
            text += f" {_rows(self.quarantined_rows)} failed error checks and {'was' if self.quarantined_rows == 1 else 'were'} quarantined."
        if self.reason:
            text += f" {self.reason[0].upper()}{self.reason[1:]}."
        return text


@dataclass(frozen=True)
class RecheckResult:
    """Results of re-running the checks on a dataset's stored rows."""

    batch_id: str
    dataset: str
    rows: int
    checked_at: datetime
    results: tuple[CheckResult, ...]

    @property
    def message(self) -> str:
        failed = [r.name for r in self.results if r.status == "fail"]
        warned = [r.name for r in self.results if r.status == "warn"]
        if not failed and not warned:
            return f"All {len(self.results)} checks pass on the {self.rows:,} stored rows of {self.dataset}."
        parts = []
        if failed:
            parts.append(f"failing: {', '.join(failed)}")
        if warned:
            parts.append(f"warning: {', '.join(warned)}")
        return f"Checked {self.rows:,} stored rows of {self.dataset}; " + "; ".join(parts) + "."


class _InputProblem(Exception):
    """Internal: the file cannot be staged; the message is the reason a person reads."""


@dataclass(frozen=True)
class _Staged:
    arrived: dict[str, str]  # the file's columns and types, as found
    rows: int
    text_source: bool


def file_sha256(path: Path | str) -> str:
    """Hex sha256 of a file's content, streamed in 1 MiB chunks (constant memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _format_bytes(size: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:,} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return ""  # pragma: no cover


def _file_format(path: Path, file_format: str | None) -> str:
    if file_format is not None:
        if file_format not in ("csv", "tsv", "parquet"):
            raise MlopsError(f"Unknown file format {file_format!r}: use csv, tsv or parquet.")
        return file_format
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(_PARQUET_SUFFIXES):
        return "parquet"
    for suffix in _CSV_SUFFIXES:
        if name.endswith(suffix):
            return suffix.lstrip(".")
    raise MlopsError(f"Cannot tell the format of {path.name}: name it .csv, .tsv or .parquet, or pass the format explicitly.")


def _quote_file_column(name: str) -> str:
    """Quote a column name as found in a file (any text) for SQL.

    Inside double quotes DuckDB knows only one escape, a doubled quote, so doubling them
    makes any name safe; NUL cannot be represented and is refused.
    """
    if "\x00" in name:
        raise _InputProblem("a column name contains a NUL character")
    return '"' + name.replace('"', '""') + '"'


def _csv_header(path: Path, delimiter: str) -> list[str]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
            header = next(csv.reader(handle, delimiter=delimiter, strict=True), None)
    except UnicodeDecodeError:
        raise _InputProblem("it is not UTF-8 text; save it as UTF-8 CSV") from None
    except (csv.Error, OSError, EOFError) as error:
        raise _InputProblem(f"its header line cannot be read ({error})") from None
    if not header or all(not name.strip() for name in header):
        raise _InputProblem("it has no header line with column names")
    blank = [str(position + 1) for position, name in enumerate(header) if not name.strip()]
    if blank:
        raise _InputProblem(f"header column{'s' if len(blank) > 1 else ''} {', '.join(blank)} {'have' if len(blank) > 1 else 'has'} no name")
    seen: dict[str, str] = {}
    repeated = []
    for name in header:
        if name.strip().lower() in seen:
            repeated.append(name)
        seen[name.strip().lower()] = name
    if repeated:
        raise _InputProblem(f"the header repeats column names: {', '.join(repeated)}")
    return header


def _explain_read_error(error: duckdb.Error, file_format: str) -> str:
    text = str(error).split("Possible fixes")[0]
    text = re.sub(r"^[A-Za-z ]*Error: ", "", text.strip())
    text = re.sub(r"\s*LINE 1:.*", "", text, flags=re.DOTALL)
    columns = re.search(r"CSV Error on Line: (\d+).*?Original Line: (.*?)\n.*?Expected Number of Columns: (\d+) Found: (\d+)", text, re.DOTALL)
    if columns:
        line, original, expected, found = columns.groups()
        return f"line {line} has {found} values where the header has {expected} (line: {original.strip()[:80]!r})"
    quote = re.search(r"CSV Error on Line: (\d+).*unterminated quote", text, re.DOTALL)
    if quote:
        return f"line {quote.group(1)} opens a quoted value that is never closed"
    summary = " ".join(text.split())[:300]
    if file_format == "parquet":
        return f"it is not a readable Parquet file ({summary})"
    return f"it is not a well-formed CSV file ({summary})"


def _source(con, path: Path, file_format: str) -> tuple[str, list[Any], dict[str, str], bool]:
    """SQL FROM item for the file, its parameters, the columns as found, and whether they are text."""
    if file_format == "parquet":
        with open(path, "rb") as handle:
            magic = handle.read(4)
        if magic != b"PAR1":
            raise _InputProblem("it is not a Parquet file (it does not start with the Parquet signature)")
        source = "read_parquet(?)"
        try:
            described = con.execute(f"DESCRIBE SELECT * FROM {source}", [str(path)]).fetchall()
        except duckdb.Error as error:
            raise _InputProblem(_explain_read_error(error, file_format)) from None
        return source, [str(path)], {row[0]: row[1] for row in described}, False
    delimiter = _CSV_SUFFIXES["." + file_format]
    header = _csv_header(path, delimiter)
    # A fixed dialect and the header's names, all read as text: no sniffing, so a ragged
    # row or a stray quote anywhere in the file is an error instead of a silent guess.
    source = (
        "read_csv(?, header = true, auto_detect = false, columns = ?, delim = ?, quote = '\"', escape = '\"', "
        "strict_mode = true, null_padding = false, comment = '', encoding = 'utf-8')"
    )
    return source, [str(path), {name: "VARCHAR" for name in header}, delimiter], {name: "VARCHAR" for name in header}, True


def _stage(con, path: Path, file_format: str, column_types: Mapping[str, str]) -> _Staged:
    """Read the file into the temp table ``_mlops_stage`` with the dataset's columns and types.

    Raises:
        _InputProblem: unreadable file, values of the wrong type, or no rows.
    """
    source, params, arrived, text_source = _source(con, path, file_format)
    found = {name.strip().lower(): name for name in arrived}
    present = {column: found[column.lower()] for column in column_types if column.lower() in found}
    raw_select = ", ".join(f"{_quote_file_column(present[c])} AS {quote_identifier(c)}" for c in present) or "NULL AS _none"
    exact = all(arrived[present[c]].upper() == duckdb_type(column_types[c]) for c in present)
    missing_select = [f"CAST(NULL AS {duckdb_type(t)}) AS {quote_identifier(c)}" for c, t in column_types.items() if c not in present]
    try:
        if exact:
            # The common Parquet case: no cast needed, one pass from the file into memory.
            select = ", ".join([*(quote_identifier(c) for c in present), *missing_select])
            con.execute(f"CREATE OR REPLACE TEMP TABLE {STAGE_TABLE} AS SELECT {select} FROM (SELECT {raw_select} FROM {source})", params)
        else:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {RAW_TABLE} AS SELECT {raw_select} FROM {source}", params)
    except duckdb.Error as error:
        raise _InputProblem(_explain_read_error(error, file_format)) from None
    if not exact:
        try:
            _check_castable(con, present, arrived, column_types)
            casts = []
            for column in column_types:
                if column not in present:
                    continue
                kind, name = duckdb_type(column_types[column]), quote_identifier(column)
                casts.append(name if arrived[present[column]].upper() == kind else f"TRY_CAST({name} AS {kind}) AS {name}")
            con.execute(f"CREATE OR REPLACE TEMP TABLE {STAGE_TABLE} AS SELECT {', '.join([*casts, *missing_select])} FROM {RAW_TABLE}")
        finally:
            con.execute(f"DROP TABLE IF EXISTS {RAW_TABLE}")
    rows = int(con.execute(f"SELECT count(*) FROM {STAGE_TABLE}").fetchone()[0])
    if rows == 0:
        raise _InputProblem("it has column names but no data rows")
    return _Staged(arrived, rows, text_source)


def _check_castable(con, present: Mapping[str, str], arrived: Mapping[str, str], column_types: Mapping[str, str]) -> None:
    """Raise _InputProblem naming every column with values that cannot be read as its type."""
    tests: list[tuple[str, str, str]] = []
    for column, source_name in present.items():
        found, kind = arrived[source_name].upper(), duckdb_type(column_types[column])
        if found == kind:
            continue
        value = quote_identifier(column)
        if found == "VARCHAR":
            bad = f"{value} IS NOT NULL AND TRY_CAST({value} AS {kind}) IS NULL"
            if type_family(kind) == "integer":
                # TRY_CAST('1.5' AS BIGINT) rounds to 2; a whole number must be written as one.
                bad = f"{value} IS NOT NULL AND (TRY_CAST({value} AS {kind}) IS NULL OR NOT regexp_full_match(trim({value}), '[+-]?[0-9]+'))"
        else:
            # A typed source must survive the round trip, so 1.5 DOUBLE -> BIGINT is refused, not rounded.
            bad = f"{value} IS NOT NULL AND (TRY_CAST({value} AS {kind}) IS NULL OR TRY_CAST(TRY_CAST({value} AS {kind}) AS {found}) IS DISTINCT FROM {value})"
        tests.append((column, kind, bad))
    if not tests:
        return
    expressions = ["count(*)"]
    for column, _, bad in tests:
        expressions += [f"count(*) FILTER (WHERE {bad})", f"min(CAST({quote_identifier(column)} AS VARCHAR)) FILTER (WHERE {bad})"]
    row = con.execute(f"SELECT {', '.join(expressions)} FROM {RAW_TABLE}").fetchone()
    total, problems = int(row[0]), []
    for position, (column, kind, _) in enumerate(tests):
        count, example = int(row[1 + 2 * position]), row[2 + 2 * position]
        if count:
            problems.append(
                f"column {column} must hold {kind} values, but {count:,} of {total:,} rows hold values that cannot be read "
                f"as {kind} (for example {str(example)[:40]!r})"
            )
    if problems:
        raise _InputProblem("; ".join(problems) + ". Fix the file, or change the column's type in the dataset")


def _resolve_checks(dataset: Dataset, checks: DatasetChecks | None, home: Path | str | None) -> DatasetChecks:
    if checks is None:
        checks = load_checks(home, dataset.name) if home is not None else DatasetChecks(dataset=dataset.name)
    if checks.dataset != dataset.name:
        raise MlopsError(f"The checks given are for dataset {checks.dataset!r}, not {dataset.name!r}.")
    return checks


def _effective_checks(checks: DatasetChecks, column_types: Mapping[str, str]) -> list[Any]:
    """The declared checks, plus "every column is required" when no check says which are."""
    declared = list(checks.checks)
    if not any(isinstance(check, RequiredColumnsCheck | SchemaCheck) for check in declared):
        if _IMPLICIT_REQUIRED not in {check.name for check in declared}:
            declared.insert(0, RequiredColumnsCheck(
                name=_IMPLICIT_REQUIRED, columns=tuple(column_types),
                description="Every column of the dataset is in the file (no required_columns or schema check is declared)",
            ))
    return declared


def _file_result(ok: bool, total: int, message: str) -> CheckResult:
    return CheckResult(
        FILE_CHECK_NAME, "file", "batch", "error", None, "pass" if ok else "fail", 0, total,
        {"value": 0 if ok else 1, "threshold": 0}, message,
        "The file can be read as this dataset: every value has its column's type",
    )


def _new_batch_id(dataset: str, received_at: datetime) -> str:
    return f"{dataset}-{received_at.astimezone(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


def _record_batch(con, result: IngestResult, identity: Identity) -> None:
    con.execute(
        "INSERT INTO batches (batch_id, dataset, received_at, source_name, content_sha256, row_count, accepted_rows, "
        "quarantined_rows, warned_rows, status, reason, ingested_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [result.batch_id, result.dataset, result.received_at, result.source_name, result.content_sha256, result.rows,
         result.accepted_rows, result.quarantined_rows, result.warned_rows, result.status, result.reason, identity.email],
    )


def _rows(count: int) -> str:
    return f"{count:,} row{'s' if count != 1 else ''}"


def _outcome_reason(results: list[CheckResult], quarantined: int, warned: int) -> tuple[str, str | None]:
    rejecting = [r for r in results if r.rejects_batch]
    if rejecting:
        return "rejected", " ".join(r.message for r in rejecting)
    parts = []
    if quarantined:
        failed = ", ".join(f"{r.name} ({_rows(r.failed_rows)})" for r in results if r.level == "row" and r.status == "fail")
        parts.append(f"{_rows(quarantined)} quarantined: {failed}")
    warned_checks = [r for r in results if r.status == "warn"]
    if warned_checks:
        names = ", ".join(f"{r.name} ({_rows(r.failed_rows)})" if r.level == "row" else r.name for r in warned_checks)
        parts.append(f"passed with warnings{f' on {_rows(warned)}' if warned else ''}: {names}")
    return ("partly_quarantined" if quarantined else "accepted"), ("; ".join(parts) or None)


def ingest_file(
    warehouse: Warehouse,
    dataset: str,
    path: Path | str,
    *,
    identity: Identity,
    checks: DatasetChecks | None = None,
    home: Path | str | None = None,
    now: datetime | None = None,
    source_name: str | None = None,
    file_format: str | None = None,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    raise_on_reject: bool = True,
) -> IngestResult:
    """Validate a CSV or Parquet file against ``dataset``'s checks and load it as one batch.

    Args:
        warehouse: where the dataset lives.
        dataset: a registered dataset name.
        path: the file (``.csv``, ``.tsv``, ``.parquet``; CSV may be gzipped).
        identity: who sends it; needs the ``ingest_data`` permission (reviewer).
        checks: the checks to apply; when omitted they are loaded from
            ``<home>/checks/<dataset>.yaml`` (none when ``home`` is omitted too).
        home: the home folder, for the checks file (``settings.home_path``).
        now: ingestion time (recorded as received_at, and the reference for freshness).
        source_name: the name recorded for the file; its file name when omitted.
        file_format: ``csv``, ``tsv`` or ``parquet`` when the suffix does not tell.
        max_file_bytes: larger files are refused before reading (default 1 GiB).
        raise_on_reject: raise BatchRejectedError for a rejected batch (default), or return
            its result.

    Returns:
        The outcome, also recorded in ``batches`` and ``quality_results``.

    Raises:
        PermissionDeniedError: the identity may not ingest data.
        NotFoundError: the dataset is unknown (the message lists the known ones).
        MlopsError: the file does not exist or its format is unknown; the checks file is invalid.
        BatchRejectedError: the file is too large, empty, malformed, holds values of the
            wrong type, or failed a batch-level error check (e.g. a missing required
            column); the rejection is recorded (with its reason and results) before raising.
    """
    started = time.perf_counter()
    require(identity, "ingest_data")
    entry = get_dataset(warehouse, validate_dataset_name(dataset))
    declared = _resolve_checks(entry, checks, home)
    path = Path(path).expanduser()
    if not path.is_file():
        raise MlopsError(f"File {path} does not exist (or is not a file).")
    fmt = _file_format(path, file_format)
    received_at = (now or datetime.now(UTC)).astimezone(UTC)
    batch_id = _new_batch_id(entry.name, received_at)
    source = source_name or path.name
    size = path.stat().st_size

    def rejected(reason: str, sha: str | None, rows: int = 0) -> IngestResult:
        result = IngestResult(batch_id, entry.name, "rejected", rows, 0, 0, 0, reason, sha, source, received_at,
                              (_file_result(False, rows, reason),), seconds=time.perf_counter() - started)
        with warehouse.transaction() as con:
            _record_batch(con, result, identity)
            record_results(con, result.results, batch_id=batch_id, dataset=entry.name, checked_at=received_at)
        if raise_on_reject:
            raise BatchRejectedError(result.message, result)
        return result

    if size > max_file_bytes:
        return rejected(
            f"the file is {_format_bytes(size)}, over the {_format_bytes(max_file_bytes)} limit for one delivery. "
            "Split it into smaller files (for example one per day) or raise the limit.", None,
        )
    if size == 0:
        return rejected("the file is empty (0 bytes): there is nothing to load.", None)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlops-sha256") as pool:
        # hashlib and DuckDB both release the GIL, so the hash costs no wall-clock time.
        digest = pool.submit(file_sha256, path)
        with warehouse.read() as con:
            try:
                column_types = dataset_column_types(con, entry)
                declared.validate_against(entry, column_types)
                effective = _effective_checks(declared, column_types)
                try:
                    staged = _stage(con, path, fmt, column_types)
                except _InputProblem as problem:
                    return rejected(f"{problem}.", digest.result())
                sha = digest.result()
                earlier = con.execute(
                    "SELECT batch_id, received_at FROM batches WHERE dataset = ? AND content_sha256 = ? AND list_contains(?, status) "
                    "ORDER BY received_at LIMIT 1",
                    [entry.name, sha, list(_LOADED_STATUSES)],
                ).fetchone()
                if earlier is not None:
                    reason = f"the same content was already loaded as batch {earlier[0]} on {earlier[1]:%Y-%m-%d %H:%M %Z}; nothing was loaded again."
                    result = IngestResult(batch_id, entry.name, "duplicate", staged.rows, 0, 0, 0, reason, sha, source, received_at,
                                          duplicate_of=earlier[0], seconds=time.perf_counter() - started)
                    with warehouse.transaction() as tx:
                        _record_batch(tx, result, identity)
                    return result
                history = TABLE_PREFIX + entry.name if table_columns(con, TABLE_PREFIX + entry.name) else None
                target = CheckTarget(entry, STAGE_TABLE, column_types, staged.arrived, staged.text_source, history_table=history)
                results = [
                    _file_result(True, staged.rows, f"All {staged.rows:,} rows were read with the dataset's column types."),
                    *evaluate_checks(con, target, effective, now=received_at),
                ]
                result = _load(warehouse, con, entry, results, staged.rows, batch_id, sha, source, received_at, identity, started)
            finally:
                for table in (STAGE_TABLE, RAW_TABLE, FLAGS_TABLE):
                    con.execute(f"DROP TABLE IF EXISTS {table}")
    if result.status == "rejected" and raise_on_reject:
        raise BatchRejectedError(result.message, result)
    return result


def _load(warehouse: Warehouse, con, entry: Dataset, results: list[CheckResult], rows: int, batch_id: str, sha: str,
          source: str, received_at: datetime, identity: Identity, started: float) -> IngestResult:
    has_flags = bool(table_columns(con, FLAGS_TABLE))
    quarantined = warned = 0
    if has_flags:
        quarantined, warned = (int(v or 0) for v in con.execute(
            f"SELECT count(*) FILTER (WHERE len(_errors) > 0), count(*) FILTER (WHERE len(_errors) = 0 AND len(_warnings) > 0) FROM {FLAGS_TABLE}"
        ).fetchone())
    status, reason = _outcome_reason(results, quarantined, warned)
    if status == "rejected":
        quarantined = warned = 0
    accepted = 0 if status == "rejected" else rows - quarantined
    result = IngestResult(batch_id, entry.name, status, rows, accepted, quarantined, warned, reason, sha, source, received_at,
                          tuple(results), seconds=0.0)
    batch, warnings = quote_identifier(BATCH_COLUMN), quote_identifier(WARNINGS_COLUMN)
    with warehouse.transaction() as tx:
        ensure_dataset_tables(tx, entry)
        if status != "rejected":
            table = dataset_table(entry.name)
            if quarantined or warned:
                # Unflagged rows (nearly all) stream through an anti-join with the small flags
                # table; flagged rows that only broke warn checks follow with their flags.
                tx.execute(
                    f"INSERT INTO {table} BY NAME SELECT t.*, ? AS {batch} "
                    f"FROM {STAGE_TABLE} AS t ANTI JOIN {FLAGS_TABLE} AS f ON f._row = t.rowid",
                    [batch_id],
                )
                tx.execute(
                    f"INSERT INTO {table} BY NAME SELECT t.*, ? AS {batch}, f._warnings AS {warnings} "
                    f"FROM {STAGE_TABLE} AS t JOIN {FLAGS_TABLE} AS f ON f._row = t.rowid WHERE len(f._errors) = 0",
                    [batch_id],
                )
            else:
                tx.execute(f"INSERT INTO {table} BY NAME SELECT t.*, ? AS {batch} FROM {STAGE_TABLE} AS t", [batch_id])
            if quarantined:
                tx.execute(
                    f"INSERT INTO {quarantine_table(entry.name)} BY NAME SELECT t.*, ? AS {batch}, "
                    f"f._errors AS {quote_identifier(FAILED_CHECKS_COLUMN)}, "
                    f"CASE WHEN len(f._warnings) > 0 THEN f._warnings END AS {warnings}, ? AS {quote_identifier(QUARANTINED_AT_COLUMN)} "
                    f"FROM {STAGE_TABLE} AS t JOIN {FLAGS_TABLE} AS f ON f._row = t.rowid WHERE len(f._errors) > 0",
                    [batch_id, received_at],
                )
        result = replace(result, seconds=time.perf_counter() - started)
        _record_batch(tx, result, identity)
        record_results(tx, results, batch_id=batch_id, dataset=entry.name, checked_at=received_at)
        if accepted:
            refresh_dataset_stats(tx, entry.name, entry.time_column)
    return result


def recheck_dataset(
    warehouse: Warehouse,
    dataset: str,
    *,
    identity: Identity,
    checks: DatasetChecks | None = None,
    home: Path | str | None = None,
    now: datetime | None = None,
) -> RecheckResult:
    """Re-run the checks on the dataset's stored rows and record the results.

    Row-level checks and missing-value shares look at every stored row (``unique`` at
    duplicates among them); ``freshness`` at the newest stored time; ``distribution``
    compares the latest loaded batch with the reference window of the other batches;
    ``row_count`` is skipped (it bounds a delivery). Results are recorded under the batch
    id ``recheck-<UTC time>``; nothing is moved or deleted.

    Raises:
        PermissionDeniedError: the identity may not ingest data.
        NotFoundError: unknown dataset.
        MlopsError: the dataset has no stored rows.
    """
    require(identity, "ingest_data")
    entry = get_dataset(warehouse, validate_dataset_name(dataset))
    declared = _resolve_checks(entry, checks, home)
    checked_at = (now or datetime.now(UTC)).astimezone(UTC)
    batch_id = f"recheck-{checked_at:%Y%m%dT%H%M%S%f}"
    table_name = TABLE_PREFIX + entry.name
    with warehouse.read() as con:
        stored = table_columns(con, table_name)
        if not stored:
            raise MlopsError(f"Dataset {entry.name!r} has no stored rows to check yet. Ingest a file first (mlops-app ingest {entry.name} FILE).")
        types = {name: kind for name, kind in stored.items() if not name.startswith("_")}
        declared.validate_against(entry, types)
        latest = con.execute(
            f"SELECT b.batch_id FROM batches b WHERE b.dataset = ? AND list_contains(?, b.status) "
            f"AND EXISTS (SELECT 1 FROM {dataset_table(entry.name)} d WHERE d.{quote_identifier(BATCH_COLUMN)} = b.batch_id) "
            "ORDER BY b.received_at DESC LIMIT 1",
            [entry.name, list(_LOADED_STATUSES)],
        ).fetchone()
        try:
            if latest is not None:
                con.execute(
                    f"CREATE OR REPLACE TEMP TABLE {LATEST_TABLE} AS SELECT * FROM {dataset_table(entry.name)} WHERE {quote_identifier(BATCH_COLUMN)} = ?",
                    [latest[0]],
                )
            target = CheckTarget(
                entry, table_name, types, None, False, history_table=table_name if latest else None,
                current_relation=LATEST_TABLE if latest else None, exclude_batch=latest[0] if latest else None, is_delivery=False,
            )
            results = evaluate_checks(con, target, _effective_checks(declared, types), now=checked_at)
            rows = int(con.execute(f"SELECT count(*) FROM {dataset_table(entry.name)}").fetchone()[0])
        finally:
            con.execute(f"DROP TABLE IF EXISTS {LATEST_TABLE}")
            con.execute(f"DROP TABLE IF EXISTS {FLAGS_TABLE}")
        with warehouse.transaction() as tx:
            record_results(tx, results, batch_id=batch_id, dataset=entry.name, checked_at=checked_at)
    return RecheckResult(batch_id, entry.name, rows, checked_at, tuple(results))


def _file_columns(con, path: Path, file_format: str) -> dict[str, str]:
    """Column names and sniffed DuckDB types of a file (for registering a new dataset)."""
    try:
        if file_format == "parquet":
            source, params, _, _ = _source(con, path, file_format)
        else:
            _csv_header(path, _CSV_SUFFIXES["." + file_format])
            source = "read_csv(?, header = true, delim = ?, quote = '\"', escape = '\"', strict_mode = true)"
            params = [str(path), _CSV_SUFFIXES["." + file_format]]
        described = con.execute(f"DESCRIBE SELECT * FROM {source}", params).fetchall()
    except _InputProblem as problem:
        raise MlopsError(f"{path.name} cannot be read: {problem}.") from None
    except duckdb.Error as error:
        raise MlopsError(f"{path.name} cannot be read: {_explain_read_error(error, file_format)}.") from None
    return {row[0]: row[1] for row in described}


def register_dataset_from_file(
    warehouse: Warehouse,
    name: str,
    path: Path | str,
    *,
    identity: Identity,
    description: str = "",
    owner: str = "",
    source: str = "",
    id_column: str | None = None,
    time_column: str | None = None,
    target: str | None = None,
    roles: Mapping[str, str] | None = None,
    descriptions: Mapping[str, str] | None = None,
    types: Mapping[str, str] | None = None,
    freshness_hours: float | None = None,
    file_format: str | None = None,
) -> Dataset:
    """Register a new dataset whose schema is read from a first file (rows are not loaded).

    Column types come from the file (Parquet's own, or DuckDB's sniffing of a CSV sample);
    ``types`` overrides some. Roles: ``id_column`` -> id, ``time_column`` -> timestamp,
    ``target`` -> target, then ``roles``, else feature. Creates the empty row and
    quarantine tables. Ingest the file afterwards with :func:`ingest_file`.

    Raises:
        PermissionDeniedError: the identity may not ingest data.
        InvalidNameError: a bad dataset name.
        MlopsError: the dataset exists already; the file is unreadable; a column name is not
            a valid identifier; a named id / time / target column is not in the file.
    """
    require(identity, "register_dataset")
    validate_dataset_name(name)
    path = Path(path).expanduser()
    if not path.is_file():
        raise MlopsError(f"File {path} does not exist (or is not a file).")
    try:
        get_dataset(warehouse, name)
    except NotFoundError:
        pass
    else:
        raise MlopsError(f"Dataset {name!r} is already registered; ingest files into it with ingest_file.")
    with warehouse.read() as con:
        found = _file_columns(con, path, _file_format(path, file_format))
    bad = [column for column in found if IDENTIFIER_PATTERN.fullmatch(column) is None]
    if bad:
        raise MlopsError(f"Column names in {path.name} must be {IDENTIFIER_RULE}; rename: {', '.join(repr(b) for b in bad)}.")
    roles = dict(roles or {})
    for column, role in ((id_column, "id"), (time_column, "timestamp"), (target, "target")):
        if column is not None:
            if column not in found:
                raise MlopsError(f"Column {column!r} (the {role} column) is not in {path.name}. Columns: {', '.join(found)}.")
            roles[column] = role
    overrides = {column: duckdb_type(kind) for column, kind in (types or {}).items()}
    columns = tuple(
        Column(column, overrides.get(column, duckdb_type(kind)), roles.get(column, "feature"), (descriptions or {}).get(column, ""))
        for column, kind in found.items()
    )
    entry = Dataset(name, description, owner, source or path.name, columns, target, id_column, time_column, freshness_hours)
    with warehouse.transaction() as con:
        register_dataset(warehouse, entry, con=con)
        ensure_dataset_tables(con, entry)
    return entry


def suggest_checks_from_file(warehouse: Warehouse, dataset: str, path: Path | str, *, file_format: str | None = None) -> DatasetChecks:
    """Suggested checks for a registered dataset, learned from a file before it is loaded.

    Same rules as :func:`mlops_app.quality.suggest_checks`; nothing is written.

    Raises:
        NotFoundError: unknown dataset. MlopsError: the file cannot be staged as the dataset.
    """
    entry = get_dataset(warehouse, dataset)
    path = Path(path).expanduser()
    with warehouse.read() as con:
        column_types = dataset_column_types(con, entry)
        try:
            _stage(con, path, _file_format(path, file_format), column_types)
            return suggest_checks_for_relation(con, STAGE_TABLE, entry, column_types)
        except _InputProblem as problem:
            raise MlopsError(f"{path.name} cannot be loaded as {entry.name}: {problem}.") from None
        finally:
            con.execute(f"DROP TABLE IF EXISTS {STAGE_TABLE}")
