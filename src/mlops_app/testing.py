"""Run a real dashboard and a real browser: shared by the browser tests and scripts/screenshot.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# Measured on this kind of machine: without the background-networking flags Chromium keeps
# dialling out into a closed network; as root it needs --no-sandbox.
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
# A Streamlit page has finished rendering when its script state says so.
RENDERED = '[data-testid="stApp"][data-test-script-state="notRunning"]'
EXCEPTION = '[data-testid="stException"]'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, process: subprocess.Popen, log: Path, seconds: float) -> None:
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


@contextmanager
def serve_dashboard(
    environ: Mapping[str, str], log: Path, *, timeout: float = 90, cwd: Path | None = None
) -> Iterator[str]:
    """Run ``mlops-app serve`` on a free loopback port with ``environ``; yield its base url.

    Only the MLOPS_APP_* variables of ``environ`` reach the server, on top of this process's
    environment without its own MLOPS_APP_* variables. ``cwd`` is the server's working
    folder: Streamlit reads ``$CWD/.streamlit/secrets.toml`` (st.login's ``[auth]``) from it.
    """
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLOPS_APP_")}
    env.update({key: value for key, value in environ.items() if key.startswith("MLOPS_APP_")})
    command = [str(Path(sys.executable).parent / "mlops-app"), "serve", "--port", str(port)]
    with log.open("w") as handle:
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, log, timeout)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
