"""Runs registry writes in a child process for the crash and concurrency tests.

Usage: python registry_crash_helper.py MODE ROOT MODEL SIGNAL_FILE [COUNT]

MODE is one of:
  register-stall  register one version, but stall right before the publishing rename
                  (after writing SIGNAL_FILE), so the parent can SIGKILL us mid-registration;
  append-stall    append one event, but write only half of the line, write SIGNAL_FILE
                  and stall, so the parent can SIGKILL us mid-append;
  register-many   wait until SIGNAL_FILE exists (a start line shared with a sibling
                  process), then register COUNT versions.

The stalls patch os.rename / os.write in this process only.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from mlops_app.registry import Registry

STALL_SECONDS = 60


def _fitted_model(seed: int) -> LogisticRegression:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(40, 2))
    return LogisticRegression().fit(features, (features[:, 0] > 0).astype(int))


def main() -> None:
    mode, root, model, signal_file = sys.argv[1:5]
    signal = Path(signal_file)
    registry = Registry(root, lock_timeout=20)

    if mode == "register-stall":
        real_rename = os.rename

        def stalling_rename(source, target, *args, **kwargs):
            if Path(source).name.startswith(".tmp-"):
                signal.write_text(str(source))
                time.sleep(STALL_SECONDS)
            return real_rename(source, target, *args, **kwargs)

        os.rename = stalling_rename
        registry.register_version(model, _fitted_model(99), actor="crasher@example.com", metrics={"auc": 0.5})
    elif mode == "append-stall":
        real_write = os.write

        def tearing_write(fd, data):
            real_write(fd, data[: len(data) // 2])
            os.fsync(fd)
            signal.write_text("torn")
            time.sleep(STALL_SECONDS)
            return len(data)

        os.write = tearing_write
        registry.append_event(model, "requested", actor="crasher@example.com", version=1, reason="never finished")
    elif mode == "register-many":
        count = int(sys.argv[5])
        deadline = time.monotonic() + 30
        while not signal.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        for index in range(count):
            registry.register_version(model, _fitted_model(index), actor=f"worker-{os.getpid()}@example.com")
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
