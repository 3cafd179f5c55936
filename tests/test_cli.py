from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from mlops_app import __version__
from mlops_app.cli import APP_ENTRY, app, streamlit_command
from mlops_app.config import load_settings
from mlops_app.demo_monitoring import history_progress
from mlops_app.warehouse import Warehouse

runner = CliRunner()


def test_init_creates_an_empty_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_APP_HOME", str(tmp_path / "h"))
    result = runner.invoke(app, ["init"])
    assert result.exit_code == 0, result.output
    from mlops_app.warehouse import MIGRATIONS

    assert f"{len(MIGRATIONS)} migration(s) applied" in result.output
    assert (tmp_path / "h" / "warehouse.duckdb").is_file() and (tmp_path / "h" / "registry").is_dir()
    again = runner.invoke(app, ["init"])
    assert "0 migration(s) applied" in again.output
    assert "No models registered yet" in runner.invoke(app, ["models"]).output


def test_demo_then_models(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_APP_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("MLOPS_APP_DEMO_DAYS", "70")
    monkeypatch.setenv("MLOPS_APP_DEMO_APPLES_PER_DAY", "40")
    monkeypatch.setenv("MLOPS_APP_DEMO_TRIALS", "3")
    result = runner.invoke(app, ["demo", "--no-serve", "--no-history"])
    assert result.exit_code == 0, result.output
    assert "Demo home built" in result.output and "Monitoring history" not in result.output
    listing = runner.invoke(app, ["models"]).output
    assert "apple-grader  latest v3  challenger=v3, champion=v2" in listing
    # Run again: the home is kept, and the season's monitoring is replayed (4-9 August for a 70-day season).
    again = runner.invoke(app, ["demo", "--no-serve"])
    assert again.exit_code == 0 and "already present" in again.output, again.output
    assert "Monitoring history: Replayed 6 days from 2026-08-04" in again.output
    assert "2026-08-09: scored" in again.output
    progress = history_progress(load_settings())
    assert (progress.status, progress.days_done, progress.days_total) == ("complete", 6, 6)
    windows = Warehouse.from_settings(load_settings()).query_one("SELECT count(*) FROM monitor_windows WHERE model = 'apple-grader'")
    assert windows[0] >= 6
    # A third run finds the history complete and replays nothing.
    third = runner.invoke(app, ["demo", "--no-serve"])
    assert third.exit_code == 0 and "Monitoring history" not in third.output


def test_bad_settings_give_one_clear_line_and_exit_2(monkeypatch):
    monkeypatch.setenv("MLOPS_APP_SERVER_PORT", "eighty")
    result = runner.invoke(app, ["settings"])
    assert result.exit_code == 2
    assert "error: Setting server_port from MLOPS_APP_SERVER_PORT must be a int" in result.output
    assert "Traceback" not in result.output


def test_settings_show_their_source(monkeypatch):
    monkeypatch.setenv("MLOPS_APP_SERVER_PORT", "8600")
    output = runner.invoke(app, ["settings"]).output
    assert "server_port = 8600  (MLOPS_APP_SERVER_PORT; MLOPS_APP_SERVER_PORT)" in output
    assert "server_address = '127.0.0.1'  (default" in output


def test_demo_refuses_a_real_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_APP_HOME", str(tmp_path / "h"))
    runner.invoke(app, ["init"])
    result = runner.invoke(app, ["demo", "--no-serve", "--reset"])
    assert result.exit_code == 2 and "--reset will not delete it" in result.output


def test_serve_refuses_unsafe_exposure_and_hides_the_cookie_secret(monkeypatch):
    monkeypatch.setenv("MLOPS_APP_SERVER_ADDRESS", "0.0.0.0")
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 2 and "Refusing to serve the local demo identity on 0.0.0.0" in result.output
    settings = load_settings({"MLOPS_APP_COOKIE_SECRET": "do-not-print-me", "MLOPS_APP_REPLICAS": "2"})
    command = streamlit_command(settings)
    assert "do-not-print-me" not in " ".join(command)
    from mlops_app.cli import streamlit_environment

    environment = streamlit_environment(settings)
    assert environment["STREAMLIT_SERVER_COOKIE_SECRET"] == "do-not-print-me"
    # uvicorn must not replace the peer address with X-Forwarded-For (the trusted-proxy check reads it).
    assert environment["FORWARDED_ALLOW_IPS"] == ""
    monkeypatch.setenv("MLOPS_APP_COOKIE_SECRET", "do-not-print-me")
    output = runner.invoke(app, ["settings"]).output
    assert "cookie_secret = (set)" in output and "do-not-print-me" not in output


def test_serve_command_applies_settings():
    settings = load_settings({"MLOPS_APP_SERVER_PORT": "9100", "MLOPS_APP_BASE_URL_PATH": "mlops"})
    command = streamlit_command(settings)
    assert command[:5] == [sys.executable, "-m", "streamlit", "run", str(APP_ENTRY)]
    assert command[command.index("--server.port") + 1] == "9100"
    assert command[command.index("--server.address") + 1] == "127.0.0.1"
    assert command[command.index("--server.baseUrlPath") + 1] == "mlops"
    assert command[command.index("--server.enableXsrfProtection") + 1] == "true"
    assert command[command.index("--server.maxUploadSize") + 1] == "200"
    override = streamlit_command(settings.with_overrides(proxy_header="X-Email"), address="0.0.0.0", port=9200, base_url_path="")
    assert override[override.index("--server.port") + 1] == "9200"
    assert override[override.index("--server.baseUrlPath") + 1] == ""


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "mlops-app"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == f"mlops-app {__version__}"
    module = subprocess.run([sys.executable, "-m", "mlops_app", "--help"], capture_output=True, text=True, timeout=60)
    assert module.returncode == 0 and "demo" in module.stdout and "serve" in module.stdout


def test_every_command_is_in_the_readme():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    names = [command.name or command.callback.__name__ for command in app.registered_commands]
    missing = [name for name in names if f"`mlops-app {name}" not in readme]
    assert not missing, f"commands missing from the README's command line section: {missing}"


def test_promotion_from_the_command_line(tmp_path, monkeypatch):
    """promote -> requests -> approve refused on a failed gate -> approve with an admin override -> rollback."""
    monkeypatch.setenv("MLOPS_APP_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("MLOPS_APP_DEMO_DAYS", "70")
    monkeypatch.setenv("MLOPS_APP_DEMO_APPLES_PER_DAY", "60")
    monkeypatch.setenv("MLOPS_APP_DEMO_TRIALS", "3")
    assert runner.invoke(app, ["demo", "--no-serve", "--no-history"]).exit_code == 0
    listing = runner.invoke(app, ["requests", "apple-grader"]).output
    request_id = listing.split(":")[0]
    assert request_id.startswith("req-") and "make version 3 champion" in listing
    refused = runner.invoke(app, ["approve", "apple-grader", request_id])
    if "Blocked" in listing:
        assert refused.exit_code == 2 and "blocked" in refused.output
        approved = runner.invoke(app, ["approve", "apple-grader", request_id, "--override-reason", "Holdout periods differ"])
    else:
        approved = refused
    assert approved.exit_code == 0 and "Approved by demo@localhost" in approved.output
    assert "champion=v3" in runner.invoke(app, ["models"]).output
    rollback = runner.invoke(app, ["rollback", "apple-grader", "--reason", "Too many good apples discarded"])
    assert rollback.exit_code == 0 and "version 2" in rollback.output
    bad = runner.invoke(app, ["promote", "apple-grader", "99", "--reason", "x"])
    assert bad.exit_code == 2 and "99" in bad.output
    assert "Delivered 0" in runner.invoke(app, ["deliver-webhooks"]).output


def test_score_labels_and_monitor_from_the_command_line(tmp_path, monkeypatch):
    """score logs a day; a file missing a feature is refused by name; labels; monitor is idempotent,
    including the empty days between the scored day and today (once broken by a wrong argument count)."""
    import pandas as pd

    monkeypatch.setenv("MLOPS_APP_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("MLOPS_APP_DEMO_DAYS", "70")
    monkeypatch.setenv("MLOPS_APP_DEMO_APPLES_PER_DAY", "60")
    monkeypatch.setenv("MLOPS_APP_DEMO_TRIALS", "3")
    assert runner.invoke(app, ["demo", "--no-serve", "--no-history"]).exit_code == 0
    day = sorted((tmp_path / "h" / "demo" / "incoming").glob("grading-line-*.csv"))[-1]
    scored = runner.invoke(app, ["score", "apple-grader@champion", str(day)])
    assert scored.exit_code == 0 and "Scored and logged" in scored.output, scored.output
    frame = pd.read_csv(day)
    frame.drop(columns=["weight_g"]).to_csv(tmp_path / "bad.csv", index=False)
    refused = runner.invoke(app, ["score", "apple-grader", str(tmp_path / "bad.csv")])
    assert refused.exit_code == 2 and "weight_g" in refused.output and "Nothing was scored" in refused.output
    frame[["apple_id", "is_bad"]].dropna().to_csv(tmp_path / "labels.csv", index=False)
    labelled = runner.invoke(app, ["labels", "apple-grader", str(tmp_path / "labels.csv"), "--id-column", "apple_id", "--label-column", "is_bad"])
    assert labelled.exit_code == 0 and "Recorded" in labelled.output, labelled.output
    first = runner.invoke(app, ["monitor", "apple-grader", "--no-retrain"])
    assert first.exit_code == 0, first.output
    assert "window(s) computed" in first.output and "failed" not in first.output
    again = runner.invoke(app, ["monitor", "apple-grader", "--no-retrain"])
    assert again.exit_code == 0 and "0 window(s) computed" in again.output
