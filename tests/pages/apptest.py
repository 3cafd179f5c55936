"""Open a page of the app the way a browser does: through the entry script, with its query string."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from streamlit.testing.v1 import AppTest

ENTRY = str(Path(__file__).resolve().parents[2] / "app" / "main.py")


def open_page(page: str | None, query: Mapping[str, str | None] | None = None, *, timeout: float = 90, check: bool = True) -> AppTest:
    """Run the entry script, then `pages/<page>.py` with `query` (None values left out).

    `page=None` stays on the entry script's default page (the overview). With `check`, a page
    that raised fails the test here, with the exception in the message.
    """
    at = AppTest.from_file(ENTRY, default_timeout=timeout).run()
    if page is not None or query:
        for name, value in (query or {}).items():
            if value is not None:
                at.query_params[name] = value
        if page is not None:
            at.switch_page(f"../pages/{page}.py")
        at.run()
    if check:
        assert not at.exception, at.exception
    return at
