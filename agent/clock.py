"""The daemon's clock: real time in service, a faster one in tests of the schedule.

The test schedule is planned in days and hour bands; a test of it cannot wait for real weeks.
`ScaledClock` runs `speed` times faster than real time from a chosen start, and `wall()` says
when, in real time, it will show a given moment, which is what APScheduler is given to fire a
job. `SystemClock` is the identity.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time on this clock (aware, UTC)."""
        ...

    def wall(self, at: datetime) -> datetime:
        """The real UTC time at which this clock will show `at`."""
        ...

    def seconds(self, simulated: float) -> float:
        """Real seconds that `simulated` seconds of this clock take."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def wall(self, at: datetime) -> datetime:
        return at

    def seconds(self, simulated: float) -> float:
        return simulated


class ScaledClock:
    """Shows `start` now and runs `speed` times faster than real time."""

    def __init__(self, start: datetime, speed: float) -> None:
        if start.tzinfo is None or speed <= 0:
            raise ValueError("start must be aware and speed positive")
        self._start = start
        self._speed = speed
        self._real_start = datetime.now(UTC)
        self._monotonic_start = time.monotonic()

    def now(self) -> datetime:
        elapsed = time.monotonic() - self._monotonic_start
        return self._start + timedelta(seconds=elapsed * self._speed)

    def wall(self, at: datetime) -> datetime:
        return self._real_start + (at - self._start) / self._speed

    def seconds(self, simulated: float) -> float:
        return simulated / self._speed
