"""Blackouts: when no test may start, and why.

Blackout dates (state testing days), date and time windows (exam hours) and daily quiet hours,
all in the school's time zone. `may_start` is asked at the moment a test is about to begin, so
a window added to the config after the test was planned still stops it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from agent.schedule.calendar import SchoolCalendar
from agent.schedule.intervals import Interval
from agent.schedule.settings import ScheduleSettings

# A chain of touching blocks longer than this (a misconfigured year of quiet hours) is not
# followed to its end: the answer says to ask again then.
_MAX_CHAIN = 400


@dataclass(frozen=True)
class Block:
    """A span with no tests, and the reason in words."""

    start: datetime
    end: datetime
    reason: str


@dataclass(frozen=True)
class Clear:
    """Nothing blocks a test now."""


@dataclass(frozen=True)
class Blocked:
    """A test may not start now: `reason`, and `until` when the blocks in the way have ended."""

    reason: str
    until: datetime


class Blackouts:
    """The configured blackouts of one school, as UTC spans."""

    def __init__(self, settings: ScheduleSettings, calendar: SchoolCalendar) -> None:
        self._settings = settings
        self._calendar = calendar

    def blocks(self, start: datetime, end: datetime) -> list[Block]:
        """Every block that overlaps [start, end)."""
        first = self._calendar.local_date(start) - timedelta(days=1)
        last = self._calendar.local_date(end)
        days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        found = [*self._dates(days), *self._windows(), *self._quiet(days)]
        return sorted((b for b in found if b.start < end and start < b.end), key=lambda b: b.start)

    def spans(self, start: datetime, end: datetime) -> list[Interval]:
        return [(b.start, b.end) for b in self.blocks(start, end)]

    def may_start(self, now: datetime) -> Clear | Blocked:
        """Clear, or Blocked with the first reason and the end of every block chained to it."""
        here = self.blocks(now, now + timedelta(microseconds=1))
        if not here:
            return Clear()
        until = max(b.end for b in here)
        for _ in range(_MAX_CHAIN):
            # Blocks that touch or overlap carry the wait on (exam hours ending in quiet hours).
            onward = self.blocks(until, until + timedelta(microseconds=1))
            if not onward:
                break
            until = max(b.end for b in onward)
        return Blocked(reason=here[0].reason, until=until)

    def _dates(self, days: list[date]) -> list[Block]:
        wanted = set(days)
        return [
            Block(*self._calendar.day_span(day), reason=f"blackout date {day.isoformat()}")
            for day in self._settings.blackout_dates
            if day in wanted
        ]

    def _windows(self) -> list[Block]:
        zone = self._calendar.zone
        return [
            Block(
                window.start.replace(tzinfo=zone).astimezone(UTC),
                window.end.replace(tzinfo=zone).astimezone(UTC),
                reason=_named("blackout window", window.label)
                + f" {window.start:%Y-%m-%d %H:%M}-{window.end:%Y-%m-%d %H:%M}",
            )
            for window in self._settings.blackout_windows
        ]

    def _quiet(self, days: list[date]) -> list[Block]:
        blocks = []
        for quiet in self._settings.quiet_hours:
            crosses_midnight = quiet.end < quiet.start
            reason = _named("quiet hours", quiet.label) + f" {quiet.start:%H:%M}-{quiet.end:%H:%M}"
            for day in days:
                end_day = day + timedelta(days=1) if crosses_midnight else day
                start = self._calendar.at(day, quiet.start)
                end = self._calendar.at(end_day, quiet.end)
                if end > start:  # a DST jump can swallow a short range
                    blocks.append(Block(start, end, reason=reason))
        return blocks


def _named(kind: str, label: str) -> str:
    return f"{kind} ({label})" if label else kind
