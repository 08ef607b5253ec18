"""The agent's daily data budget: what a day may move, what it has moved, whether a test fits.

A day is a local date at the school, so the budget renews at the school's midnight. The ledger
is the `RunLog`: rounds are charged at their estimate from the moment they start, then at what
their results moved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime

from agent.schedule.calendar import SchoolCalendar
from agent.schedule.runs import RunLog
from agent.schedule.settings import BudgetSettings

# Warm-up bytes (moved, then discarded), TCP/IP and HTTP overhead on top of the measured rate.
OVERHEAD = 1.2


@dataclass(frozen=True)
class BudgetFigures:
    """What a result carries: `ThroughputTest.budget_bytes` and `.budget_used_bytes`."""

    budget_bytes: int
    used_bytes: int


def round_estimate_bytes(*, rate_bps: float, seconds_each_way: float, tests: int = 1) -> int:
    """Bytes `tests` download-and-upload tests move at `rate_bps`, overhead included.

    Example: an on-net and an internet test on a 1 Gbit/s link, 10 s each way:
        >>> round_estimate_bytes(rate_bps=1e9, seconds_each_way=10, tests=2)
        6000000000
    """
    return math.ceil(rate_bps / 8 * seconds_each_way * 2 * tests * OVERHEAD)


class DataBudget:
    """Per-day budget over the run log; `can_spend` decides whether a test may start."""

    def __init__(self, settings: BudgetSettings, log: RunLog, calendar: SchoolCalendar) -> None:
        self.settings = settings
        self._log = log
        self._calendar = calendar

    def used_bytes(self, day: date) -> int:
        return self._log.charged_bytes(day)

    def remaining_bytes(self, day: date) -> int:
        return max(0, self.settings.daily_bytes - self.used_bytes(day))

    def fits(self, day: date, estimate_bytes: int) -> bool:
        return self.used_bytes(day) + estimate_bytes <= self.settings.daily_bytes

    def can_spend(self, now: datetime, estimate_bytes: int) -> bool:
        """Whether a test expected to move `estimate_bytes` fits in today's budget."""
        return self.fits(self._calendar.local_date(now), estimate_bytes)

    def figures(self, day: date, *, settled: int | None = None) -> BudgetFigures:
        """The day's budget and bytes used, round `settled` counted at what it moved so far."""
        used = self._log.charged_bytes(day, settled=settled)
        return BudgetFigures(budget_bytes=self.settings.daily_bytes, used_bytes=used)
