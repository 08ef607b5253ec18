"""The test policy under a controllable clock: three simulated weeks, blackouts, the budget.

Nothing sleeps: the clock is a value the test moves, the state is a real SQLite file in
tmp_path, and "a restart" is a new TestPolicy on the same directory.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.schedule import Blocked, Clear, Defer, Go, ScheduleSettings, TestPolicy
from agent.wire import ThroughputTest

ZONE = "America/New_York"
# Monday 2 March 2026, 00:00 UTC; US daylight saving starts on Sunday 8 March.
MONDAY = datetime(2026, 3, 2, tzinfo=UTC)
LUNCH = (time(11, 30), time(12, 30))
TESTING_DAY = date(2026, 3, 11)
EXAMS = (datetime(2026, 3, 17, 9, 0), datetime(2026, 3, 17, 11, 0))
SMALL_ROUND_BYTES = 5_000_000


@dataclass
class SimClock:
    """The policy's clock: whatever instant the test says it is."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Simulation:
    policy: TestPolicy
    clock: SimClock
    starts: list[datetime] = field(default_factory=list)
    valid_starts: list[datetime] = field(default_factory=list)
    deferrals: list[Defer] = field(default_factory=list)
    stamped: list[ThroughputTest] = field(default_factory=list)


def settings(**overrides: Any) -> ScheduleSettings:
    values: dict[str, Any] = {
        "school_day": {"timezone": ZONE, "start": "08:00", "end": "15:00"},
        "quiet_hours": [{"start": "11:30", "end": "12:30", "label": "lunch"}],
        "blackout_dates": [TESTING_DAY.isoformat()],
        "blackout_windows": [
            {"start": EXAMS[0].isoformat(), "end": EXAMS[1].isoformat(), "label": "exams"}
        ],
        "budget": {"round_estimate_bytes": SMALL_ROUND_BYTES},
    }
    values.update(overrides)
    return ScheduleSettings.model_validate(values)


def result_at(start: datetime, *, valid: bool = True, moved: int = 4_000_000) -> ThroughputTest:
    return ThroughputTest(
        path="onnet",
        server="http://127.0.0.1:8080",
        measured_at=start + timedelta(seconds=25),
        download_bps=9.4e7 if valid else None,
        upload_bps=9.1e7 if valid else None,
        download_bytes=moved // 2,
        upload_bytes=moved - moved // 2,
        error=None if valid else "collector answered HTTP 503",
    )


def simulate(policy: TestPolicy, clock: SimClock, *, days: int, fail_every: int = 4) -> Simulation:
    """Run the daemon's loop: plan, move the clock to the start, decide, run, record."""
    sim = Simulation(policy, clock)
    end = clock.now + timedelta(days=days)
    while clock.now < end:
        start = policy.next_start()
        assert start is not None
        assert start >= clock.now
        clock.now = start
        decision = policy.decide()
        if isinstance(decision, Defer):
            sim.deferrals.append(decision)
            continue
        valid = (len(sim.starts) + 1) % fail_every != 0
        sim.starts.append(start)
        if valid:
            sim.valid_starts.append(start)
        sim.stamped.append(policy.record(result_at(start, valid=valid), ticket=decision.ticket))
        clock.now = start + timedelta(seconds=policy.settings.round_seconds)
    return sim


@pytest.fixture
def clock() -> SimClock:
    return SimClock(MONDAY)


@pytest.fixture
def policy(tmp_path: Path, clock: SimClock) -> Iterator[TestPolicy]:
    opened = TestPolicy(settings(), tmp_path, clock=clock, rng=random.Random(7))
    yield opened
    opened.close()


def local(instant: datetime, policy: TestPolicy) -> datetime:
    return instant.astimezone(policy.calendar.zone)


@pytest.mark.parametrize("seed", range(5))
def test_three_weeks_earn_a_verdict_inside_the_school_day(
    tmp_path: Path, clock: SimClock, seed: int
) -> None:
    policy = TestPolicy(settings(), tmp_path, clock=clock, rng=random.Random(seed))
    sim = simulate(policy, clock, days=21)

    # Every start: a school day, school hours, not at lunch, not on the testing day or in exams.
    for start in sim.starts:
        at = local(start, policy)
        assert at.weekday() < 5, at
        assert time(8, 0) <= at.time() < time(15, 0), at
        assert not LUNCH[0] <= at.time() < LUNCH[1], at
        assert at.date() != TESTING_DAY, at
        assert not EXAMS[0] <= at.replace(tzinfo=None) < EXAMS[1], at
    # Each starts with room to finish before lunch and the end of the day.
    room = timedelta(seconds=policy.settings.round_seconds)
    for start in sim.starts:
        end = (local(start, policy) + room).time()
        assert end <= time(15, 0) and not LUNCH[0] < end <= LUNCH[1]

    # The goal holds within the window at the end of each of the last two weeks.
    for checkpoint in (MONDAY + timedelta(days=14), MONDAY + timedelta(days=21)):
        window = [s for s in sim.valid_starts if checkpoint - timedelta(days=14) < s <= checkpoint]
        days = {local(s, policy).date() for s in window}
        bands = {local(s, policy).hour for s in window}
        assert len(window) >= 10, checkpoint
        assert len(days) >= 5, checkpoint
        assert bands == set(range(8, 15)), checkpoint
        assert policy.progress(checkpoint).met

    # Never more rounds in a day than the cap, and rounds of one day an hour apart.
    per_day = Counter(local(s, policy).date() for s in sim.starts)
    assert max(per_day.values()) <= policy.settings.goal.max_tests_per_day
    for a, b in zip(sim.starts, sim.starts[1:], strict=False):
        if local(a, policy).date() == local(b, policy).date():
            assert b - a >= timedelta(minutes=60)


def test_once_the_goal_is_met_it_is_kept_met_at_a_lower_pace(
    policy: TestPolicy, clock: SimClock
) -> None:
    sim = simulate(policy, clock, days=42, fail_every=1000)
    # Met at every six hours from the end of week two (blackouts and all)...
    checks = [MONDAY + timedelta(days=14, hours=6 * n) for n in range(4 * 28)]
    assert [c for c in checks if not policy.progress(c).met] == []
    # ...with about 12 rounds per 14 days, where the cap would allow 20.
    last_two_weeks = [s for s in sim.starts if s >= MONDAY + timedelta(days=28)]
    assert 10 <= len(last_two_weeks) <= 14


def test_schools_start_at_their_own_random_seconds(tmp_path: Path) -> None:
    starts: list[datetime] = []
    per_school: list[list[datetime]] = []
    for school in range(2):
        clock = SimClock(MONDAY)
        rng = random.Random(school)
        policy = TestPolicy(settings(), tmp_path / str(school), clock=clock, rng=rng)
        per_school.append(simulate(policy, clock, days=14).starts)
        starts += per_school[-1]
        policy.close()
    assert not set(per_school[0]) & set(per_school[1])
    # Not on the hour, hardly ever on a whole minute: the seconds of the hour spread widely.
    assert not [s for s in starts if s.minute == 0 and s.second == 0]
    assert len([s for s in starts if s.second == 0]) <= 0.15 * len(starts)
    assert len({s.minute * 60 + s.second for s in starts}) >= 0.9 * len(starts)


@pytest.mark.parametrize("reload", ["reconfigure", "restart"])
def test_a_blackout_added_after_planning_stops_the_test_at_its_start(
    tmp_path: Path, clock: SimClock, reload: str
) -> None:
    policy = TestPolicy(settings(), tmp_path, clock=clock, rng=random.Random(3))
    start = policy.next_start()
    assert start is not None
    assert isinstance(policy.may_start(start), Clear)

    # The district adds exam hours around that start; the agent reloads its settings.
    at = local(start, policy).replace(tzinfo=None)
    window = {
        "start": (at - timedelta(minutes=10)).isoformat(timespec="minutes"),
        "end": (at + timedelta(minutes=50)).isoformat(timespec="minutes"),
        "label": "make-up exam",
    }
    if reload == "reconfigure":
        policy.reconfigure(settings(blackout_windows=[window]))
    else:
        policy.close()
        policy = TestPolicy(settings(blackout_windows=[window]), tmp_path, clock=clock)
    clock.now = start
    decision = policy.decide()
    assert isinstance(decision, Defer)
    assert "make-up exam" in decision.reason
    window_end = datetime.fromisoformat(window["end"]).replace(tzinfo=policy.calendar.zone)
    assert decision.retry_at == window_end
    blocked = policy.may_start()
    assert isinstance(blocked, Blocked) and blocked.until == window_end
    # Nothing was charged or counted, and the next plan keeps clear of the window.
    assert policy.budget_figures().used_bytes == 0
    replanned = policy.next_start()
    assert replanned is not None and not start - timedelta(minutes=10) <= replanned < window_end
    policy.close()


def test_quiet_hours_defer_until_they_end(policy: TestPolicy) -> None:
    lunch = datetime(2026, 3, 3, 11, 45, tzinfo=policy.calendar.zone)
    decision = policy.decide(lunch)
    assert isinstance(decision, Defer)
    assert decision.reason == "quiet hours (lunch) 11:30-12:30"
    assert decision.retry_at == datetime(2026, 3, 3, 12, 30, tzinfo=policy.calendar.zone)


@pytest.mark.parametrize(
    "when",
    [datetime(2026, 3, 3, 16, 10), datetime(2026, 3, 3, 7, 0), datetime(2026, 3, 7, 10, 0)],
    ids=["after school", "before school", "saturday"],
)
def test_a_retry_that_lands_outside_the_school_day_waits_for_it(
    policy: TestPolicy, when: datetime
) -> None:
    # A slot or uplink retry is planned minutes ahead and can land after the school day.
    at = when.replace(tzinfo=policy.calendar.zone)
    decision = policy.decide(at)
    assert isinstance(decision, Defer) and decision.reason == "outside the school day"
    assert policy.calendar.band_of(decision.retry_at) is not None
    assert decision.retry_at > at
    assert policy.holds_back(decision.retry_at) is None


def test_touching_blocks_are_waited_out_together(tmp_path: Path, clock: SimClock) -> None:
    # Exams until lunch starts: the wait runs on to the end of lunch.
    exams = {"start": "2026-03-03T10:00", "end": "2026-03-03T11:30", "label": "exams"}
    policy = TestPolicy(settings(blackout_windows=[exams]), tmp_path, clock=clock)
    blocked = policy.may_start(datetime(2026, 3, 3, 10, 15, tzinfo=policy.calendar.zone))
    assert isinstance(blocked, Blocked)
    assert blocked.reason == "blackout window (exams) 2026-03-03 10:00-2026-03-03 11:30"
    assert blocked.until == datetime(2026, 3, 3, 12, 30, tzinfo=policy.calendar.zone)
    policy.close()


def test_a_blackout_date_lasts_the_local_day(policy: TestPolicy) -> None:
    zone = policy.calendar.zone
    inside = datetime(2026, 3, 11, 23, 59, tzinfo=zone)
    blocked = policy.may_start(inside)
    assert isinstance(blocked, Blocked) and blocked.reason == "blackout date 2026-03-11"
    assert blocked.until == datetime(2026, 3, 12, 0, 0, tzinfo=zone)
    assert isinstance(policy.may_start(datetime(2026, 3, 12, 0, 0, tzinfo=zone)), Clear)


def test_budget_defers_a_test_that_would_exceed_it_and_survives_a_restart(
    tmp_path: Path, clock: SimClock
) -> None:
    tight = settings(budget={"daily_bytes": 10_000_000, "round_estimate_bytes": 6_000_000})
    policy = TestPolicy(tight, tmp_path, clock=clock)
    morning = datetime(2026, 3, 3, 9, 0, tzinfo=policy.calendar.zone)
    go = policy.decide(morning)
    assert isinstance(go, Go)
    assert go.budget.used_bytes == 0 and go.budget.budget_bytes == 10_000_000
    stamped = policy.record(result_at(morning, moved=5_500_000), ticket=go.ticket)
    assert (stamped.budget_bytes, stamped.budget_used_bytes) == (10_000_000, 5_500_000)

    later = morning + timedelta(hours=2)
    deferred = policy.decide(later)
    assert isinstance(deferred, Defer)
    assert deferred.reason == (
        "data budget: 5500000 of 10000000 bytes used today, the test needs about 6000000"
    )
    assert deferred.retry_at == datetime(2026, 3, 4, 0, 0, tzinfo=policy.calendar.zone)
    assert not policy.budget.can_spend(later, 6_000_000)
    assert policy.budget.can_spend(later, 4_500_000)
    policy.close()

    # A restart reads the same ledger: still deferred today, allowed after local midnight.
    restarted = TestPolicy(tight, tmp_path, clock=clock)
    assert isinstance(restarted.decide(later), Defer)
    assert restarted.budget_figures(later).used_bytes == 5_500_000
    assert isinstance(restarted.decide(deferred.retry_at + timedelta(hours=9)), Go)
    # The planner knows too: today is full, so the next start is tomorrow.
    start = restarted.next_start(later)
    assert start is not None and local(start, restarted).date() > later.date()
    restarted.close()


def test_a_round_cut_short_by_a_crash_stays_charged_at_its_estimate(
    tmp_path: Path, clock: SimClock
) -> None:
    tight = settings(budget={"daily_bytes": 10_000_000, "round_estimate_bytes": 6_000_000})
    policy = TestPolicy(tight, tmp_path, clock=clock)
    morning = datetime(2026, 3, 3, 9, 0, tzinfo=policy.calendar.zone)
    assert isinstance(policy.decide(morning), Go)
    policy.close()  # the agent dies mid-test: no result is ever recorded

    restarted = TestPolicy(tight, tmp_path, clock=clock)
    assert restarted.budget_figures(morning).used_bytes == 6_000_000
    assert isinstance(restarted.decide(morning + timedelta(hours=2)), Defer)
    restarted.close()


def test_a_round_of_two_tests_is_charged_what_both_moved(policy: TestPolicy) -> None:
    morning = datetime(2026, 3, 3, 9, 0, tzinfo=policy.calendar.zone)
    go = policy.decide(morning)
    assert isinstance(go, Go)
    onnet = policy.record(result_at(morning, moved=1_000_000), ticket=go.ticket, final=False)
    # Until the last result, the round stays charged at its estimate...
    assert policy.budget_figures(morning).used_bytes == SMALL_ROUND_BYTES
    # ...but each result carries what was really moved so far.
    assert onnet.budget_used_bytes == 1_000_000
    internet = ThroughputTest(
        path="internet",
        server="speedtest.example.net",
        measured_at=morning + timedelta(minutes=1),
        download_bps=5e7,
        download_bytes=700_000,
        upload_bytes=300_000,
    )
    stamped = policy.record(internet, ticket=go.ticket)
    assert stamped.budget_used_bytes == 2_000_000
    assert policy.budget_figures(morning).used_bytes == 2_000_000
    # Recording the same result again counts nothing twice.
    policy.record(internet, ticket=go.ticket)
    assert policy.budget_figures(morning).used_bytes == 2_000_000
    # One valid round (the on-net result decides), in the 09:00 band.
    assert policy.progress(morning + timedelta(hours=1)).valid_tests == 1


def test_a_released_round_costs_nothing_and_counts_nothing(policy: TestPolicy) -> None:
    morning = datetime(2026, 3, 3, 9, 0, tzinfo=policy.calendar.zone)
    for _ in range(3):  # more than the daily cap of 2, each given back (slot busy)
        go = policy.decide(morning)
        assert isinstance(go, Go)
        policy.release(go.ticket)
    assert policy.budget_figures(morning).used_bytes == 0
    assert isinstance(policy.decide(morning), Go)


def test_the_daily_cap_defers_until_local_midnight(policy: TestPolicy) -> None:
    zone = policy.calendar.zone
    morning = datetime(2026, 3, 3, 9, 0, tzinfo=zone)
    for hours in (0, 2):
        go = policy.decide(morning + timedelta(hours=hours))
        assert isinstance(go, Go)
        policy.record(result_at(morning + timedelta(hours=hours)), ticket=go.ticket)
    capped = policy.decide(morning + timedelta(hours=4))
    assert capped == Defer("daily cap of 2 test rounds reached", datetime(2026, 3, 4, tzinfo=zone))


def test_unplanned_results_count_towards_goal_and_budget(policy: TestPolicy) -> None:
    # `readynet-agent once` ran a test by hand: recorded without a ticket.
    at = datetime(2026, 3, 3, 14, 10, tzinfo=policy.calendar.zone)
    stamped = policy.record(result_at(at, moved=3_000_000))
    assert stamped.budget_used_bytes == 3_000_000
    assert policy.progress(at + timedelta(hours=1)).band_tests[6] == 1


def test_a_failed_test_is_charged_but_does_not_count_as_valid(policy: TestPolicy) -> None:
    morning = datetime(2026, 3, 3, 9, 0, tzinfo=policy.calendar.zone)
    go = policy.decide(morning)
    assert isinstance(go, Go)
    policy.record(result_at(morning, valid=False, moved=100_000), ticket=go.ticket)
    assert policy.progress(morning + timedelta(hours=1)).valid_tests == 0
    assert policy.budget_figures(morning).used_bytes == 100_000


def test_nothing_plannable_within_a_year_is_none(tmp_path: Path, clock: SimClock) -> None:
    year = {"start": "2026-03-01T00:00", "end": "2027-04-01T00:00", "label": "closed"}
    policy = TestPolicy(settings(blackout_windows=[year]), tmp_path, clock=clock)
    assert policy.next_start() is None
    policy.close()


def test_daylight_saving_day_keeps_local_hours(policy: TestPolicy, clock: SimClock) -> None:
    # Monday 9 March 2026 is the first day of EDT (UTC-4): 08:00 local is 12:00 UTC.
    clock.now = datetime(2026, 3, 9, 4, 0, tzinfo=UTC)
    start = policy.next_start()
    assert start is not None
    assert time(8) <= local(start, policy).time() < time(15)
    assert policy.calendar.at(date(2026, 3, 9), time(8)) == datetime(2026, 3, 9, 12, tzinfo=UTC)
    assert policy.calendar.at(date(2026, 3, 6), time(8)) == datetime(2026, 3, 6, 13, tzinfo=UTC)


def test_a_naive_clock_is_refused(tmp_path: Path) -> None:
    policy = TestPolicy(settings(), tmp_path, clock=lambda: datetime(2026, 3, 3, 9, 0, tzinfo=UTC))
    with pytest.raises(ValueError, match="timezone-aware"):
        policy.decide(datetime(2026, 3, 3, 9, 0))
    policy.close()
