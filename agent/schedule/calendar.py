"""The school's calendar: local days, the school day's hour bands, and their UTC instants.

Everything the policy compares is an aware UTC datetime; this module is the one place that
turns the school's wall-clock times (in its own time zone, daylight saving included) into them.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from agent.schedule.settings import WEEKDAYS, SchoolDaySettings


@dataclass(frozen=True)
class Band:
    """One part of the school day, e.g. 09:00-10:00 local time."""

    index: int
    start: time
    end: time

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


class SchoolCalendar:
    """Local dates and bands of one school; `at()` gives the UTC instant of a local time."""

    def __init__(self, settings: SchoolDaySettings) -> None:
        self.zone = zoneinfo.ZoneInfo(settings.timezone)
        self._weekdays = frozenset(WEEKDAYS.index(day) for day in settings.weekdays)
        self.bands = _bands(settings.start, settings.end, settings.band_minutes)

    def at(self, day: date, clock_time: time) -> datetime:
        """The UTC instant of a local wall-clock time (a time skipped by DST moves forward)."""
        return datetime.combine(day, clock_time, tzinfo=self.zone).astimezone(UTC)

    def local_date(self, instant: datetime) -> date:
        return instant.astimezone(self.zone).date()

    def day_span(self, day: date) -> tuple[datetime, datetime]:
        """Local midnight to the next local midnight (23 or 25 hours on DST days)."""
        return self.at(day, time(0)), self.at(day + timedelta(days=1), time(0))

    def next_midnight(self, instant: datetime) -> datetime:
        return self.day_span(self.local_date(instant))[1]

    def is_school_day(self, day: date) -> bool:
        return day.weekday() in self._weekdays

    def band_span(self, day: date, band: Band) -> tuple[datetime, datetime]:
        return self.at(day, band.start), self.at(day, band.end)

    def band_of(self, instant: datetime) -> Band | None:
        """The band a moment falls in, or None outside the school day (or on a day off)."""
        local = instant.astimezone(self.zone)
        if not self.is_school_day(local.date()):
            return None
        clock_time = local.time().replace(tzinfo=None)
        return next((b for b in self.bands if b.start <= clock_time < b.end), None)


def _bands(start: time, end: time, minutes: int) -> tuple[Band, ...]:
    # Arithmetic on a fixed date: bands are wall-clock times, the same every day.
    anchor = date(2000, 1, 3)
    cursor, stop = datetime.combine(anchor, start), datetime.combine(anchor, end)
    bands: list[Band] = []
    while cursor < stop:
        upper = min(cursor + timedelta(minutes=minutes), stop)
        bands.append(Band(len(bands), cursor.time(), upper.time()))
        cursor = upper
    return tuple(bands)
