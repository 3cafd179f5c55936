"""Evidently reports saved under the home's reports folder, built on request.

A report is an HTML file, ``<home>/reports/data_quality/<dataset>/<kind>__<batch_id>.html``
(``reports/monitoring/`` belongs to :mod:`mlops_app.monitoring`). Building
one is expensive (``import evidently`` alone takes about 8 s and 290 MB, measured), so:

* evidently is imported inside :func:`data_summary_report`, never when this module is
  imported: the dashboard pays for it only when someone asks for a report;
* the rows are sampled inside DuckDB (a repeatable reservoir sample of at most
  ``max_rows``), so only a small frame reaches pandas and Evidently;
* a saved report is reused: asking twice for the same batch opens the same file, and a
  lock file per report makes two sessions asking at once compute it once.

Every path comes from :func:`report_path`, which validates the names and checks that the
result stays inside the reports folder (STYLE.md, "one path builder, validated").

Evidently writes the sampled values into ``<script>`` blocks of the HTML without escaping
``</`` (evidently 0.7.23, ``file_html_template``), so a delivered text value such as
``</script><script>...`` would run as script wherever the report is opened, the dashboard
included. The sample therefore replaces ``<`` in text values by the look-alike ``＜``
(U+FF1C) inside DuckDB: no value can close or open a tag, and the report still reads the
same. Column names and batch ids cannot hold ``<`` (their name rules).
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import filelock
import pandas as pd

from mlops_app.datasets import (
    BATCH_COLUMN,
    QUARANTINE_PREFIX,
    SYSTEM_COLUMNS,
    TABLE_PREFIX,
    dataset_table,
    get_dataset,
    quarantine_table,
    table_columns,
    type_family,
    validate_dataset_name,
)
from mlops_app.errors import InvalidNameError, MlopsError
from mlops_app.warehouse import Warehouse, quote_identifier

__all__ = [
    "DATA_SUMMARY",
    "REPORTS_FOLDER",
    "REPORT_KINDS",
    "ReportSample",
    "SavedReport",
    "data_summary_report",
    "list_reports",
    "report_path",
    "report_sample",
    "saved_report",
    "validate_batch_id",
]

DATA_SUMMARY = "data_summary"
REPORTS_FOLDER = "data_quality"  # under the home's reports folder
REPORT_KINDS = {DATA_SUMMARY: "Data summary"}
DEFAULT_MAX_ROWS = 50_000
# ASCII letters, digits, '_' and '-': batch ids made by ingestion (`<dataset>-<UTC time>-<hex>`)
# and by older loaders (`<dataset>-<date>`) fit; dots, separators and look-alikes do not.
BATCH_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_SAMPLE_SEED = 42
# Stands in for "<" in text values, so no delivered value can end Evidently's <script> blocks.
SAFE_LESS_THAN = "\uff1c"
_LOCK_TIMEOUT_SECONDS = 600


@dataclass(frozen=True)
class SavedReport:
    """A report file on disk."""

    dataset: str
    batch_id: str
    kind: str
    path: Path
    saved_at: datetime
    size_bytes: int


@dataclass(frozen=True)
class ReportSample:
    """The rows a report is built from: at most ``max_rows`` of the batch, sampled in DuckDB."""

    frame: pd.DataFrame
    total_rows: int
    column_types: dict[str, str]

    @property
    def sampled(self) -> bool:
        return len(self.frame) < self.total_rows


def validate_batch_id(batch_id: str) -> str:
    """Return ``batch_id`` if it may name a report file, else raise InvalidNameError naming the rule."""
    if not isinstance(batch_id, str) or BATCH_ID_PATTERN.fullmatch(batch_id) is None:
        raise InvalidNameError(
            f"Batch id {batch_id!r} cannot name a report: use 1-128 ASCII letters, digits, '_' and '-', "
            "starting with a letter or digit (e.g. apple_harvest-20261013T190000-513f20)."
        )
    return batch_id


def report_path(reports_dir: Path | str, dataset: str, batch_id: str, kind: str = DATA_SUMMARY) -> Path:
    """``<reports_dir>/data_quality/<dataset>/<kind>__<batch_id>.html``, the one place report paths come from.

    Raises:
        InvalidNameError: the dataset name, batch id or kind breaks its rule, or the path
            would leave the reports folder.
    """
    if kind not in REPORT_KINDS:
        raise InvalidNameError(f"Unknown report kind {kind!r}; known kinds: {', '.join(REPORT_KINDS)}.")
    root = Path(reports_dir).expanduser().resolve() / REPORTS_FOLDER
    folder = root / validate_dataset_name(dataset)
    path = (folder / f"{kind}__{validate_batch_id(batch_id)}.html").resolve()
    if path.parent != folder or root not in path.parents:  # pragma: no cover - the name rules already forbid it
        raise InvalidNameError(f"Report for {dataset!r} / {batch_id!r} would leave the reports folder.")
    return path


def list_reports(reports_dir: Path | str, dataset: str) -> list[SavedReport]:
    """The saved reports of ``dataset``, newest first (files that do not follow the naming rule are ignored)."""
    folder = Path(reports_dir).expanduser().resolve() / REPORTS_FOLDER / validate_dataset_name(dataset)
    reports = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return []
    for entry in entries:
        kind, separator, rest = entry.name.partition("__")
        if not separator or kind not in REPORT_KINDS or not rest.endswith(".html") or not entry.is_file():
            continue
        batch_id = rest.removesuffix(".html")
        if BATCH_ID_PATTERN.fullmatch(batch_id) is None:
            continue
        stat = entry.stat()
        reports.append(
            SavedReport(dataset, batch_id, kind, Path(entry.path), datetime.fromtimestamp(stat.st_mtime, UTC), stat.st_size)
        )
    reports.sort(key=lambda report: report.saved_at, reverse=True)
    return reports


def saved_report(reports_dir: Path | str, dataset: str, batch_id: str, kind: str = DATA_SUMMARY) -> SavedReport | None:
    """The saved report of a batch, or None when it was not built yet.

    Raises:
        InvalidNameError: see :func:`report_path`.
    """
    path = report_path(reports_dir, dataset, batch_id, kind)
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return SavedReport(dataset, batch_id, kind, path, datetime.fromtimestamp(stat.st_mtime, UTC), stat.st_size)


def report_sample(warehouse: Warehouse, dataset: str, batch_id: str, *, max_rows: int = DEFAULT_MAX_ROWS) -> ReportSample:
    """The batch as it was delivered (loaded and quarantined rows), sampled to ``max_rows`` inside DuckDB.

    System columns (``_batch_id``, ``_warnings``...) are left out; ``<`` in text values
    becomes ``＜`` (see the module docstring). The sample is a repeatable reservoir sample,
    so the same batch gives the same report.

    Raises:
        NotFoundError: no such dataset.
        MlopsError: the batch has no stored rows (rejected, a duplicate, or unknown).
    """
    entry = get_dataset(warehouse, dataset)
    validate_batch_id(batch_id)
    max_rows = max(1, int(max_rows))
    with warehouse.read() as con:
        stored = table_columns(con, TABLE_PREFIX + entry.name)
        columns = {name: kind for name, kind in stored.items() if name not in SYSTEM_COLUMNS and not name.startswith("_")}
        select = ", ".join(
            f"replace(CAST({quote_identifier(name)} AS VARCHAR), '<', '{SAFE_LESS_THAN}') AS {quote_identifier(name)}"
            if type_family(kind) == "text" else quote_identifier(name)
            for name, kind in columns.items()
        )
        batch = quote_identifier(BATCH_COLUMN)
        parts = [f"SELECT {select} FROM {dataset_table(entry.name)} WHERE {batch} = $batch"] if columns else []
        if columns and table_columns(con, QUARANTINE_PREFIX + entry.name):
            parts.append(f"SELECT {select} FROM {quarantine_table(entry.name)} WHERE {batch} = $batch")
        if not parts:
            raise MlopsError(f"Dataset {entry.name!r} has no stored rows yet, so there is nothing to report on.")
        rows_sql = " UNION ALL ".join(parts)
        total = int(con.execute(f"SELECT count(*) FROM ({rows_sql})", {"batch": batch_id}).fetchone()[0])
        if total == 0:
            raise MlopsError(
                f"Batch {batch_id} of {entry.name} has no stored rows (it was rejected, was a duplicate, or does not exist), "
                "so there is nothing to report on. Pick a loaded delivery."
            )
        # The sample size is an int we built, so it can sit in the SQL text (SAMPLE takes no parameters).
        sample_sql = f"SELECT * FROM ({rows_sql})"
        if total > max_rows:
            sample_sql += f" USING SAMPLE reservoir({max_rows} ROWS) REPEATABLE ({_SAMPLE_SEED})"
        frame = con.execute(sample_sql, {"batch": batch_id}).df()
    return ReportSample(frame, total, columns)


def _data_definition(entry, column_types: dict[str, str]):
    from evidently import DataDefinition

    numerical, categorical, datetimes = [], [], []
    for name, kind in column_types.items():
        if name in (entry.id_column, entry.time_column):
            continue
        family = type_family(kind)
        if family in ("integer", "number"):
            numerical.append(name)
        elif family in ("text", "boolean"):
            categorical.append(name)
        elif family in ("date", "timestamp"):
            datetimes.append(name)
    return DataDefinition(
        id_column=entry.id_column if entry.id_column in column_types else None,
        timestamp=entry.time_column if entry.time_column in column_types else None,
        numerical_columns=numerical,
        categorical_columns=categorical,
        datetime_columns=datetimes,
    )


def data_summary_report(
    warehouse: Warehouse,
    dataset: str,
    batch_id: str,
    reports_dir: Path | str,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    rebuild: bool = False,
) -> Path:
    """Evidently's data summary (DataSummaryPreset) of one delivery, saved as HTML; reused when saved before.

    Args:
        reports_dir: the home's reports folder (``settings.reports_path``).
        max_rows: rows sampled from the batch (in DuckDB) for the report.
        rebuild: build it again even when a saved report exists.

    Returns:
        The path of the HTML file.

    Raises:
        InvalidNameError: a bad dataset name or batch id.
        NotFoundError: no such dataset.
        MlopsError: the batch has no stored rows.
    """
    path = report_path(reports_dir, dataset, batch_id, DATA_SUMMARY)
    if path.is_file() and not rebuild:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    # One builder per report: a second session asking for the same report waits, then reuses it.
    with filelock.FileLock(str(path.with_name(f".{path.name}.lock")), timeout=_LOCK_TIMEOUT_SECONDS):
        if path.is_file() and not rebuild:
            return path
        entry = get_dataset(warehouse, dataset)
        sample = report_sample(warehouse, dataset, batch_id, max_rows=max_rows)

        from evidently import Dataset, Report  # about 8 s and 290 MB on first import (measured)
        from evidently.presets import DataSummaryPreset

        data = Dataset.from_pandas(sample.frame, data_definition=_data_definition(entry, sample.column_types))
        report = Report(
            [DataSummaryPreset()],
            metadata={
                "dataset": entry.name,
                "batch_id": batch_id,
                "rows_in_batch": sample.total_rows,
                "rows_in_report": len(sample.frame),
            },
        )
        snapshot = report.run(data, None, name=f"{entry.name} {batch_id}")
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            # save_html writes only when given a str (a Path is silently ignored in evidently 0.7.23).
            snapshot.save_html(str(temporary))
            if not temporary.is_file():  # pragma: no cover - guards against that API quirk coming back
                raise MlopsError(f"Evidently did not write the report for batch {batch_id}.")
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    return path
