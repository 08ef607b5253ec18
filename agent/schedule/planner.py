"""Where the next test goes: a random moment in the least-covered part of the school week.

The goal is a verdict: `valid_tests` valid tests over `distinct_days` days, with one in every
band of the school day, inside the last `window_days`. The school day is a grid of cells (one
per date and band); the planner scores every cell it can still reach and draws a start at
random inside the best ones:

1. bands with the fewest valid tests in the window come first, so every hour gets seen;
2. when the tests still wanted can only just reach the goal's number of days, days without a
   valid test come first (with the cap of rounds per day, this is seldom needed);
3. then the earliest date, so the goal is reached soon;
4. then a uniformly random second inside what is left of the cell once blackouts, quiet hours
   and the room a round needs are cut out. Each school draws its own seconds, so schools do not
   all start on the hour.

A cell is out of reach when it is past, on a day off, on a day at its cap of rounds, on a day
whose budget cannot take the round, wholly blacked out, or within `min_gap_minutes` of another
round. Once the goal is met the planner slows down to what keeps it met: it finds when the
oldest valid tests ageing out of the window would break the goal (the deadline), scores the
cells as the window will be then, and plans from three days before it: room for a failed
replacement to be tried again before the goal lapses. With the defaults that is about 12
rounds per 14 days once the goal is met (10 is the least that keeps it), against up to 20.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from agent.schedule.blackout import Blackouts
from agent.schedule.calendar import Band, SchoolCalendar
from agent.schedule.intervals import Interval, random_instant, shrink_ends, subtract
from agent.schedule.runs import Run
from agent.schedule.settings import ScheduleSettings

# Looked ahead at most this far for a reachable cell (a long break is usually a blackout).
MAX_HORIZON_DAYS = 366
# Once the goal is met, the next round is planned at most this long before the goal would
# break: room to land in the band that is about to go missing, even across a weekend.
MAINTENANCE_LEAD = timedelta(days=3)


@dataclass(frozen=True)
class Progress:
    """How far the window is from the goal: valid tests, days with one, valid tests per band."""

    valid_tests: int
    days: int
    band_tests: tuple[int, ...]
    met: bool

    @property
    def bands_covered(self) -> int:
        return sum(1 for count in self.band_tests if count)


@dataclass(frozen=True)
class _Cell:
    score: tuple[int, int]
    day: date
    band: Band
    free: list[Interval]


def progress_of(
    runs: Sequence[Run], *, settings: ScheduleSettings, calendar: SchoolCalendar
) -> Progress:
    """Progress of `runs` (those of the window) towards the goal."""
    goal = settings.goal
    valid = [run for run in runs if run.valid]
    band_tests = [0] * len(calendar.bands)
    for run in valid:
        band = calendar.band_of(run.started_at)
        if band is not None:
            band_tests[band.index] += 1
    days = len({run.day for run in valid})
    met = len(valid) >= goal.valid_tests and days >= goal.distinct_days and all(band_tests)
    return Progress(len(valid), days, tuple(band_tests), met)


class Planner:
    """Picks start times; pure apart from `rng`, with time and history passed in."""

    def __init__(
        self,
        settings: ScheduleSettings,
        calendar: SchoolCalendar,
        blackouts: Blackouts,
        rng: random.Random,
    ) -> None:
        self._settings = settings
        self._calendar = calendar
        self._blackouts = blackouts
        self._rng = rng

    def next_start(
        self, *, now: datetime, runs: Sequence[Run], fits_budget: Callable[[date], bool]
    ) -> datetime | None:
        """The next start, or None if no cell is reachable within a year (ask again later).

        `runs` are the rounds of at least the last `window_days`; `fits_budget(day)` says
        whether that day's budget can still take a round.
        """
        window = timedelta(days=self._settings.goal.window_days)
        recent = [run for run in runs if run.started_at > now - window]
        earliest, counted = now, recent
        if self._progress(recent).met:
            # Plan for the window as it will be when the goal would first break, a little early:
            # room for a failed replacement to be tried again before the goal lapses.
            deadline = self._goal_breaks_at(recent, window)
            earliest = max(now, deadline - MAINTENANCE_LEAD)
            counted = [run for run in recent if run.started_at > deadline - window]
        progress = self._progress(counted)
        cells = self._reachable(earliest, recent, progress, fits_budget)
        if not cells:
            return None
        best = min(cells, key=lambda cell: (cell.score, cell.day))
        ties = [c for c in cells if c.score == best.score and c.day == best.day]
        chosen = self._rng.choice(ties)
        return random_instant(chosen.free, self._rng)

    def _progress(self, runs: Sequence[Run]) -> Progress:
        return progress_of(runs, settings=self._settings, calendar=self._calendar)

    def _goal_breaks_at(self, recent: Sequence[Run], window: timedelta) -> datetime:
        """When the goal, met now, stops being met as valid runs age out of the window."""
        valid = sorted((run for run in recent if run.valid), key=lambda run: run.started_at)
        for index, run in enumerate(valid):
            if not self._progress(valid[index + 1 :]).met:
                return run.started_at + window
        raise AssertionError("a goal met by no runs")  # valid_tests >= 1

    def _reachable(
        self,
        earliest: datetime,
        recent: Sequence[Run],
        progress: Progress,
        fits_budget: Callable[[date], bool],
    ) -> list[_Cell]:
        goal = self._settings.goal
        rounds_on = Counter(run.day for run in recent)
        # A day that has a valid test already is passed over only when every test still
        # wanted must land on a new day for the goal's count of days to be reached.
        days_short = (
            progress.days < goal.distinct_days
            and goal.valid_tests - progress.valid_tests <= goal.distinct_days - progress.days
        )
        valid_days = {run.day for run in recent if run.valid}
        gap = timedelta(minutes=goal.min_gap_minutes)
        near_runs = [(run.started_at - gap, run.started_at + gap) for run in recent]
        # Nothing scores better than this: stop looking once a cell has it.
        floor = (min(progress.band_tests, default=0), 0)
        first = self._calendar.local_date(earliest)
        cells: list[_Cell] = []
        for offset in range(MAX_HORIZON_DAYS):
            day = first + timedelta(days=offset)
            if offset >= goal.window_days and cells:
                break
            if not self._calendar.is_school_day(day) or rounds_on[day] >= goal.max_tests_per_day:
                continue
            if not fits_budget(day):
                continue
            day_rank = int(days_short and day in valid_days)
            for band in self._calendar.bands:
                free = self._free(day, band, earliest, near_runs)
                if free:
                    score = (progress.band_tests[band.index], day_rank)
                    cells.append(_Cell(score, day, band, free))
            if any(cell.score == floor for cell in cells):
                break
        return cells

    def _free(
        self, day: date, band: Band, earliest: datetime, near_runs: list[Interval]
    ) -> list[Interval]:
        start, end = self._calendar.band_span(day, band)
        start = max(start, earliest)
        if start >= end:
            return []
        holes = [*self._blackouts.spans(start, end), *near_runs]
        # A start leaves the round room to finish before the band ends or a block begins.
        room = timedelta(seconds=self._settings.round_seconds)
        return shrink_ends(subtract([(start, end)], holes), room)
