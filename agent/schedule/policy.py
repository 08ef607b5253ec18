"""`TestPolicy`: the one object the agent daemon asks when throughput tests may run.

Use it like this (`now` defaults to the injected clock):

    policy = TestPolicy(settings.schedule, settings.state_dir)
    start = policy.next_start()                  # plan a job at `start` (None: ask again later)
    # ... at `start`:
    decision = policy.decide(estimate_bytes=est)
    if isinstance(decision, Defer):             # blackout, quiet hours, daily cap or budget
        log(decision.reason); plan policy.next_start() again
    else:                                        # Go: the round is on the ledger, charged at est
        slot = await slots.acquire(client, seconds)   # shared exit: Busy -> policy.release()
        results = await run_round()
        for result in results:
            outbox.add([policy.record(result, ticket=decision.ticket, final=result is results[-1])])

`record` returns each result with `budget_bytes` / `budget_used_bytes` filled in. Results of
tests the policy did not start (`readynet-agent once`) may be recorded without a ticket: they
count towards the goal and the budget like any other.

Not for: deciding how to measure; only when, and whether the data budget allows it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from agent.schedule.blackout import Blackouts, Blocked, Clear
from agent.schedule.budget import BudgetFigures, DataBudget
from agent.schedule.calendar import SchoolCalendar
from agent.schedule.planner import Planner, Progress, progress_of
from agent.schedule.runs import RunLog
from agent.schedule.settings import ScheduleSettings
from agent.wire import ThroughputTest

STATE_FILE = "schedule.sqlite3"
# History older than this is dropped when the policy opens: no rule looks back that far.
KEEP_DAYS = 400

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Go:
    """Start the round now. It is on the ledger as `ticket`; `budget` is before it ran."""

    ticket: int
    budget: BudgetFigures


@dataclass(frozen=True)
class Defer:
    """Do not start now: `reason` in words, and `retry_at`, when that reason has passed."""

    reason: str
    retry_at: datetime


class TestPolicy:
    """When throughput tests run: plans starts, vets each start, keeps history and the ledger.

    State lives in `state_dir/schedule.sqlite3` and survives restarts. `clock` returns aware
    datetimes (tests pass a controllable one); `rng` makes the draws reproducible.
    """

    __test__ = False  # not a pytest test class, whatever its name says

    def __init__(
        self,
        settings: ScheduleSettings,
        state_dir: Path,
        clock: Clock = utc_now,
        rng: random.Random | None = None,
    ) -> None:
        self._clock = clock
        self._rng = rng or random.Random()
        self._log = RunLog(state_dir / STATE_FILE)
        self.reconfigure(settings)
        self._log.forget_before(self._now(None) - timedelta(days=KEEP_DAYS))

    def reconfigure(self, settings: ScheduleSettings) -> None:
        """Use new settings (a reloaded agent.yaml) from the next call on; history is kept."""
        self.settings = settings
        self.calendar = SchoolCalendar(settings.school_day)
        self.blackouts = Blackouts(settings, self.calendar)
        self.budget = DataBudget(settings.budget, self._log, self.calendar)
        self._planner = Planner(settings, self.calendar, self.blackouts, self._rng)

    def close(self) -> None:
        self._log.close()

    def next_start(
        self, now: datetime | None = None, *, estimate_bytes: int | None = None
    ) -> datetime | None:
        """When the next round should start (aware UTC), or None if nothing is reachable."""
        now = self._now(now)
        estimate = self._estimate(estimate_bytes)
        runs = self._log.runs_since(now - timedelta(days=self.settings.goal.window_days))
        return self._planner.next_start(
            now=now, runs=runs, fits_budget=lambda day: self.budget.fits(day, estimate)
        )

    def decide(
        self,
        now: datetime | None = None,
        estimate_bytes: int | None = None,
        *,
        anytime: bool = False,
    ) -> Go | Defer:
        """Whether a round may start now; Go puts it on the ledger at `estimate_bytes`.

        `anytime`: outside the school day too (the first round after install, which shows the
        technician that everything works); blackouts, quiet hours and the budget still hold.
        """
        now = self._now(now)
        estimate = self._estimate(estimate_bytes)
        stopped = self.holds_back(now, anytime=anytime)
        if stopped is not None:
            return stopped
        day = self.calendar.local_date(now)
        tomorrow = self.calendar.next_midnight(now)
        cap = self.settings.goal.max_tests_per_day
        if self._log.runs_on(day) >= cap:
            return Defer(f"daily cap of {cap} test rounds reached", tomorrow)
        if not self.budget.fits(day, estimate):
            return Defer(self._over_budget(day, estimate), tomorrow)
        before = self.budget.figures(day)
        ticket = self._log.open_run(started_at=now, day=day, estimate_bytes=estimate)
        return Go(ticket=ticket, budget=before)

    def may_start(self, now: datetime | None = None) -> Clear | Blocked:
        """Blackouts and quiet hours only: whether they let a test start now, and until when not."""
        return self.blackouts.may_start(self._now(now))

    def holds_back(self, now: datetime | None = None, *, anytime: bool = False) -> Defer | None:
        """Just before a round that `decide` let through starts: what stops it now, if anything.

        The round may have waited (another test, an uplink check) long enough for a blackout
        or quiet hours to begin, or for the school day to end.
        """
        now = self._now(now)
        blocked = self.blackouts.may_start(now)
        if isinstance(blocked, Blocked):
            return Defer(blocked.reason, blocked.until)
        if not anytime and self.calendar.band_of(now) is None:
            # A retry (slot or uplink busy) can land after the school day: the goal's bands
            # are inside it, and so are the hours the district agreed to.
            later = self.next_start(now) or self.calendar.next_midnight(now)
            return Defer("outside the school day", later)
        return None

    def release(self, ticket: int) -> None:
        """Take back a Go whose round never ran (slot busy, shutting down): it costs nothing."""
        self._log.cancel(ticket)

    def record(
        self, result: ThroughputTest, *, ticket: int | None = None, final: bool = True
    ) -> ThroughputTest:
        """Count a result (once, by its id) and return it with the day's budget figures.

        `final=False` for all but the last result of a round keeps the round charged at least
        at its estimate until the last one arrives (a crash in between still counts).
        """
        valid = (
            result.error is None
            and result.download_bps is not None
            and result.path == self.settings.goal.path
        )
        moved = result.download_bytes + result.upload_bytes
        day = None if ticket is None else self._log.day_of(ticket)
        if ticket is not None and day is not None:
            self._log.add_result(
                ticket=ticket, result_id=str(result.id), bytes_moved=moved, valid=valid, close=final
            )
        else:
            # Unplanned (or its round was released): a round of its own, dated by the result.
            day = self.calendar.local_date(result.measured_at)
            ticket = None
            self._log.add_unplanned(
                result_id=str(result.id),
                started_at=result.measured_at,
                day=day,
                bytes_moved=moved,
                valid=valid,
            )
        figures = self.budget.figures(day, settled=ticket)
        return result.model_copy(
            update={"budget_bytes": figures.budget_bytes, "budget_used_bytes": figures.used_bytes}
        )

    def progress(self, now: datetime | None = None) -> Progress:
        """Valid tests, days and bands of the current window, and whether the goal is met."""
        now = self._now(now)
        window = timedelta(days=self.settings.goal.window_days)
        since = now - window
        runs = [run for run in self._log.runs_since(since) if since < run.started_at <= now]
        return progress_of(runs, settings=self.settings, calendar=self.calendar)

    def budget_figures(self, now: datetime | None = None) -> BudgetFigures:
        return self.budget.figures(self.calendar.local_date(self._now(now)))

    def _now(self, now: datetime | None) -> datetime:
        instant = self._clock() if now is None else now
        if instant.tzinfo is None:
            raise ValueError("the policy's clock must give timezone-aware datetimes")
        return instant.astimezone(UTC)

    def _estimate(self, estimate_bytes: int | None) -> int:
        if estimate_bytes is None:
            return self.settings.budget.round_estimate_bytes
        if estimate_bytes < 0:
            raise ValueError("estimate_bytes must not be negative")
        return estimate_bytes

    def _over_budget(self, day: date, estimate: int) -> str:
        daily = self.settings.budget.daily_bytes
        if estimate > daily:
            return f"data budget: the test needs about {estimate} bytes, more than a day's {daily}"
        used = self.budget.used_bytes(day)
        return f"data budget: {used} of {daily} bytes used today, the test needs about {estimate}"
