"""Rollups and retention on both databases: hourly figures against hand-computed ones, days
merged from hours within the sketch's bound, late results, retention, the long window."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from agent.wire import AnyMeasurement, Batch, InterfaceCounters, SnmpPoll, ThroughputTest
from collector.store.db import make_engine, make_session_factory
from collector.store.ingest import add_batch
from collector.store.migrate import upgrade_to_head
from collector.store.models import (
    InterfaceRate,
    InterfaceSample,
    Measurement,
    PollInterfaces,
    RollupState,
    SnmpPollResult,
    ThroughputResult,
    ThroughputRollup,
    UplinkRollup,
)
from collector.store.queries import create_school, enroll_agent
from collector.store.rollups import (
    RELATIVE_ERROR,
    RollupRun,
    Sketch,
    apply_retention,
    floor_day,
    floor_hour,
    long_windows,
    roll_up,
)
from collector.store.windows import school_windows

MBPS = 1e6


@dataclass
class Fleet:
    sessions: sessionmaker[Session]

    def school(self, name: str = "Lincoln") -> tuple[int, int]:
        with self.sessions() as session:
            school = create_school(session=session, name=name, students=450, staff=50)
            agent, _ = enroll_agent(session=session, school_id=school.id, name=f"pi-{name}")
            return school.id, agent.id

    def store(self, ids: tuple[int, int], measurements: Sequence[AnyMeasurement]) -> None:
        school_id, agent_id = ids
        with self.sessions() as session:
            for k in range(0, len(measurements), 1000):
                batch = Batch(measurements=list(measurements[k : k + 1000]))
                add_batch(session=session, agent_id=agent_id, school_id=school_id, batch=batch)

    def received_long_ago(self) -> None:
        """Every stored result as if it had arrived a minute after it was measured."""
        with self.sessions() as session:
            session.execute(update(Measurement).values(received_at=Measurement.measured_at))
            session.commit()

    def roll_up(self, retention_days: int = 0) -> RollupRun:
        with self.sessions() as session:
            return roll_up(session=session, now=datetime.now(UTC), retention_days=retention_days)


@pytest.fixture
def fleet(database_url: str) -> Iterator[Fleet]:
    upgrade_to_head(database_url)
    engine = make_engine(database_url)
    yield Fleet(make_session_factory(engine))
    engine.dispose()


def _test(
    at: datetime,
    down_mbps: float | None,
    *,
    path: str = "onnet",
    up_mbps: float | None = None,
    idle: float | None = None,
    loaded: float | None = None,
    limited: bool = False,
    error: str | None = None,
) -> ThroughputTest:
    return ThroughputTest(
        path=path,  # type: ignore[arg-type]
        server="http://127.0.0.1:8080",
        download_bps=None if down_mbps is None else down_mbps * MBPS,
        upload_bps=None if up_mbps is None else up_mbps * MBPS,
        latency_ms=idle,
        loaded_latency_ms=loaded,
        agent_limited=limited,
        error=error,
        measured_at=at,
    )


def _polls(start: datetime, mbps: Sequence[float]) -> list[SnmpPoll]:
    """Polls every 5 minutes from `start` of one internet uplink whose inbound rate over each
    interval is the next of `mbps` (outbound a tenth of it), plus an unconfigured port."""
    polls = []
    octets_in = octets_out = 10**9
    for k in range(len(mbps) + 1):
        if k:
            octets_in += int(mbps[k - 1] * MBPS * 300 / 8)
            octets_out += int(mbps[k - 1] * MBPS * 30 / 8)
        polls.append(
            SnmpPoll(
                device="edge",
                address="127.0.0.1:161",
                sys_uptime_ticks=1_000_000 + k * 30_000,
                measured_at=start + k * timedelta(minutes=5),
                interfaces=[
                    InterfaceCounters(
                        ifindex=1,
                        name="Gi0/0/0",
                        octets_in=octets_in,
                        octets_out=octets_out,
                        counter_bits=64,
                        speed_mbps=1000,
                        role="internet",
                    ),
                    InterfaceCounters(
                        ifindex=2, name="Gi0/0/1", octets_in=k, octets_out=k, counter_bits=64
                    ),
                ],
            )
        )
    return polls


def _close(value: float | None, exact: float) -> bool:
    return value is not None and abs(value - exact) <= RELATIVE_ERROR * exact + 1e-9


def test_hours_are_exact_and_days_merge_them(fleet: Fleet) -> None:
    ids = fleet.school()
    day = floor_day(datetime.now(UTC)) - timedelta(days=2)
    first, second = day + timedelta(hours=9), day + timedelta(hours=10)
    fleet.store(
        ids,
        [
            *_polls(first, [10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120]),
            _test(first + timedelta(minutes=1), 100, up_mbps=40, idle=10, loaded=110),
            _test(first + timedelta(minutes=2), 400, up_mbps=10, idle=40, loaded=140, limited=True),
            _test(first + timedelta(minutes=3), 200, up_mbps=30, idle=20),  # no loaded figure
            _test(first + timedelta(minutes=4), 300, up_mbps=20, idle=30, loaded=130),
            _test(first + timedelta(minutes=5), None, error="timed out"),
            _test(first + timedelta(minutes=6), 50, path="internet"),
            _test(second + timedelta(minutes=59), 500, up_mbps=50),
        ],
    )
    run = fleet.roll_up()
    with fleet.sessions() as session:
        rows = {(r.period, r.path, r.start): r for r in session.scalars(select(ThroughputRollup))}
        hour = rows[("hour", "onnet", first)]
        assert (hour.tests, hour.errors, hour.agent_limited) == (4, 1, 1)
        assert hour.download_median_bps == pytest.approx(250 * MBPS)
        # percentile_cont: position 0.9 * 3 = 2.7 between 300 and 400.
        assert hour.download_p90_bps == pytest.approx(370 * MBPS)
        assert (hour.download_min_bps, hour.download_max_bps) == (100 * MBPS, 400 * MBPS)
        assert hour.upload_median_bps == pytest.approx(25 * MBPS)
        assert hour.upload_p90_bps == pytest.approx(37 * MBPS)
        # Idle and loaded over the three tests that timed both.
        assert hour.idle_latency_median_ms == pytest.approx(30)
        assert hour.loaded_latency_median_ms == pytest.approx(130)
        assert rows[("hour", "internet", first)].tests == 1
        assert rows[("hour", "onnet", second)].download_median_bps == pytest.approx(500 * MBPS)
        daily = rows[("day", "onnet", day)]
        assert (daily.tests, daily.errors, daily.agent_limited) == (5, 1, 1)
        assert (daily.download_min_bps, daily.download_max_bps) == (100 * MBPS, 500 * MBPS)
        assert _close(daily.download_median_bps, 300 * MBPS)
        assert _close(daily.download_p90_bps, 460 * MBPS)
        assert _close(daily.loaded_latency_median_ms, 130)
        assert rows[("day", "internet", day)].tests == 1
        # On-net and internet together, for long readiness windows.
        circuit = rows[("day", "circuit", day)]
        assert (circuit.tests, circuit.errors, circuit.download_min_bps) == (6, 1, 50 * MBPS)
        assert _close(circuit.download_median_bps, 250 * MBPS)
        uplinks = {
            (u.period, u.start): u
            for u in session.scalars(select(UplinkRollup).where(UplinkRollup.ifindex == 1))
        }
        # The first poll has no interval before it; the other 12 give rates 10..120 Mbps, all
        # measured in the first hour but the last (at 10:00).
        rates = sorted(
            max(r.in_bps or 0.0, r.out_bps or 0.0)
            for r in session.scalars(
                select(InterfaceRate)
                .join(
                    InterfaceSample,
                    (InterfaceSample.poll_id == InterfaceRate.poll_id)
                    & (InterfaceSample.seq == InterfaceRate.seq),
                )
                .where(InterfaceSample.ifindex == 1, InterfaceRate.no_rate.is_(None))
            )
        )
        assert rates == pytest.approx([m * MBPS for m in range(10, 130, 10)], rel=1e-6)
        up_hour = uplinks[("hour", first)]
        assert (up_hour.rates, up_hour.gaps, up_hour.role, up_hour.ifname) == (
            11,
            0,
            "internet",
            "Gi0/0/0",
        )
        # Nearest rank: ceil(0.95 * 11) = 11th of 10..110.
        assert up_hour.p95_bps == pytest.approx(110 * MBPS, rel=1e-6)
        assert up_hour.max_bps == pytest.approx(110 * MBPS, rel=1e-6)
        up_day = uplinks[("day", day)]
        assert (up_day.rates, up_day.speed_mbps) == (12, 1000)
        assert _close(up_day.p95_bps, 120 * MBPS)
        assert up_day.max_bps == pytest.approx(120 * MBPS, rel=1e-6)
        # The unconfigured port is not an uplink.
        assert session.scalar(select(func.count()).where(UplinkRollup.ifindex == 2)) == 0
    assert run.days >= 1


def test_late_results_rebuild_their_hour_and_day(fleet: Fleet) -> None:
    ids = fleet.school()
    day = floor_day(datetime.now(UTC)) - timedelta(days=1)
    hour = day + timedelta(hours=13)
    fleet.store(ids, [_test(hour + timedelta(minutes=m), 100 + m) for m in range(3)])
    fleet.received_long_ago()
    fleet.roll_up()
    again = fleet.roll_up()
    assert again.rebuilt == [] and again.hours == 0
    # Delivered late (the agent was offline): measured in the rolled-up hour.
    fleet.store(ids, [_test(hour + timedelta(minutes=30), 900)])
    late = fleet.roll_up()
    assert late.rebuilt == [hour]
    with fleet.sessions() as session:
        rows = {(r.period, r.start): r for r in session.scalars(select(ThroughputRollup))}
        assert rows[("hour", hour)].tests == 4
        assert rows[("hour", hour)].download_max_bps == 900 * MBPS
        assert rows[("hour", hour)].download_median_bps == pytest.approx(101.5 * MBPS)
        assert rows[("day", day)].tests == 4
        assert _close(rows[("day", day)].download_median_bps, 101.5 * MBPS)


def test_retention_deletes_only_old_rolled_up_results_in_chunks(fleet: Fleet) -> None:
    ids = fleet.school()
    today = floor_day(datetime.now(UTC))
    old = [_test(today - timedelta(days=5, hours=-h), 100 + h) for h in range(5)]
    older_polls = _polls(today - timedelta(days=5, hours=-6), [10, 20])
    middle = [_test(today - timedelta(days=3, hours=-h), 200 + h) for h in range(3)]
    recent = [_test(today - timedelta(hours=1), 300)]
    fleet.store(ids, old + older_polls + middle + recent)
    fleet.roll_up(retention_days=0)  # rolled up, nothing deleted
    with fleet.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Measurement)) == 12
        assert session.scalar(select(func.count()).select_from(PollInterfaces)) == 3
        # Pretend the daily rollups are 4 days behind: results after that must stay.
        state = session.get(RollupState, "rollups")
        assert state is not None
        state.days_before = today - timedelta(days=4)
        session.commit()
        chunks: list[int] = []
        deleted = apply_retention(
            session=session,
            now=datetime.now(UTC),
            retention_days=2,
            keep_going=lambda: chunks.append(1),
            chunk=2,
        )
        assert deleted == 8  # 5 tests and 3 polls older than 4 days
        assert len(chunks) == 5  # 2 + 2 + 1 tests, 2 + 1 polls
        kept = session.scalars(select(Measurement.measured_at)).all()
        assert len(kept) == 4 and min(kept) >= today - timedelta(days=4)
        # The children went with them.
        assert session.scalar(select(func.count()).select_from(ThroughputResult)) == 4
        for table in (SnmpPollResult, PollInterfaces, InterfaceSample, InterfaceRate):
            assert session.scalar(select(func.count()).select_from(table)) == 0
        # The rollups stay.
        assert session.scalar(
            select(func.count()).where(
                ThroughputRollup.period == "day",
                ThroughputRollup.start == today - timedelta(days=5),
            )
        )
    # A normal run: the days are rolled up again, then everything older than 2 days goes.
    run = fleet.roll_up(retention_days=2)
    assert run.deleted == 3
    with fleet.sessions() as session:
        assert session.scalars(select(Measurement.measured_at)).all() == [
            today - timedelta(hours=1)
        ]
        # A late result older than the deleted days is not rolled into what is left.
        rows_before = session.scalar(select(func.count()).select_from(ThroughputRollup))
    fleet.received_long_ago()
    fleet.store(ids, [_test(today - timedelta(days=5, hours=-2), 999)])
    late = fleet.roll_up(retention_days=2)
    assert late.rebuilt == [] and late.deleted == 1
    with fleet.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ThroughputRollup)) == rows_before


def test_long_window_from_daily_rollups_matches_the_raw_rows(fleet: Fleet) -> None:
    rng = random.Random(10)
    now = datetime.now(UTC)
    start = floor_day(now) - timedelta(days=12)
    schools = [fleet.school(f"School {n}") for n in range(3)]
    for n, ids in enumerate(schools):
        typical = (n + 1) * 200
        tests: list[AnyMeasurement] = [
            _test(
                start + timedelta(hours=h, minutes=rng.uniform(0, 59)),
                typical * rng.lognormvariate(0, 0.4),
                path="internet" if h % 12 == 0 else "onnet",
                limited=h % 7 == 0,
            )
            for h in range(12 * 24)
        ]
        tests.append(_test(start + timedelta(hours=1), 5, path="classroom"))
        fleet.store(ids, tests)
    fleet.roll_up()
    with fleet.sessions() as session:
        exact = school_windows(session=session, start=start)
        rolled = long_windows(session=session, start=start, end=floor_day(now))
    assert set(rolled) == set(exact) == {school_id for school_id, _ in schools}
    for school_id, window in exact.items():
        long = rolled[school_id]
        assert long.tests == window.tests == 12 * 24
        assert long.periods == 12
        assert long.agent_limited_tests == window.agent_limited_tests
        assert _close(long.median_download_bps, window.median_download_bps)
        assert window.p90_download_bps is not None
        assert _close(long.p90_download_bps, window.p90_download_bps)


def test_sketch_percentiles_stay_within_the_bound() -> None:
    rng = random.Random(3)
    values = [rng.lognormvariate(18, 1.5) for _ in range(5000)] + [0.0] * 10
    halves = Sketch.of(values[:2500]), Sketch.of(values[2500:])
    merged = Sketch()
    for half in halves:
        merged.merge(half.dumps())
    ordered = sorted(values)
    for fraction in (0.0, 0.1, 0.5, 0.9, 0.99, 1.0):
        position = fraction * (len(ordered) - 1)
        low = int(position)
        high = min(low + 1, len(ordered) - 1)
        exact = ordered[low] + (ordered[high] - ordered[low]) * (position - low)
        estimate = merged.percentile_cont(fraction)
        assert estimate is not None and abs(estimate - exact) <= RELATIVE_ERROR * exact
    assert merged.count == 5010 and Sketch().percentile_cont(0.5) is None
    assert floor_hour(datetime(2026, 12, 7, 5, 59, 59, tzinfo=UTC)) == datetime(
        2026, 12, 7, 5, tzinfo=UTC
    )
