"""A synthetic district fleet for `bench.scale`, built with the collector's own store functions.

Every school gets 30 days of hourly on-net tests (with p90 rates, idle and loaded round trips,
RPM, the agent's link and data budget; one school in seven has an agent on a 100 Mbit/s port,
whose fast tests are agent-limited), an internet test every 12 hours, an hourly latency test,
a classroom test a day in each of three rooms, and two devices with 20 interfaces polled every
5 minutes, over a chosen poll history (the full 30 days, or the last 2 hours). Schools are
created and agents enrolled with `create_school` / `enroll_agent`, grouped into districts of 200,
and their results stored with `add_batch`, in-process and in the largest batches the wire allows,
exactly as the API would store them. Timestamps lie in the past (the wire refuses more than 10
minutes ahead), so the readiness window holds all 720 tests of each school when the build ends.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

from sqlalchemy import Engine, event, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from agent.wire import (
    MAX_BATCH_MEASUREMENTS,
    AnyMeasurement,
    Batch,
    InterfaceCounters,
    LatencyTest,
    SnmpPoll,
    ThroughputTest,
)
from collector.store.db import make_engine, make_session_factory
from collector.store.ingest import add_batch
from collector.store.migrate import upgrade_to_head
from collector.store.models import District, School
from collector.store.queries import create_school, enroll_agent

DISTRICT_SCHOOLS = 200
WINDOW_DAYS = 30
TESTS_PER_SCHOOL = 24 * WINDOW_DAYS
INTERNET_EVERY_HOURS = 12
ROOMS = ("Room 101", "Room 102", "Library")
_SLOW_AGENT_SHARE = 1 / 7
_BUDGET_BYTES = 12 * 10**9
DEVICES = ("router", "switch")
INTERFACES = 20
POLL_INTERVAL = timedelta(minutes=5)
FULL_HISTORY = timedelta(days=WINDOW_DAYS)
SHORT_HISTORY = timedelta(hours=2)
# sysUpTime ticks (1/100 s) per poll interval.
_TICKS_PER_POLL = int(POLL_INTERVAL.total_seconds() * 100)
_FAILED_TEST_SHARE = 0.02


@dataclass(frozen=True)
class FleetBuild:
    """What was built and how long each part took."""

    schools: int
    districts: int
    history: timedelta
    tests: int  # throughput and latency tests, classroom tests included
    polls: int
    inventory_s: float
    tests_s: float
    polls_s: float
    vacuum_s: float
    # time.monotonic() when the last batch was stored.
    last_batch_at: float

    @property
    def interface_rows(self) -> int:
        return self.polls * INTERFACES

    @property
    def seconds(self) -> float:
        return self.inventory_s + self.tests_s + self.polls_s + self.vacuum_s

    def describe(self) -> str:
        return (
            f"built {self.schools:,} schools in {self.districts} districts, "
            f"{history_label(self.history)}: {self.tests:,} tests, {self.polls:,} polls, "
            f"{self.interface_rows:,} interface rows in {self.timings()}"
        )

    def timings(self) -> str:
        return (
            f"{self.seconds:,.0f} s (schools+agents {self.inventory_s:.0f} s, tests "
            f"{self.tests_s:.0f} s = {self.tests / max(self.tests_s, 1e-9):,.0f}/s, polls "
            f"{self.polls_s:.0f} s = {self.interface_rows / max(self.polls_s, 1e-9):,.0f} "
            f"interface rows/s, vacuum/analyze {self.vacuum_s:.0f} s)"
        )


def history_label(poll_history: timedelta) -> str:
    hours = poll_history.total_seconds() / 3600
    return f"{hours / 24:.0f}-day poll history" if hours >= 48 else f"{hours:.0f}-hour poll history"


def _no_wait_for_fsync(dbapi_connection: Any, _record: Any) -> None:
    # The build's own connections only: the collector measured afterwards runs as configured.
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
    dbapi_connection.commit()


def build_fleet(
    database_url: str, *, schools: int, poll_history: timedelta, say: Callable[[str], None]
) -> FleetBuild:
    """Migrate `database_url` and fill it with `schools` schools; returns what it took."""
    upgrade_to_head(database_url)
    engine = make_engine(database_url, workers=1)
    if engine.dialect.name == "postgresql":
        event.listen(engine, "connect", _no_wait_for_fsync)
    rng = random.Random(schools)
    now = datetime.now(UTC)
    timers = {"inventory": 0.0, "tests": 0.0, "polls": 0.0, "analyze": 0.0}
    counts = {"tests": 0, "polls": 0}
    started = last_report = last_batch_at = time.monotonic()
    try:
        with make_session_factory(engine)() as session:
            districts = _districts(session, schools)
            for n in range(schools):
                if n & (n - 1) == 0:  # 1, 2, 4, 8, ... schools: the tables doubled
                    clock = time.perf_counter()
                    _analyze(session)
                    timers["analyze"] += time.perf_counter() - clock
                clock = time.perf_counter()
                school_id, agent_id, users = _school(session, n, districts, rng)
                timers["inventory"] += time.perf_counter() - clock
                for part, batch in _batches(rng, now, poll_history, users):
                    clock = time.perf_counter()
                    # Classroom tests are taken in a browser: stored with no agent.
                    by = None if batch.agent_version == CLASSROOM_VERSION else agent_id
                    add_batch(session=session, agent_id=by, school_id=school_id, batch=batch)
                    timers[part] += time.perf_counter() - clock
                    last_batch_at = time.monotonic()
                    counts[part] += len(batch.measurements)
                if time.monotonic() - last_report > 60 and n + 1 < schools:
                    last_report = time.monotonic()
                    say(f"    {n + 1:,}/{schools:,} schools after {last_report - started:.0f} s")
        clock = time.perf_counter()
        _vacuum(engine)
        vacuum_s = timers["analyze"] + time.perf_counter() - clock
    finally:
        engine.dispose()
    return FleetBuild(
        schools=schools,
        districts=len(districts),
        history=poll_history,
        tests=counts["tests"],
        polls=counts["polls"],
        inventory_s=timers["inventory"],
        tests_s=timers["tests"],
        polls_s=timers["polls"],
        vacuum_s=vacuum_s,
        last_batch_at=last_batch_at,
    )


def _districts(session: Session, schools: int) -> list[int]:
    districts = [District(name=f"District {d + 1:03d}") for d in range(_district_count(schools))]
    session.add_all(districts)
    session.commit()
    return [d.id for d in districts]


def _district_count(schools: int) -> int:
    return math.ceil(schools / DISTRICT_SCHOOLS)


def _school(
    session: Session, n: int, districts: list[int], rng: random.Random
) -> tuple[int, int, int]:
    """School number `n` in its district, with one enrolled agent: (school id, agent id, users)."""
    students = rng.randrange(150, 2500)
    staff = students // 10
    school = create_school(
        session=session, name=f"School {n + 1:05d}", students=students, staff=staff
    )
    district_id = districts[n // DISTRICT_SCHOOLS]
    # Committed with the agent's enrolment.
    session.execute(update(School).where(School.id == school.id).values(district_id=district_id))
    agent, _token = enroll_agent(session=session, school_id=school.id, name=f"pi-{n + 1:05d}")
    return school.id, agent.id, students + staff


CLASSROOM_VERSION = "bench-scale-classroom"


def _batches(
    rng: random.Random, now: datetime, poll_history: timedelta, users: int
) -> Iterator[tuple[str, Batch]]:
    """One school's tests, its classroom tests, then its polls oldest first, in wire-sized
    batches."""
    # Around 1 Mbit/s per user: about half the schools meet the 2017-18 target.
    median_bps = users * 1e6 * rng.lognormvariate(0, 0.5)
    link_mbps = 100 if rng.random() < _SLOW_AGENT_SHARE else 1000
    tests = _tests(rng, now, median_bps, link_mbps)
    while chunk := list(islice(tests, MAX_BATCH_MEASUREMENTS)):
        yield "tests", Batch(agent_version="bench-scale", measurements=chunk)
    classroom: list[AnyMeasurement] = [
        _classroom(rng, now - timedelta(days=day, hours=rng.uniform(1, 7)), room, median_bps)
        for day in range(WINDOW_DAYS)
        for room in ROOMS
    ]
    yield "tests", Batch(agent_version=CLASSROOM_VERSION, measurements=classroom)
    polls = _polls(rng, now, poll_history)
    while chunk := list(islice(polls, MAX_BATCH_MEASUREMENTS)):
        yield "polls", Batch(agent_version="bench-scale", measurements=chunk)


def _tests(
    rng: random.Random, now: datetime, median_bps: float, link_mbps: int
) -> Iterator[AnyMeasurement]:
    """Hourly on-net and latency tests and an internet test every 12 hours, oldest first."""
    for k in reversed(range(TESTS_PER_SCHOOL)):
        at = now - timedelta(hours=k + rng.uniform(0.02, 0.98))
        yield _onnet(rng, at, median_bps, link_mbps, used=(TESTS_PER_SCHOOL - k) % 24)
        yield _latency(rng, at + timedelta(seconds=30))
        if k % INTERNET_EVERY_HOURS == 0:
            yield _internet(rng, at + timedelta(seconds=60), median_bps)


def _onnet(
    rng: random.Random, measured_at: datetime, median_bps: float, link_mbps: int, used: int
) -> ThroughputTest:
    failed = rng.random() < _FAILED_TEST_SHARE
    # The agent's port caps what it can measure: within 10 % of it, a test is agent-limited.
    down = min(median_bps * rng.uniform(0.7, 1.3), link_mbps * 0.94e6)
    idle_ms = rng.uniform(2, 30)
    loaded_ms = idle_ms + rng.uniform(5, 400)
    used_bytes = (used + 1) * 250_000_000
    if failed:
        return ThroughputTest(
            path="onnet",
            server="http://127.0.0.1:8080",
            streams=8,
            duration_s=15.0,
            measured_at=measured_at,
            error="timed out",
            budget_bytes=_BUDGET_BYTES,
            budget_used_bytes=used_bytes,
        )
    return ThroughputTest(
        path="onnet",
        server="http://127.0.0.1:8080",
        streams=8,
        download_bps=down,
        upload_bps=down * rng.uniform(0.3, 0.6),
        latency_ms=idle_ms,
        download_bytes=100_000_000,
        upload_bytes=25_000_000,
        duration_s=20.0,
        download_p90_bps=down * rng.uniform(1.0, 1.1),
        upload_p90_bps=down * rng.uniform(0.35, 0.65),
        loaded_latency_ms=loaded_ms,
        responsiveness_rpm=60_000 / loaded_ms,
        agent_link_mbps=link_mbps,
        agent_wifi=False,
        agent_limited=down >= 0.9 * link_mbps * 1e6,
        background_bps=rng.uniform(0, 0.2) * median_bps,
        budget_bytes=_BUDGET_BYTES,
        budget_used_bytes=used_bytes,
        measured_at=measured_at,
    )


def _internet(rng: random.Random, measured_at: datetime, median_bps: float) -> ThroughputTest:
    down = median_bps * rng.uniform(0.6, 1.1)
    return ThroughputTest(
        path="internet",
        server="http://speedtest.example.net:8080/speedtest/upload.php",
        streams=4,
        download_bps=down,
        upload_bps=down * rng.uniform(0.3, 0.6),
        latency_ms=rng.uniform(8, 40),
        download_bytes=60_000_000,
        upload_bytes=20_000_000,
        duration_s=25.0,
        server_id="4711",
        sponsor="Example ISP",
        distance_km=rng.uniform(5, 300),
        measured_at=measured_at,
    )


def _latency(rng: random.Random, measured_at: datetime) -> LatencyTest:
    lost = 0 if rng.random() < 0.9 else rng.randrange(1, 5)
    p50 = rng.uniform(2, 30)
    return LatencyTest(
        target="127.0.0.1:8080",
        method="tcp_connect",
        answered=20 - lost,
        lost=lost,
        rtt_p50_ms=p50,
        rtt_p90_ms=p50 * rng.uniform(1.1, 2),
        jitter_ms=rng.uniform(0.1, 5),
        measured_at=measured_at,
    )


def _classroom(
    rng: random.Random, measured_at: datetime, room: str, median_bps: float
) -> ThroughputTest:
    # A student device on the room's Wi-Fi: well under the circuit's rate.
    down = min(median_bps, 400e6) * rng.uniform(0.1, 0.6)
    return ThroughputTest(
        path="classroom",
        server="http://127.0.0.1:8080",
        streams=5,
        download_bps=down,
        upload_bps=down * rng.uniform(0.2, 0.5),
        latency_ms=rng.uniform(5, 40),
        loaded_latency_ms=rng.uniform(50, 500),
        duration_s=20.0,
        room=room,
        measured_at=measured_at,
    )


def _polls(rng: random.Random, now: datetime, poll_history: timedelta) -> Iterator[AnyMeasurement]:
    count = int(poll_history / POLL_INTERVAL)
    interfaces = {device: _interfaces(rng) for device in DEVICES}
    boot_ticks = rng.randrange(1_000_000, 100_000_000)
    for k in range(count):
        for d, device in enumerate(DEVICES):
            yield SnmpPoll(
                device=device,
                address=f"127.0.0.1:{161 + d}",
                sys_object_id="1.3.6.1.4.1.9.1.2494",
                sys_uptime_ticks=boot_ticks + k * _TICKS_PER_POLL,
                measured_at=now - (count - 1 - k) * POLL_INTERVAL,
                interfaces=interfaces[device],
            )


def _interfaces(rng: random.Random) -> list[InterfaceCounters]:
    # One set of counters per device, reused by each of its polls: the rows are as large as
    # ever-changing counters would make them, and building them stays off the clock's worst part.
    return [
        InterfaceCounters(
            ifindex=i + 1,
            name=f"GigabitEthernet1/0/{i + 1}",
            octets_in=rng.randrange(2**48),
            octets_out=rng.randrange(2**48),
            speed_mbps=10_000 if i == 0 else 1000,
        )
        for i in range(INTERFACES)
    ]


def _analyze(session: Session) -> None:
    """Fresh planner statistics each time the tables have doubled, as autovacuum would keep them.

    The local PostgreSQL may run with autovacuum off (a test server). Without statistics, a
    statement psycopg has prepared while the tables were nearly empty keeps its generic plan, and
    the duplicate-id check of every later batch scans the whole measurements table.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("ANALYZE"))
        session.commit()


def _vacuum(engine: Engine) -> None:
    """What autovacuum does to a live database over time: statistics and visibility maps."""
    if engine.dialect.name != "postgresql":
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM (ANALYZE)"))


def table_bytes(database_url: str) -> dict[str, int]:
    """On-disk bytes per table, indexes included (PostgreSQL `pg_total_relation_size`; SQLite
    the `dbstat` pages of each table and its indexes, or the whole file as "(file)")."""
    engine = make_engine(database_url, workers=1)
    try:
        with engine.connect() as connection:
            if engine.dialect.name == "postgresql":
                rows = connection.execute(
                    text(
                        "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
                        "JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE n.nspname = 'public' AND c.relkind = 'r'"
                    )
                )
                return {str(name): int(size) for name, size in rows}
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            try:
                rows = connection.exec_driver_sql(
                    "SELECT COALESCE(m.tbl_name, s.name), SUM(s.pgsize) FROM dbstat s "
                    "LEFT JOIN sqlite_master m ON m.name = s.name GROUP BY 1"
                )
                return {str(name): int(size) for name, size in rows}
            except OperationalError:  # SQLite built without the dbstat table
                database = connection.engine.url.database or ""
                return {"(file)": os.path.getsize(database)}
    finally:
        engine.dispose()
