"""Whether a process recorded by a job (a monitor run, the demo's history build) still runs here."""

from __future__ import annotations

import os


def process_alive(pid: int) -> bool:
    """True while process ``pid`` exists on this machine (signal 0 probes without touching it).

    A process owned by another user answers PermissionError: it exists, so it counts as alive.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
