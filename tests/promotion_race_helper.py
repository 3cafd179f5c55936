"""Approves one promotion request from a child process, for the race test.

Usage: python promotion_race_helper.py HOME MODEL REQUEST_ID APPROVER_EMAIL READY_FILE START_FILE

Imports everything first, writes READY_FILE, waits until START_FILE exists (a start line
shared with a sibling process), then approves and prints one JSON line:
``{"ok": true, "status": ...}`` or ``{"ok": false, "error": "...", "type": "..."}``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def main() -> None:
    home, model, request_id, email, ready_file, start_file = sys.argv[1:7]
    os.environ["MLOPS_APP_HOME"] = home
    from mlops_app.auth import Identity
    from mlops_app.config import load_settings
    from mlops_app.errors import MlopsError
    from mlops_app.promotion import approve
    from mlops_app.registry import Registry

    settings = load_settings()
    registry = Registry(settings.registry_path, lock_timeout=20)
    identity = Identity(email=email, name=email, role="approver", source="local")
    Path(ready_file).write_text("ready")
    deadline = time.monotonic() + 30
    while not Path(start_file).exists() and time.monotonic() < deadline:
        time.sleep(0.001)
    try:
        request = approve(settings, registry, model, request_id, identity, comment=f"approved by {email}")
        print(json.dumps({"ok": True, "status": request.status, "by": request.decided_by}))
    except MlopsError as error:
        print(json.dumps({"ok": False, "error": str(error), "type": type(error).__name__}))


if __name__ == "__main__":
    main()
