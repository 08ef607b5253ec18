"""`readynet-agent run`: the daemon's jobs against a real collector, on a controllable clock.

The clock runs an hour of school time per real second (`ScaledClock`), so planned rounds come
due within seconds; APScheduler fires them at the real times the clock maps them to.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from random import Random
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from agent.backoff import delay_s
from agent.clock import ScaledClock
from agent.daemon import OUTBOX_FILE, AgentDaemon
from agent.outbox import Outbox
from agent.schedule import slots
from agent.schedule.settings import BlackoutWindow, ScheduleSettings
from agent.settings import AgentSettings, DeviceSettings
from agent.wire import ThroughputTest
from collector.store.models import Measurement, School, ThroughputResult
from tests.fixtures.collector import LOOPBACK_BUDGETS, RunningCollector, StartCollector
from tests.fixtures.snmpsim import SnmpSim

HOUR_PER_SECOND = 3600.0
START = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)  # a Monday morning


@pytest.fixture
def collector(start_collector: StartCollector) -> RunningCollector:
    return start_collector(**LOOPBACK_BUDGETS)


def _settings(
    collector: RunningCollector, token: str, state_dir: Path, **overrides: Any
) -> AgentSettings:
    fields: dict[str, Any] = {
        "collector_url": collector.url,
        "token": token,
        "state_dir": state_dir,
        "onnet": {"duration_s": 0.6, "warmup_s": 0.2, "sample_interval_s": 0.1, "idle_pings": 2},
        "internet": {"enabled": False},
        "latency": {"probes": 3, "interval_s": 0.01},
        "schedule": {
            "school_day": {
                "timezone": "UTC",
                "weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                "start": "00:00",
                "end": "23:00",
            },
            "goal": {"valid_tests": 4, "distinct_days": 1, "max_tests_per_day": 4},
        },
        "delivery_interval_s": 1,
        "snmp_interval_s": 10,
        # These tests follow the planned schedule; the first round after install has its own.
        "first_round_s": None,
    }
    fields.update(overrides)
    return AgentSettings.model_validate(fields)


@asynccontextmanager
async def _running(
    settings: AgentSettings, rng: Random | None = None
) -> AsyncIterator[AgentDaemon]:
    daemon = AgentDaemon(settings, clock=ScaledClock(START, HOUR_PER_SECOND), rng=rng)
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(stop))
    try:
        for _ in range(100):
            if daemon.scheduler.running:
                break
            await asyncio.sleep(0.02)
        yield daemon
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def _until(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.1)
    return condition()


def _stored_tests(collector: RunningCollector) -> list[ThroughputResult]:
    with collector.sessions() as session:
        return list(session.scalars(select(ThroughputResult)))


def _stored_kinds(collector: RunningCollector) -> set[str]:
    with collector.sessions() as session:
        return set(session.scalars(select(Measurement.kind)))


def _round_at(daemon: AgentDaemon) -> datetime:
    job = daemon.scheduler.get_job("round")
    assert job is not None
    when: datetime = job.next_run_time
    return when


async def test_planned_rounds_run_and_polls_and_deliveries_follow(
    collector: RunningCollector, snmpsim: SnmpSim, tmp_path: Path
) -> None:
    token = collector.enroll(collector.add_school())
    settings = _settings(
        collector, token, tmp_path / "state", devices=[snmpsim.device("iosxe", name="router")]
    )
    async with _running(settings) as daemon:
        planned = _round_at(daemon)
        # Planned on the daemon's clock: within the simulated day, so seconds away in real time.
        assert datetime.now(UTC) <= planned <= daemon.clock.wall(START + timedelta(days=1))
        assert await _until(lambda: len(_stored_tests(collector)) >= 2, 60)
        assert daemon.rounds_run >= 2
        assert daemon.policy.progress(daemon.clock.now()).valid_tests >= 2
    stored = _stored_tests(collector)
    assert all(t.path == "onnet" and t.download_bps for t in stored)
    # The data budget travels with every result.
    assert all(t.budget_bytes == settings.schedule.budget.daily_bytes for t in stored)
    assert all(t.budget_used_bytes and t.budget_used_bytes > 0 for t in stored)
    # Each round also measured latency, and the first poll ran at start.
    assert {"throughput", "latency", "snmp_poll"} <= _stored_kinds(collector)


async def test_a_blackout_added_after_planning_stops_the_round(
    collector: RunningCollector, tmp_path: Path
) -> None:
    token = collector.enroll(collector.add_school())
    settings = _settings(collector, token, tmp_path / "state")
    async with _running(settings) as daemon:
        planned = _round_at(daemon)
        # A state testing window over the rest of the simulated week, added after planning.
        now = daemon.clock.now()
        window = BlackoutWindow(
            start=now.replace(tzinfo=None), end=(now + timedelta(days=7)).replace(tzinfo=None)
        )
        blacked_out = ScheduleSettings.model_validate(
            {**settings.schedule.model_dump(), "blackout_windows": [window.model_dump()]}
        )
        daemon.policy.reconfigure(blacked_out)
        # The job fires at its planned time, finds the blackout, and plans past it.
        assert await _until(lambda: _round_at(daemon) != planned, 40)
        assert daemon.rounds_run == 0
        assert _round_at(daemon) >= daemon.clock.wall(now + timedelta(days=7))
    assert _stored_tests(collector) == []


async def test_a_blackout_that_begins_while_the_round_waits_stops_it_at_its_start(
    collector: RunningCollector, tmp_path: Path
) -> None:
    token = collector.enroll(collector.add_school())
    settings = _settings(collector, token, tmp_path / "state")
    async with _running(settings) as daemon:
        async with daemon.test_lock:  # another test (a manual `once`) holds the line
            job = asyncio.create_task(daemon.measurement_job())
            await asyncio.sleep(0.5)  # past decide() and the slot, waiting for the lock
            assert not job.done()
            now = daemon.clock.now()
            window = BlackoutWindow(
                start=now.replace(tzinfo=None), end=(now + timedelta(days=2)).replace(tzinfo=None)
            )
            daemon.policy.reconfigure(
                ScheduleSettings.model_validate(
                    {**settings.schedule.model_dump(), "blackout_windows": [window.model_dump()]}
                )
            )
        await asyncio.wait_for(job, 10)
        assert daemon.rounds_run == 0
        assert daemon.policy.budget_figures().used_bytes == 0  # the round was given back
        assert _round_at(daemon) >= daemon.clock.wall(now + timedelta(days=2))
    assert _stored_tests(collector) == []


async def test_a_school_behind_a_busy_shared_exit_waits_its_turn(
    collector: RunningCollector, tmp_path: Path
) -> None:
    schools = [collector.add_school(f"School {n}") for n in range(2)]
    with collector.sessions() as session:
        for school in session.scalars(select(School).where(School.id.in_(schools))):
            school.shared_exit = "district-hub-1"
        session.commit()
    tokens = [collector.enroll(school) for school in schools]
    # The other school behind the same exit holds the slot.
    headers = {"Authorization": f"Bearer {tokens[1]}"}
    async with httpx.AsyncClient(base_url=collector.url, headers=headers) as other:
        held = await slots.acquire(other, 600)
        assert isinstance(held, slots.Slot)
        settings = _settings(collector, tokens[0], tmp_path / "state")
        async with _running(settings) as daemon:
            before = daemon.clock.now()
            await daemon.measurement_job()  # as if the planned time had come
            assert daemon.rounds_run == 0
            # Planned again after the other school's slot, which costs no budget.
            assert _round_at(daemon) > daemon.clock.wall(before)
            assert daemon.policy.budget_figures().used_bytes == 0
        await slots.release(other, held)
    assert _stored_tests(collector) == []


async def test_a_poll_of_the_uplink_waits_for_a_running_test(
    collector: RunningCollector, snmpsim: SnmpSim, tmp_path: Path
) -> None:
    token = collector.enroll(collector.add_school())
    router: DeviceSettings = snmpsim.device("iosxe", name="router")
    settings = _settings(
        collector,
        token,
        tmp_path / "state",
        devices=[router],
        uplink={"device": "router", "ifindex": 2},
    )
    daemon = AgentDaemon(settings, clock=ScaledClock(START, HOUR_PER_SECOND))
    try:
        async with daemon.test_lock:  # a test is running
            poll = asyncio.create_task(daemon.poll_devices())
            await asyncio.sleep(1.0)
            assert not poll.done()
        await asyncio.wait_for(poll, 10)
    finally:
        daemon.policy.close()
    with Outbox(settings.state_dir / OUTBOX_FILE) as outbox:
        [queued] = outbox.pending(limit=10)
    assert queued.kind == "snmp_poll" and queued.error is None


@pytest.mark.parametrize("device", ["missing"])
def test_the_uplink_must_be_a_polled_device(
    collector: RunningCollector, tmp_path: Path, device: str
) -> None:
    with pytest.raises(ValueError, match=r"uplink\.device 'missing' is not one of devices"):
        _settings(collector, "tok", tmp_path, uplink={"device": device, "ifindex": 1})


async def test_delivery_backs_off_while_the_collector_is_away_and_all_arrive_once_after(
    collector: RunningCollector, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The collector stops: the daemon's tries come further and further apart (each a seeded
    random time up to interval * 2 ** failures); it comes back: everything is stored once."""
    caplog.set_level(logging.INFO, logger="agent.daemon")
    token = collector.enroll(collector.add_school())
    schedule = _settings(collector, token, tmp_path).schedule.model_dump()
    # No round in this test (an hour a second: a week is minutes away): deliveries only.
    schedule["blackout_windows"] = [{"start": "2027-02-28T00:00", "end": "2027-03-14T00:00"}]
    settings = _settings(
        collector, token, tmp_path / "state", schedule=schedule, delivery_backoff_max_s=8
    )
    queued = [ThroughputTest(path="onnet", server="x", download_bps=float(i)) for i in range(30)]
    with Outbox(settings.state_dir / OUTBOX_FILE) as outbox:
        outbox.add(queued)
    collector.server.stop()
    failures = 4
    seed = 6
    async with _running(settings, rng=Random(seed)) as daemon:
        assert await _until(lambda: daemon.delivery_failures >= failures, 30)
        collector.server.start()  # the same port
        with Outbox(settings.state_dir / OUTBOX_FILE) as outbox:
            assert await _until(lambda: len(outbox) == 0, 20)
        assert daemon.delivery_failures == 0 and daemon.deliver_not_before is None
    records = [r for r in caplog.records if r.name == "agent.daemon"]
    tried = [r.created for r in records if r.getMessage().startswith("not delivered")]
    [delivered] = [r.created for r in records if r.getMessage().startswith("delivered 30 new")]
    assert len(tried) == failures
    gaps = [b - a for a, b in zip([*tried, delivered], [*tried, delivered][1:], strict=False)]
    reference = Random(seed)
    expected = [
        max(1.0, delay_s(n, base_s=1, cap_s=8, rng=reference)) for n in range(1, failures + 1)
    ]
    # Each try came when its seeded wait said, no sooner (the scheduler fires it then).
    for gap, wait in zip(gaps, expected, strict=True):
        assert wait - 0.3 <= gap <= wait + 0.7, (gaps, expected)
    # At the fixed interval (1 s) there would have been twice as many tries by the last one.
    assert tried[-1] - tried[0] >= 2 * (failures - 1)
    with collector.sessions() as session:
        stored = list(session.scalars(select(Measurement.id)))
    assert sorted(stored) == sorted(t.id for t in queued)
