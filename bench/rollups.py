"""Rollups: a school year's readiness from raw results vs from the daily rollups.

Per backend, a fleet of 200 schools with 180 days (a school year) of one throughput test per
school per hour (internet every 12th hour, on-net otherwise; 2 % failed) and an uplink polled
every 5 minutes per school (one interface with the internet role, its 5-minute rate stored as
ingest stores it) is written in bulk with Core inserts (`collector.store.bulk`: COPY on
PostgreSQL, executemany on SQLite). Then, in-process:

- the rollup job's own work (`roll_up`) from nothing (every hour and day of the year), and an
  incremental run after one more hour of results (what each 5-minute run does);
- the readiness figures of all 200 schools over the 180 days: from the raw rows
  (`school_windows`, percentile_cont in the database) against `long_windows` over the daily
  rollups (merged sketches), and the uplink peaks (`uplink_peaks` per school against
  `long_uplink_peaks`), best of 3 each, with the largest relative difference of the medians;
- the size on disk of one school's year: raw tables (measurements and their children) against
  the rollup tables, per school (SQLite `dbstat`, PostgreSQL `pg_total_relation_size`).

Polls make most of the rows (288 a day per school: 10.4 million polls, 41.5 million rows over
the year). `--poll-days` shortens the poll history; the default is the full 180 days on
PostgreSQL (about 11 minutes of inserts) and 30 on SQLite, where the full year would take
another 10 minutes of `make bench` for no new finding (the uplink figures say how many days);
the size per school scales the polls' tables to 180 days and says so.

Run alone with ``python -m bench.rollups [--backend postgres|sqlite|both] [--schools N]
[--days N] [--poll-days N]``.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Engine, Table, text
from sqlalchemy.orm import Session

from bench._collector import postgres_unreachable, throwaway_postgres
from bench._common import Figure, say
from bench._fleet import table_bytes
from collector.store.bulk import insert_rows
from collector.store.db import make_engine, make_session_factory
from collector.store.migrate import upgrade_to_head
from collector.store.models import (
    Agent,
    Device,
    InterfaceRate,
    InterfaceSample,
    Measurement,
    School,
    SnmpPollResult,
    ThroughputResult,
)
from collector.store.rollups import (
    RELATIVE_ERROR,
    floor_hour,
    long_uplink_peaks,
    long_windows,
    roll_up,
)
from collector.store.uplinks import uplink_peaks
from collector.store.windows import school_windows

SCHOOLS = 200
DAYS = 180
POLL_DAYS = {"postgres": 180, "sqlite": 30}
TARGET_S = 0.3
RAW_TABLES = (
    "measurements",
    "throughput_results",
    "snmp_polls",
    "interface_samples",
    "interface_rates",
)
POLL_TABLES = ("snmp_polls", "interface_samples", "interface_rates")
ROLLUP_TABLES = ("throughput_rollups", "uplink_rollups")
_CHUNK_HOURS = 24
_POLL = timedelta(minutes=5)


def _table(model: Any) -> Table:
    return cast(Table, model.__table__)


@dataclass(frozen=True)
class Build:
    tests: int
    polls: int
    seconds: float

    @property
    def rows(self) -> int:
        return self.tests * 2 + self.polls * 4


def _inventory(engine: Engine, schools: int) -> list[tuple[int, int, int, float]]:
    """(school, agent, device, typical Mbps) per school."""
    rng = random.Random(schools)
    fleet = []
    with make_session_factory(engine)() as session:
        for n in range(schools):
            school = School(name=f"School {n + 1:04d}", students=rng.randrange(150, 2500), staff=50)
            session.add(school)
            session.flush()
            agent = Agent(school_id=school.id, name=f"pi-{n + 1:04d}")
            device = Device(school_id=school.id, name="edge")
            session.add_all([agent, device])
            session.flush()
            fleet.append(
                (school.id, agent.id, device.id, (school.students + 50) * rng.uniform(0.5, 2))
            )
        session.commit()
    return fleet


def build(engine: Engine, *, schools: int, days: int, poll_days: int, end: datetime) -> Build:
    """Write the fleet's results in bulk, a day of every school's results per transaction."""
    started = time.perf_counter()
    fleet = _inventory(engine, schools)
    rng = random.Random(7)
    tests = polls = 0
    poll_id = 1
    first = end - timedelta(days=days)
    poll_start = end - timedelta(days=poll_days)
    counters = {device: 0 for _, _, device, _ in fleet}
    received = end
    for day in range(days):
        day_start = first + timedelta(days=day)
        measurements: list[tuple[Any, ...]] = []
        results: list[tuple[Any, ...]] = []
        poll_rows: list[tuple[Any, ...]] = []
        samples: list[tuple[Any, ...]] = []
        rates: list[tuple[Any, ...]] = []
        for school_id, agent_id, device_id, mbps in fleet:
            for hour in range(24):
                at = day_start + timedelta(hours=hour, minutes=rng.uniform(0, 59))
                mid = uuid.uuid4()
                failed = rng.random() < 0.02
                measurements.append(
                    (
                        mid,
                        agent_id,
                        school_id,
                        "throughput",
                        at,
                        received,
                        "timed out" if failed else None,
                    )
                )
                down = None if failed else mbps * 1e6 * rng.uniform(0.6, 1.3)
                results.append(
                    (
                        mid,
                        "internet" if hour % 12 == 0 else "onnet",
                        "http://127.0.0.1:8080",
                        8,
                        down,
                        None if down is None else down * 0.4,
                        rng.uniform(2, 30),
                        100_000_000,
                        25_000_000,
                        20.0,
                        rng.uniform(30, 300),
                        False,
                    )
                )
                tests += 1
            if day_start < poll_start:
                continue
            for k in range(24 * 12):
                at = day_start + k * _POLL
                mid = uuid.uuid4()
                measurements.append((mid, agent_id, school_id, "snmp_poll", at, received, None))
                poll_rows.append((poll_id, mid, device_id, "127.0.0.1:161", at, 1000 + k))
                rate = mbps * 1e6 * rng.uniform(0.05, 0.9)
                counters[device_id] += int(rate * 300 / 8)
                octets = counters[device_id]
                samples.append(
                    (poll_id, 0, 1, "Gi0/0/0", octets, octets // 3, 64, 1000, "internet")
                )
                rates.append((poll_id, 0, 300.0, rate, rate / 3, None))
                poll_id += 1
                polls += 1
        with engine.begin() as connection:
            insert_rows(
                connection,
                _table(Measurement),
                ("id", "agent_id", "school_id", "kind", "measured_at", "received_at", "error"),
                measurements,
            )
            insert_rows(
                connection,
                _table(ThroughputResult),
                (
                    "measurement_id",
                    "path",
                    "server",
                    "streams",
                    "download_bps",
                    "upload_bps",
                    "latency_ms",
                    "download_bytes",
                    "upload_bytes",
                    "duration_s",
                    "loaded_latency_ms",
                    "agent_limited",
                ),
                results,
            )
            insert_rows(
                connection,
                _table(SnmpPollResult),
                (
                    "poll_id",
                    "measurement_id",
                    "device_id",
                    "address",
                    "ordered_at",
                    "sys_uptime_ticks",
                ),
                poll_rows,
            )
            insert_rows(
                connection,
                _table(InterfaceSample),
                (
                    "poll_id",
                    "seq",
                    "ifindex",
                    "name",
                    "octets_in",
                    "octets_out",
                    "counter_bits",
                    "speed_mbps",
                    "role",
                ),
                samples,
            )
            insert_rows(
                connection,
                _table(InterfaceRate),
                ("poll_id", "seq", "seconds", "in_bps", "out_bps", "no_rate"),
                rates,
            )
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM (ANALYZE)"))
    return Build(tests, polls, time.perf_counter() - started)


def _best_of(times: int, work: Callable[[], Any]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(times):
        started = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - started)
    return best, result


@dataclass(frozen=True)
class Measured:
    backend: str
    schools: int
    days: int
    poll_days: int
    build: Build
    backfill_s: float
    incremental_s: float
    raw_s: float
    rolled_s: float
    uplinks_raw_s: float
    uplinks_rolled_s: float
    worst_median_error: float
    raw_bytes_per_school: float
    rollup_bytes_per_school: float


def measure(backend: str, database_url: str, schools: int, days: int, poll_days: int) -> Measured:
    upgrade_to_head(database_url)
    engine = make_engine(database_url, workers=1)
    # The results end at the last complete hour: the day in progress is left to the next run.
    end = floor_hour(datetime.now(UTC)).replace(hour=0) - timedelta(hours=1)
    try:
        say(f"  {backend}: writing {schools} schools x {days} days (polls: {poll_days} days)")
        built = build(engine, schools=schools, days=days, poll_days=poll_days, end=end)
        say(
            f"  {backend}: {built.tests:,} tests, {built.polls:,} polls ({built.rows:,} rows) "
            f"in {built.seconds:.0f} s ({built.rows / built.seconds:,.0f} rows/s)"
        )
        sessions = make_session_factory(engine)
        with sessions() as session:
            backfill_s, run = _best_of(
                1, lambda: roll_up(session=session, now=datetime.now(UTC), retention_days=0)
            )
        say(f"  {backend}: rollup from nothing {backfill_s:.1f} s: {run.describe()}")
        _one_more_hour(engine, end)
        with sessions() as session:
            incremental_s, run = _best_of(
                1, lambda: roll_up(session=session, now=datetime.now(UTC), retention_days=0)
            )
        say(f"  {backend}: incremental rollup {incremental_s * 1000:.0f} ms: {run.describe()}")
        start = end - timedelta(days=days) + timedelta(hours=1)
        window_end = end + timedelta(hours=1)
        with sessions() as session:
            raw_s, raw = _best_of(3, lambda: school_windows(session=session, start=start))
            rolled_s, rolled = _best_of(
                3, lambda: long_windows(session=session, start=start, end=window_end)
            )
            uplinks_raw_s, _ = _best_of(1, lambda: _raw_uplinks(session, start))
            uplinks_rolled_s, peaks = _best_of(
                3, lambda: long_uplink_peaks(session=session, start=start, end=window_end)
            )
        assert len(peaks) == schools and len(rolled) == len(raw) == schools
        worst = max(
            abs(rolled[s].median_download_bps - w.median_download_bps) / w.median_download_bps
            for s, w in raw.items()
        )
        sizes = table_bytes(database_url)
        poll_scale = days / poll_days
        raw_bytes = sum(
            sizes.get(t, 0) * (poll_scale if t in POLL_TABLES else 1) for t in RAW_TABLES
        )
        if "(file)" in sizes:  # SQLite without dbstat: the whole file
            raw_bytes = sizes["(file)"]
        rollup_bytes = sum(sizes.get(t, 0) for t in ROLLUP_TABLES)
        return Measured(
            backend=backend,
            schools=schools,
            days=days,
            poll_days=poll_days,
            build=built,
            backfill_s=backfill_s,
            incremental_s=incremental_s,
            raw_s=raw_s,
            rolled_s=rolled_s,
            uplinks_raw_s=uplinks_raw_s,
            uplinks_rolled_s=uplinks_rolled_s,
            worst_median_error=worst,
            raw_bytes_per_school=raw_bytes / schools,
            rollup_bytes_per_school=rollup_bytes / schools,
        )
    finally:
        engine.dispose()


def _raw_uplinks(session: Session, start: datetime) -> int:
    school_ids = session.scalars(text("SELECT id FROM schools")).all()
    return sum(len(uplink_peaks(session=session, school_id=s, start=start)) for s in school_ids)


def _one_more_hour(engine: Engine, end: datetime) -> None:
    """One test per school in the hour after the year: what a 5-minute run finds."""
    with engine.begin() as connection:
        fleet = connection.execute(text("SELECT id, school_id FROM agents")).all()
        at = end + timedelta(minutes=30)
        now = datetime.now(UTC)  # received now: late for an hour the backfill rolled up
        rows = [(uuid.uuid4(), a, s, "throughput", at, now, None) for a, s in fleet]
        insert_rows(
            connection,
            _table(Measurement),
            ("id", "agent_id", "school_id", "kind", "measured_at", "received_at", "error"),
            rows,
        )
        insert_rows(
            connection,
            _table(ThroughputResult),
            (
                "measurement_id",
                "path",
                "server",
                "streams",
                "download_bytes",
                "upload_bytes",
                "duration_s",
                "download_bps",
                "agent_limited",
            ),
            [(r[0], "onnet", "x", 1, 0, 0, 1.0, 1e8, False) for r in rows],
        )


def figures(m: Measured) -> list[Figure]:
    group = "rollup"
    ok = "PASS" if m.rolled_s <= TARGET_S else "MISS"
    return [
        Figure(
            group,
            f"{m.backend} readiness {m.schools}x{m.days} d",
            "ms",
            "rollups",
            m.rolled_s * 1000,
            "raw",
            m.raw_s * 1000,
            True,
            note=f"medians within {m.worst_median_error:.3%} (bound {RELATIVE_ERROR:.3%})",
            verdict=f"target <= {TARGET_S * 1000:.0f} ms: {ok}",
        ),
        Figure(
            group,
            f"{m.backend} uplink peaks {m.schools}x{m.poll_days} d",
            "ms",
            "rollups",
            m.uplinks_rolled_s * 1000,
            "raw",
            m.uplinks_raw_s * 1000,
            True,
        ),
        Figure(
            group,
            f"{m.backend} rollup job run",
            "s",
            "one more",
            m.incremental_s,
            "backfill",
            m.backfill_s,
            True,
        ),
        Figure(
            group,
            f"{m.backend} one school-year on disk",
            "MB",
            "rollups",
            m.rollup_bytes_per_school / 1e6,
            "raw",
            m.raw_bytes_per_school / 1e6,
            True,
            note=f"polls scaled from {m.poll_days} days" if m.poll_days != m.days else "",
        ),
    ]


@contextmanager
def _database(backend: str, workdir: Path) -> Iterator[str]:
    if backend == "postgres":
        with throwaway_postgres() as url:
            yield url
    else:
        path = workdir / f"rollups-{uuid.uuid4().hex[:8]}.db"
        yield f"sqlite:///{path}"


def run(
    backends: Sequence[str] = ("postgres", "sqlite"),
    schools: int = SCHOOLS,
    days: int = DAYS,
    poll_days: int | None = None,
) -> list[Figure]:
    found: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="rn-bench-rollups-") as tmp:
        for backend in backends:
            if backend == "postgres" and (unreachable := postgres_unreachable()) is not None:
                found.append(
                    Figure(
                        "rollup",
                        backend,
                        "",
                        "",
                        None,
                        "",
                        None,
                        True,
                        instead=f"skipped: {unreachable}",
                    )
                )
                continue
            polls = min(days, poll_days or POLL_DAYS[backend])
            with _database(backend, Path(tmp)) as url:
                measured = measure(backend, url, schools, days, polls)
            for figure in figures(measured):
                say(figure.line() + (f"  ({figure.note})" if figure.note else ""))
                found.append(figure)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.rollups", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--backend", choices=("both", "postgres", "sqlite"), default="both")
    parser.add_argument("--schools", type=int, default=SCHOOLS)
    parser.add_argument("--days", type=int, default=DAYS)
    parser.add_argument("--poll-days", type=int, default=None)
    args = parser.parse_args(argv)
    backends = ("postgres", "sqlite") if args.backend == "both" else (args.backend,)
    run(backends, args.schools, args.days, args.poll_days)
    return 0


if __name__ == "__main__":
    sys.exit(main())
