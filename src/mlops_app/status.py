"""Traffic-light status words shared by every page.

A status is always a word with an icon and a colour, never colour alone, so it survives a
grey-scale printout and colour blindness (STYLE.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True)
class StatusStyle:
    word: str
    icon: str
    colour: str  # a name from the ui palette
    meaning: str


class Status(Enum):
    HEALTHY = StatusStyle("Healthy", "✅", "green", "working as intended; nothing to do")
    WATCH = StatusStyle("Watch", "⚠️", "orange", "something moved; look at it this week")
    ACT = StatusStyle("Act", "⛔", "red", "something is wrong; act now")
    UNKNOWN = StatusStyle("Not checked", "⚪", "gray", "there is no evidence yet either way")

    @property
    def word(self) -> str:
        return self.value.word

    @property
    def icon(self) -> str:
        return self.value.icon

    @property
    def colour(self) -> str:
        return self.value.colour

    @property
    def meaning(self) -> str:
        return self.value.meaning

    @property
    def rank(self) -> int:
        return {Status.HEALTHY: 0, Status.UNKNOWN: 1, Status.WATCH: 2, Status.ACT: 3}[self]


def worst(statuses: list[Status]) -> Status:
    """The most severe status of several (an empty list is UNKNOWN)."""
    return max(statuses, key=lambda status: status.rank, default=Status.UNKNOWN)
