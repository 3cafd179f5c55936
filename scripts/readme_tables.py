"""Rewrite the README's settings table from mlops_app.config.SETTINGS.

    .venv/bin/python scripts/readme_tables.py
"""

from __future__ import annotations

import re
from pathlib import Path

from mlops_app.config import settings_table_markdown

README = Path(__file__).resolve().parents[1] / "README.md"


def main() -> None:
    text = README.read_text()
    table = re.compile(r"^\| Setting \| Environment variable \| Default \| Meaning \|\n(?:\|.*\|\n?)+", re.MULTILINE)
    if not table.search(text):
        raise SystemExit("README.md has no settings table to replace")
    README.write_text(table.sub(settings_table_markdown() + "\n", text, count=1))
    print("README settings table updated")


if __name__ == "__main__":
    main()
