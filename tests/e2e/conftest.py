"""A real `mlops-app serve` on a free loopback port, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import SMALL_DEMO

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# Flags measured on this kind of machine: without the background-networking ones Chromium
# keeps dialling out into a closed network.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
DONE = '[data-testid="stApp"][data-test-script-state="notRunning"]'


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, process: subprocess.Popen, log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlops-app serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"mlops-app serve did not become healthy in {seconds} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def served_demo(demo_home, tmp_path_factory):
    """The dashboard served over the shared demo home; yields its base url."""
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    environ = {**{k: v for k, v in os.environ.items() if not k.startswith("MLOPS_APP_")}, "MLOPS_APP_HOME": str(demo_home), **SMALL_DEMO}
    command = [str(Path(sys.executable).parent / "mlops-app"), "serve", "--port", str(port)]
    with log.open("w") as handle:
        process = subprocess.Popen(command, env=environ, stdout=handle, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def browser_type_launch_args():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}; `apt-get install chromium` (scripts/test.sh does it).")
    return {"executable_path": CHROMIUM, "args": CHROMIUM_ARGS, "headless": True}
