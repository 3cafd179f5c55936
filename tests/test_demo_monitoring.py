"""The demo's monitoring replay: the history build, the live replay beside the dashboard, stopping it for a reset."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from datetime import date

from mlops_app.config import load_settings
from mlops_app.demo_monitoring import (
    LIVE,
    PROGRESS_FILE,
    history_progress,
    live_command,
    live_replay,
    start_history_in_background,
    stop_background_history,
)
from mlops_app.warehouse import Warehouse
from tests.conftest import MONITORED_UNTIL, SMALL_DEMO, SMALL_DEMO_LAST_DAY


def copy_of(monitored_home, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(monitored_home, home)
    return load_settings({"MLOPS_APP_HOME": str(home), **SMALL_DEMO})


def test_the_history_replays_the_season_into_windows_alerts_and_a_challenger_waiting_for_review(monitored_home):
    settings = load_settings({"MLOPS_APP_HOME": str(monitored_home), **SMALL_DEMO})
    progress = history_progress(settings)
    assert progress.status == "complete" and progress.days_done == progress.days_total == (MONITORED_UNTIL - date(2026, 8, 4)).days + 1
    warehouse = Warehouse.from_settings(settings)
    assert warehouse.query_one("SELECT count(DISTINCT batch_id) FROM predictions")[0] == progress.days_total
    alerts = warehouse.query("SELECT kind, retrain_status, challenger_version FROM alerts ORDER BY opened_at")
    assert len(alerts) >= 1 and alerts["retrain_status"].iloc[0] == "done"
    assert progress.alerts_opened == len(alerts)
    # The already complete history is not started again.
    assert start_history_in_background(settings) is None


def test_a_live_replay_scores_the_next_day_and_records_its_progress(monitored_home, tmp_path):
    settings = copy_of(monitored_home, tmp_path)
    said: list[str] = []
    replayed = live_replay(settings, 0.0, progress=said.append, restart=False)
    assert [day.day for day in replayed] == [SMALL_DEMO_LAST_DAY] and replayed[0].scored > 0
    progress = history_progress(settings)
    assert (progress.status, progress.day, progress.days_done) == ("complete", SMALL_DEMO_LAST_DAY.isoformat(), progress.days_total)
    assert said[-1].startswith(f"{SMALL_DEMO_LAST_DAY:%Y-%m-%d}: scored")
    # Nothing left and no restart: nothing replayed.
    assert live_replay(settings, 0.0, restart=False) == []


def test_a_live_replay_process_is_stopped_before_a_reset_and_a_dead_one_reads_as_interrupted(monitored_home, tmp_path):
    settings = copy_of(monitored_home, tmp_path)
    process = subprocess.Popen(
        live_command(settings, 600), env={**os.environ, "MLOPS_APP_HOME": str(settings.home_path), **SMALL_DEMO},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            current = history_progress(settings)
            if current is not None and current.status == LIVE and current.pid == process.pid and current.day:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"the live replay did not start: {history_progress(settings)}")
        assert stop_background_history(settings) is True
        assert process.wait(timeout=15) == 0  # SIGTERM: it finished its day and stopped cleanly
    finally:
        process.kill()
    assert history_progress(settings).status == "complete"  # the one remaining day was done
    assert stop_background_history(settings) is False

    # A progress file left by a process that died reads as interrupted, with how to resume.
    path = settings.home_path / PROGRESS_FILE
    state = json.loads(path.read_text())
    state.update(status="building", pid=process.pid)
    path.write_text(json.dumps(state))
    interrupted = history_progress(settings)
    assert interrupted.status == "interrupted" and "mlops-app demo" in interrupted.message


def test_the_readme_monitoring_example_is_the_demo_s_settings():
    from pathlib import Path

    from mlops_app.demo_monitoring import GRADER_MONITORING_YAML
    from mlops_app.monitoring import monitor_config_from_yaml

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    example = readme[readme.index("```yaml\nmodel: apple-grader") + len("```yaml\n"):]
    example = example[: example.index("```")]
    assert monitor_config_from_yaml(example) == monitor_config_from_yaml(GRADER_MONITORING_YAML)


def test_starting_the_season_over_clears_the_history_and_withdraws_the_job_s_undecided_review(monitored_home, tmp_path):
    from mlops_app.alerts import MONITOR_IDENTITY
    from mlops_app.demo_monitoring import reset_demo_monitoring
    from mlops_app.promotion import PENDING, list_requests
    from mlops_app.registry import Registry

    settings = copy_of(monitored_home, tmp_path)
    registry = Registry(settings.registry_path)
    [waiting] = list_requests(registry, "apple-grader", status=PENDING)
    assert waiting.requested_by == MONITOR_IDENTITY.email
    reset_demo_monitoring(settings)
    warehouse = Warehouse.from_settings(settings)
    for table in ("predictions", "labels", "monitor_windows", "alerts"):
        assert warehouse.query_one(f"SELECT count(*) FROM {table}")[0] == 0, table
    assert history_progress(settings) is None and list_requests(registry, "apple-grader", status=PENDING) == []
    # The replay starts again on 4 August, and its first alert can retrain at once.
    replayed = live_replay(settings, 0.0, days=2)
    assert [day.day for day in replayed] == [date(2026, 8, 4), date(2026, 8, 5)]
    [again] = list_requests(registry, "apple-grader", status=PENDING)
    assert again.version > waiting.version and again.requested_by == MONITOR_IDENTITY.email
