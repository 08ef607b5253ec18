"""A synthetic district fleet for `bench.scale`, built with the collector's own store functions.

Every school gets 30 days of hourly throughput tests and two devices with 20 interfaces polled
every 5 minutes, over a chosen poll history (the full 30 days, or the last 2 hours). Schools are
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
    Batch,
    InterfaceCounters,
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
    tests: int
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
                    add_batch(session=session, agent_id=agent_id, school_id=school_id, batch=batch)
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


def _batches(
    rng: random.Random, now: datetime, poll_history: timedelta, users: int
) -> Iterator[tuple[str, Batch]]:
    """One school's tests (one batch), then its polls oldest first, in wire-sized batches."""
    # Around 1 Mbit/s per user: about half the schools meet the 2017-18 target.
    median_bps = users * 1e6 * rng.lognormvariate(0, 0.5)
    tests: list[ThroughputTest | SnmpPoll] = [
        _test(rng, now - timedelta(hours=k + rng.uniform(0.02, 0.98)), median_bps)
        for k in reversed(range(TESTS_PER_SCHOOL))
    ]
    yield "tests", Batch(agent_version="bench-scale", measurements=tests)
    polls = _polls(rng, now, poll_history)
    while chunk := list(islice(polls, MAX_BATCH_MEASUREMENTS)):
        yield "polls", Batch(agent_version="bench-scale", measurements=chunk)


def _test(rng: random.Random, measured_at: datetime, median_bps: float) -> ThroughputTest:
    failed = rng.random() < _FAILED_TEST_SHARE
    return ThroughputTest(
        path="onnet",
        server="http://127.0.0.1:8080",
        streams=4,
        download_bps=None if failed else median_bps * rng.uniform(0.7, 1.3),
        upload_bps=None if failed else median_bps * rng.uniform(0.3, 0.6),
        latency_ms=None if failed else rng.uniform(2, 30),
        download_bytes=0 if failed else 100_000_000,
        upload_bytes=0 if failed else 25_000_000,
        duration_s=15.0 if failed else rng.uniform(2, 12),
        measured_at=measured_at,
        error="timed out" if failed else None,
    )


def _polls(
    rng: random.Random, now: datetime, poll_history: timedelta
) -> Iterator[ThroughputTest | SnmpPoll]:
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
