"""The demo's live monitoring: the orchard's daily batches scored and monitored through the season.

The grader was trained on June to mid-July fruit. Replaying the season from the day its
current champion was released (4 August), each day's apples are scored by the champion and
logged, the inspection results that came back that day are recorded as labels, and the
monitoring job runs for the day that just closed. As the fruit ripens the share of good
apples discarded creeps above its 4% limit, and on 20 August the new block and grading
machine move colour, weight and block far from the training data: the page shows the
alerts, the retraining they started, and the challenger waiting for review.

Two ways to run it:

* :func:`build_monitoring_history` replays the whole season once (about a second a day on
  2 cores, so a minute or two). :func:`start_history_in_background` runs it in a separate
  process so the dashboard is browsable meanwhile; :func:`history_progress` reads its
  progress file (``<home>/demo/monitoring-progress.json``) for the page. It resumes where a
  killed build stopped: days already scored are skipped.
* :func:`live_replay` (``mlops-app demo --live``) scores and monitors a new day every few
  seconds, starting after the last replayed day (or over again when the season is done).

Times are the replayed ones: a day's predictions are logged at its close and the monitor
runs as of midnight, so the windows, labels and alerts read like the real season.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time as day_time, timedelta
from pathlib import Path

from mlops_app.processes import process_alive
from mlops_app.auth import Identity, local_identity
from mlops_app.config import Settings, load_settings
from mlops_app.datasets import dataset_table
from mlops_app.errors import MlopsError
from mlops_app.monitoring import MONITOR_FOLDER, monitor_config_from_yaml, monitor_config_path, run_monitor
from mlops_app.registry import Registry, write_atomic
from mlops_app.scoring import record_labels, score_frame
from mlops_app.warehouse import Warehouse

LOG = logging.getLogger("mlops_app.demo_monitoring")

DEMO_MODEL = "apple-grader"
DATASET = "apple_harvest"
HISTORY_START = date(2026, 8, 4)  # the day the grader's current champion (v2) was released
PROGRESS_FILE = "demo/monitoring-progress.json"
LOG_FILE = "demo/monitoring-history.log"
BATCH_PREFIX = "demo-day"
LIVE = "live"  # the progress file's status while `mlops-app demo --live` replays
# Each day's batch is logged at the close of the grading line; the monitor runs at midnight.
DAY_CLOSE = day_time(19, 0)
MEASUREMENTS = ["apple_id", "graded_at", "orchard_block", "variety", "weight_g", "diameter_mm", "colour_score",
                "blemish_area_mm2", "firmness_n", "sugar_brix"]  # fmt: skip

GRADER_MONITORING_YAML = """\
model: apple-grader
window: 1d
kpi_period: 7d
target: is_bad
reference:
  dataset: apple_harvest
  start: 2026-06-01
  end: 2026-07-10
kpis:
  - metric: recall_bad
    label: Share of bad apples caught
    min: 0.93
  - metric: false_discard_rate
    label: Share of good apples discarded
    max: 0.04
drift_share_threshold: 0.8
min_labelled_rows: 200
retrain:
  on_alerts: [drift, kpi]
  trials: 4
  max_rows: 10000
  recent: 28d
  metric: f1
"""
GRADER_MONITORING_COMMENT = (
    "Monitoring settings of the apple grader; `mlops-app monitor` reads this file.\n"
    "KPIs over the last 7 days: catch at least 93% of bad apples, discard at most 4% of good ones.\n"
    "Drift: ripening moves weight, size, colour, firmness and sugar (5-6 of the 8 inputs) away from the\n"
    "June-July training data within weeks; that is expected and judged through the KPIs. The drift alarm\n"
    "(more than 80% of the inputs) is kept for changes beyond the season, such as a new block or machine.\n"
    "An alert on drift or a KPI retrains on the last 28 days of inspected apples and asks for a review of the\n"
    "challenger; while one waits for review, later alerts do not retrain (decide on it first)."
)


@dataclass(frozen=True)
class DayReplay:
    """What replaying one day did."""

    day: date
    scored: int
    version: int | None
    labels: int
    windows: int
    alerts_opened: int
    retraining: tuple[str, ...]
    status: str
    seconds: float

    @property
    def message(self) -> str:
        text = f"{self.day:%Y-%m-%d}: scored {self.scored:,} apples"
        if self.version is not None:
            text += f" with v{self.version}"
        text += f", {self.labels:,} inspection results arrived; status {self.status}"
        if self.alerts_opened:
            text += f"; {self.alerts_opened} alert(s) opened"
        for line in self.retraining:
            text += f"; {line}"
        return text


@dataclass
class HistoryProgress:
    """The state of a history build or a live replay, as written to the progress file."""

    status: str  # "building", "live", "complete", "stopped", "failed" or "interrupted"
    days_done: int
    days_total: int
    day: str | None
    message: str
    started_at: str
    updated_at: str
    pid: int
    alerts_opened: int = 0
    events: list[str] = field(default_factory=list)

    @property
    def share_done(self) -> float:
        return self.days_done / self.days_total if self.days_total else 0.0


def install_monitoring_config(settings: Settings, *, text: str = GRADER_MONITORING_YAML) -> Path:
    """Write the grader's monitoring settings into ``<home>/monitoring/`` unless a file is there (a user's edits win)."""
    path = monitor_config_path(settings.home_path, DEMO_MODEL)
    if path.is_file():
        return path
    monitor_config_from_yaml(text, source="the demo settings")  # checked before it is written
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "".join(f"# {line}\n" for line in GRADER_MONITORING_COMMENT.splitlines())
    write_atomic(path, (header + text).encode("utf-8"))
    return path


def season_days(warehouse: Warehouse) -> list[date]:
    """Every harvest day of the demo dataset, in order."""
    frame = warehouse.query(f"SELECT DISTINCT CAST(graded_at AS DATE) AS day FROM {dataset_table(DATASET)} ORDER BY day")
    return [value.date() if hasattr(value, "date") else value for value in frame["day"]]


def _batch_id(day: date) -> str:
    return f"{BATCH_PREFIX}-{day:%Y%m%d}"


def _scored_days(warehouse: Warehouse) -> set[date]:
    rows = warehouse.query(
        "SELECT DISTINCT batch_id FROM predictions WHERE model = $1 AND batch_id LIKE $2", [DEMO_MODEL, f"{BATCH_PREFIX}-%"]
    )
    return {datetime.strptime(batch.removeprefix(f"{BATCH_PREFIX}-"), "%Y%m%d").date() for batch in rows["batch_id"]}


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def replay_day(
    settings: Settings,
    day: date,
    *,
    identity: Identity | None = None,
    monitor: bool = True,
    retrain: bool = True,
    warehouse: Warehouse | None = None,
    registry: Registry | None = None,
) -> DayReplay:
    """Score one harvest day with the current champion, record the labels that arrived that day, monitor.

    Idempotent: a day already scored is not scored again (its labels and the monitor run
    are, harmlessly). Needs the demo's monitoring settings (:func:`install_monitoring_config`).

    Raises:
        MlopsError: the demo dataset or the grader is missing.
    """
    started = time.monotonic()
    identity = identity or local_identity(settings)
    warehouse = warehouse or Warehouse.from_settings(settings)
    registry = registry or Registry(settings.registry_path, lock_timeout=settings.lock_timeout_seconds)
    start, end = _midnight(day), _midnight(day + timedelta(days=1))
    close = datetime.combine(day, DAY_CLOSE, UTC)
    table = dataset_table(DATASET)
    scored, version = 0, None
    if day not in _scored_days(warehouse):
        apples = warehouse.query(
            f"SELECT {', '.join(MEASUREMENTS)} FROM {table} WHERE graded_at >= $1 AND graded_at < $2 ORDER BY graded_at, apple_id",
            [start, end],
        )
        if len(apples):
            result = score_frame(
                warehouse, registry, DEMO_MODEL, apples, identity, id_column="apple_id", time_column="graded_at",
                batch_id=_batch_id(day), scored_at=close,
            )  # fmt: skip
            scored, version = result.rows, result.version
    arrived = warehouse.query(
        f"SELECT apple_id, is_bad, label_received_at FROM {table} WHERE label_received_at >= $1 AND label_received_at < $2 "
        "AND is_bad IS NOT NULL",
        [start, end],
    )
    labels = 0
    if len(arrived):
        outcome = record_labels(
            warehouse, registry, DEMO_MODEL, arrived, identity, id_column="apple_id", label_column="is_bad",
            received_at_column="label_received_at", source_name=f"inspection-{day:%Y-%m-%d}", now=end,
        )  # fmt: skip
        labels = outcome.recorded
    windows = opened = 0
    retraining: tuple[str, ...] = ()
    status = "not monitored"
    if monitor:
        report = run_monitor(settings, DEMO_MODEL, until=end, now=end, retrain=retrain, warehouse=warehouse, registry=registry)
        run = report.runs[0]
        windows, opened, retraining = len(run.computed), len(run.opened_alerts), tuple(run.retraining + run.errors)
        row = warehouse.query_one(
            "SELECT status FROM monitor_windows WHERE model = $1 AND window_start = $2", [DEMO_MODEL, start]
        )
        status = row[0] if row else "not computed"
    return DayReplay(day, scored, version, labels, windows, opened, retraining, status, time.monotonic() - started)


def withdraw_seeded_request(settings: Settings, registry: Registry) -> str | None:
    """Withdraw the demo's seeded review request for the AutoML challenger, as the data scientist who made it.

    The demo build opens that request today; the replayed season lies before it, and its
    monitoring job retrains and asks for review itself (a reviewer judges one change at a
    time, so a pending request would stop it). Returns the withdrawn request's id, if any.
    """
    from mlops_app.promotion import CHAMPION, DEMO_REQUESTER, PENDING, list_requests, withdraw

    for request in list_requests(registry, DEMO_MODEL, status=PENDING):
        if request.alias == CHAMPION and request.requested_by == DEMO_REQUESTER:
            requester = Identity(email=DEMO_REQUESTER, name="Data scientist", role="reviewer", source="local")
            withdraw(
                settings, registry, DEMO_MODEL, request.id, requester,
                reason="Withdrawn for the season replay: the monitoring job retrains on the latest data and asks for review itself.",
            )  # fmt: skip
            return request.id
    return None


def _write_progress(settings: Settings, progress: HistoryProgress) -> None:
    path = settings.home_path / PROGRESS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(asdict(progress), indent=2).encode("utf-8"))


def history_progress(settings: Settings) -> HistoryProgress | None:
    """The state of the monitoring history build (None when none was started).

    A ``building`` state whose process no longer exists is reported as ``interrupted``;
    starting the build again resumes it.
    """
    path = settings.home_path / PROGRESS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        progress = HistoryProgress(**data)
    except (FileNotFoundError, ValueError, TypeError):
        return None
    if progress.status in ("building", LIVE) and not process_alive(progress.pid):
        what = "build" if progress.status == "building" else "live replay"
        progress.status = "interrupted"
        progress.message = (
            f"The {what} stopped after {progress.days_done} of {progress.days_total} days; "
            "run `mlops-app demo` (or `mlops-app demo --live`) again to resume."
        )
    return progress


def build_monitoring_history(
    settings: Settings,
    *,
    start: date = HISTORY_START,
    end: date | None = None,
    replace_seeded_request: bool = True,
    progress: Callable[[str], None] | None = None,
) -> HistoryProgress:
    """Replay the season day by day (scoring, labels, monitoring, alerts, retraining), writing progress as it goes.

    Resumes a killed build: days already scored are skipped quickly.

    Args:
        replace_seeded_request: first withdraw the demo build's pending review request (see
            :func:`withdraw_seeded_request`), so the replayed alerts can retrain and ask for
            review of their own challenger. Off: the first alert records that retraining
            waits for that review instead.

    Returns:
        The final :class:`HistoryProgress` (also in ``<home>/demo/monitoring-progress.json``).
    """
    say = progress or (lambda message: None)
    warehouse = Warehouse.from_settings(settings)
    registry = Registry(settings.registry_path, lock_timeout=settings.lock_timeout_seconds)
    install_monitoring_config(settings)
    if replace_seeded_request:
        withdraw_seeded_request(settings, registry)
    days = [day for day in season_days(warehouse) if day >= start and (end is None or day <= end)]
    now = datetime.now(UTC).isoformat(timespec="seconds")
    state = HistoryProgress("building", 0, len(days), None, "Starting the monitoring history", now, now, os.getpid())
    _write_progress(settings, state)
    try:
        for index, day in enumerate(days, start=1):
            replayed = replay_day(settings, day, warehouse=warehouse, registry=registry)
            state.days_done, state.day = index, day.isoformat()
            state.alerts_opened += replayed.alerts_opened
            state.message = replayed.message
            if replayed.alerts_opened or replayed.retraining:
                state.events.append(replayed.message)
            state.updated_at = datetime.now(UTC).isoformat(timespec="seconds")
            _write_progress(settings, state)
            say(replayed.message)
    except Exception as error:
        state.status, state.message = "failed", f"{type(error).__name__}: {error}"
        state.updated_at = datetime.now(UTC).isoformat(timespec="seconds")
        _write_progress(settings, state)
        raise
    state.status = "complete"
    state.message = f"Replayed {len(days)} days from {start:%Y-%m-%d}; {state.alerts_opened} alert(s) opened."
    state.updated_at = datetime.now(UTC).isoformat(timespec="seconds")
    _write_progress(settings, state)
    return state


def start_history_in_background(settings: Settings) -> int | None:
    """Start :func:`build_monitoring_history` in a separate process; return its pid (None if one runs or it is complete).

    The process writes ``<home>/demo/monitoring-progress.json`` (read it with
    :func:`history_progress`) and logs to ``<home>/demo/monitoring-history.log``.
    """
    current = history_progress(settings)
    if current is not None and current.status in ("building", LIVE, "complete"):
        return None
    log_path = settings.home_path / LOG_FILE
    log_path.parent.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "MLOPS_APP_HOME": str(settings.home_path)}
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlops_app.demo_monitoring", "history"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=environment,
            start_new_session=True,  # survives the terminal that ran `mlops-app demo`
        )  # fmt: skip
    # Written at once, so a page reading right after sees "building", not nothing.
    now = datetime.now(UTC).isoformat(timespec="seconds")
    if history_progress(settings) is None or history_progress(settings).status != "building":
        _write_progress(settings, HistoryProgress("building", 0, 0, None, "Starting the monitoring history", now, now, process.pid))
    return process.pid


def reset_demo_monitoring(settings: Settings) -> None:
    """Remove the demo's predictions, labels and monitoring results, so the season can be replayed again.

    Registered versions (e.g. retrained challengers) and decided requests stay; a review the
    monitoring job asked for and nobody decided yet is withdrawn, so the replayed alerts can
    retrain again instead of waiting for it.

    Raises:
        MlopsError: the home is not a demo home.
    """
    from mlops_app.alerts import MONITOR_IDENTITY
    from mlops_app.demo import is_demo_home
    from mlops_app.promotion import PENDING, list_requests, withdraw

    if not is_demo_home(settings.home_path):
        raise MlopsError(f"{settings.home_path} is not a demo home; its monitoring history is not the demo's to delete.")
    registry = Registry(settings.registry_path, lock_timeout=settings.lock_timeout_seconds)
    for request in list_requests(registry, DEMO_MODEL, status=PENDING):
        if request.requested_by == MONITOR_IDENTITY.email:
            withdraw(settings, registry, DEMO_MODEL, request.id, MONITOR_IDENTITY, reason="The demo season replay starts over.")
    warehouse = Warehouse.from_settings(settings)
    with warehouse.transaction() as connection:
        for table in ("predictions", "labels", "labels_unmatched", "monitor_windows", "drift_results", "performance_windows", "model_kpis", "alerts"):
            connection.execute(f"DELETE FROM {table} WHERE model = $1", [DEMO_MODEL])
    import shutil

    shutil.rmtree(settings.home_path / "reports" / MONITOR_FOLDER / DEMO_MODEL, ignore_errors=True)
    (settings.home_path / PROGRESS_FILE).unlink(missing_ok=True)


def live_replay(
    settings: Settings,
    seconds_per_day: float = 5.0,
    *,
    days: int | None = None,
    restart: bool = True,
    progress: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> list[DayReplay]:
    """Score and monitor a new day of the season every ``seconds_per_day`` seconds (``mlops-app demo --live``).

    Starts the day after the last replayed day; when the season is done and ``restart`` is
    set, clears the demo's monitoring history and starts again at :data:`HISTORY_START`.

    Args:
        days: stop after this many days (default: the end of the season).
        stop: set it (from another thread, or a signal handler) to stop after the current day.

    Returns:
        What each replayed day did.
    """
    say = progress or (lambda message: None)
    _wait_for_history_build(settings, say, stop)
    warehouse = Warehouse.from_settings(settings)
    registry = Registry(settings.registry_path, lock_timeout=settings.lock_timeout_seconds)
    install_monitoring_config(settings)
    withdraw_seeded_request(settings, registry)
    season = [day for day in season_days(warehouse) if day >= HISTORY_START]
    done = _scored_days(warehouse)
    remaining = [day for day in season if day not in done]
    if not remaining and restart:
        say("The season was fully replayed; starting it over")
        reset_demo_monitoring(settings)
        remaining = season
    replayed: list[DayReplay] = []
    planned = remaining[: days if days is not None else len(remaining)]
    now = datetime.now(UTC).isoformat(timespec="seconds")
    state = HistoryProgress(LIVE, len(season) - len(remaining), len(season), None, "Live replay starting", now, now, os.getpid())
    _write_progress(settings, state)
    for day in planned:
        if stop is not None and stop.is_set():
            break
        began = time.monotonic()
        result = replay_day(settings, day, warehouse=warehouse, registry=registry)
        replayed.append(result)
        state.days_done, state.day, state.message = state.days_done + 1, day.isoformat(), result.message
        state.alerts_opened += result.alerts_opened
        if result.alerts_opened or result.retraining:
            state.events.append(result.message)
        state.updated_at = datetime.now(UTC).isoformat(timespec="seconds")
        _write_progress(settings, state)
        say(result.message)
        pause = seconds_per_day - (time.monotonic() - began)
        if pause > 0:
            if stop is not None:
                stop.wait(pause)
            else:
                time.sleep(pause)
    state.status = "complete" if state.days_done >= state.days_total else "stopped"
    state.message = f"Live replay {state.status} after {len(replayed)} day(s); last day {state.day or 'none'}."
    state.updated_at = datetime.now(UTC).isoformat(timespec="seconds")
    _write_progress(settings, state)
    return replayed


def _wait_for_history_build(settings: Settings, say: Callable[[str], None], stop: threading.Event | None) -> None:
    """A live replay starts after a running history build: both would replay the same days."""
    announced = False
    while (current := history_progress(settings)) is not None and current.status == "building":
        if not announced:
            say(f"Waiting for the monitoring history build to finish ({current.days_done} of {current.days_total} days)")
            announced = True
        if stop is not None:
            if stop.wait(1.0):
                return
        else:
            time.sleep(1.0)


def stop_background_history(settings: Settings, *, timeout: float = 10.0) -> bool:
    """Stop a running history build or live replay of this home (before ``mlops-app demo --reset``); True if one ran."""
    current = history_progress(settings)
    if current is None or current.status not in ("building", LIVE) or not process_alive(current.pid) or current.pid == os.getpid():
        return False
    os.kill(current.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while process_alive(current.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return True


def live_command(settings: Settings, seconds_per_day: float) -> list[str]:
    """The command line of a live replay in its own process (``mlops-app demo --live`` runs it beside the dashboard)."""
    return [sys.executable, "-m", "mlops_app.demo_monitoring", "live", f"{float(seconds_per_day):g}"]


def _main(argv: list[str]) -> int:
    """``python -m mlops_app.demo_monitoring history|live [SECONDS_PER_DAY]``: the background history build or live replay."""
    if argv[:1] not in (["history"], ["live"]):
        print("usage: python -m mlops_app.demo_monitoring history | live [SECONDS_PER_DAY]", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)
    settings = load_settings()
    say = lambda message: print(message, flush=True)  # noqa: E731
    try:
        if argv[0] == "live":
            stop = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: stop.set())  # finish the day being replayed, then stop
            live_replay(settings, float(argv[1]) if len(argv) > 1 else 5.0, progress=say, stop=stop)
            return 0
        build_monitoring_history(settings, progress=say)
    except Exception as error:  # recorded in the progress file by build_monitoring_history
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))


__all__ = [
    "DEMO_MODEL",
    "HISTORY_START",
    "DayReplay",
    "HistoryProgress",
    "build_monitoring_history",
    "history_progress",
    "install_monitoring_config",
    "live_replay",
    "replay_day",
    "reset_demo_monitoring",
    "live_command",
    "start_history_in_background",
    "stop_background_history",
    "withdraw_seeded_request",
]

