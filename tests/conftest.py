"""Shared fixtures: real homes on disk, built with the real demo generator."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlops_app.auth import local_identity
from mlops_app.config import load_settings
from mlops_app.demo import build_demo

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


@pytest.fixture
def use_demo_home(monkeypatch, demo_home) -> Path:
    """Point the settings of this test at the shared demo home."""
    monkeypatch.setenv("MLOPS_APP_HOME", str(demo_home))
    for name, value in SMALL_DEMO.items():
        monkeypatch.setenv(name, value)
    return demo_home
