"""The app's one way to show a moment: ISO date and time in UTC, with the zone written out."""

from __future__ import annotations

from typing import Any

import pandas as pd


def format_time(value: Any, *, empty: str = "never") -> str:
    """``2026-10-28 17:59 UTC`` for a datetime, pandas Timestamp or ISO text; ``empty`` for none.

    Times without a zone are taken as UTC (the warehouse stores UTC).
    """
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return empty
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.strftime("%Y-%m-%d %H:%M UTC")
