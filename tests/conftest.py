"""Shared fixtures: real homes on disk, built with the real demo generator."""

from __future__ import annotations

import os
import shutil
from datetime import date
from pathlib import Path

import pytest

from mlops_app.auth import local_identity
from mlops_app.config import load_settings
from mlops_app.demo import build_demo

# The small demo's last harvest day (95 days from 1 June). The monitored home's history stops the
# day before, so a test can replay this day and watch a page pick it up.
SMALL_DEMO_LAST_DAY = date(2026, 9, 3)
MONITORED_UNTIL = date(2026, 9, 2)

# A small season that still spans the training and holdout windows and the 20 August change.
SMALL_DEMO = {"MLOPS_APP_DEMO_DAYS": "95", "MLOPS_APP_DEMO_APPLES_PER_DAY": "120", "MLOPS_APP_DEMO_TRIALS": "5"}


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch, tmp_path):
    """No test reads the developer's environment or writes the repository's data/ folder."""
    for name in list(os.environ):
        if name.startswith("MLOPS_APP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MLOPS_APP_HOME", str(tmp_path / "home"))


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory) -> Path:
    """A small demo home built once per test session. Tests must not change it."""
    home = tmp_path_factory.mktemp("demo") / "home"
    settings = load_settings({"MLOPS_APP_HOME": str(home), **SMALL_DEMO})
    build_demo(settings, local_identity(settings))
    return home


def _point_settings_at(monkeypatch, home: Path) -> Path:
    """Point the settings of this test at `home`, a small demo (its size settings included)."""
    monkeypatch.setenv("MLOPS_APP_HOME", str(home))
    for name, value in SMALL_DEMO.items():
        monkeypatch.setenv(name, value)
    return home


@pytest.fixture
def use_demo_home(monkeypatch, demo_home) -> Path:
    """Point the settings of this test at the shared demo home."""
    return _point_settings_at(monkeypatch, demo_home)


@pytest.fixture(scope="session")
def monitored_home(demo_home, tmp_path_factory) -> Path:
    """A copy of the small demo with its monitoring history replayed from 4 August to
    :data:`MONITORED_UNTIL` (scored days, labels, windows, alerts, a retrained challenger).
    Built once per session; tests must not change it (copy it to change it)."""
    from mlops_app.demo_monitoring import build_monitoring_history

    home = tmp_path_factory.mktemp("monitored") / "home"
    shutil.copytree(demo_home, home)
    settings = load_settings({"MLOPS_APP_HOME": str(home), **SMALL_DEMO})
    build_monitoring_history(settings, end=MONITORED_UNTIL)
    return home


@pytest.fixture
def use_monitored_home(monkeypatch, monitored_home) -> Path:
    """Point the settings of this test at the shared monitored demo home."""
    return _point_settings_at(monkeypatch, monitored_home)
