"""Scale: what a real collector reads and holds at 100, 1,000 and 10,000 schools.

For each size a fleet is built in a fresh database with the store's own functions
(`bench._fleet`: 30 days of hourly tests per school, two devices with 20 interfaces polled every
5 minutes, districts of 200 schools), then a real ``readynet-collector serve`` is started on it
and asked, over HTTP on 127.0.0.1, for: the first ``/metrics`` (which computes the readiness
board of every school), warm ones, ``/metrics?interfaces=none``, one district's interface detail
``/metrics?district=<id>`` and single schools' ``/api/v1/schools/{id}/readiness``; its peak RSS
is read from /proc. In-process, the cold `ReadinessBoard.refresh` is timed and the SQL statements
of refresh + `render_scrape` are counted, which must not grow with the fleet.

The poll history is the full 30 days at 100 schools and the last 2 hours otherwise (30 days at
10,000 schools would be 3.5 billion interface rows); 100 schools are also measured with the
2-hour history, to show that no read depends on how deep the history is. The 100-school full
build also gives the disk cost of a school-year. Each figure is printed against its target (set
for 10,000 schools on PostgreSQL) with PASS or MISS, and ratios compare sizes and histories
measured in the same run.

Run alone with ``python -m bench.scale [--schools N ...] [--backend postgres|sqlite|both]``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from agent.wire import Batch, ThroughputTest
from bench._collector import (
    BenchError,
    peak_rss_bytes,
    postgres_unreachable,
    reader_token,
    start_collector,
    throwaway_postgres,
)
from bench._common import Figure, say
from bench._fleet import (
    FULL_HISTORY,
    SHORT_HISTORY,
    FleetBuild,
    build_fleet,
    history_label,
    table_bytes,
)
from collector.api.gate import GateLoad
from collector.localrun import log_tail
from collector.metrics.scrape import ScrapeRequest, render_scrape
from collector.readiness.board import COMMIT_MARGIN, ReadinessBoard
from collector.readiness.targets import load_profile
from collector.settings import CollectorSettings
from collector.store.db import make_engine, make_session_factory, recorded_statements
from collector.store.ingest import add_batch
from collector.store.latest import Scope
from collector.store.models import Agent, District, School

SIZES = (100, 1_000, 10_000)
# SQLite is the single-school and small-district backend: it is not built at 10,000 schools.
SQLITE_MAX_SCHOOLS = 1_000
# At this size the full 30-day poll history is built too (and measured against 2 hours).
FULL_HISTORY_SCHOOLS = 100
WARM_SCRAPES = 5
DISTRICT_SCRAPES = 7
SCHOOL_READS = 21
HTTP_TIMEOUT_S = 600.0
DAYS_PER_YEAR = 365

# Targets at 10,000 schools on PostgreSQL.
DEFAULT_SCRAPE_S = 1.0
DISTRICT_SCRAPE_S = 0.3
ALL_READINESS_S = 10.0
SCHOOL_READINESS_S = 0.05
PEAK_RSS_MB = 300.0
# A read with the 30-day history may take at most this much longer than with 2 hours (noise).
HISTORY_RATIO_LIMIT = 1.5

_DEFAULTS = CollectorSettings.model_fields
# Only its gauges are rendered: an idle store gate.
IDLE_GATE = GateLoad(running=0, waiting=0, workers=8)


@dataclass(frozen=True)
class Scrape:
    seconds: float
    size_bytes: int
    samples: int

    def describe(self) -> str:
        return f"{_ms(self.seconds)}, {self.size_bytes / 1e6:.2f} MB, {self.samples:,} samples"


@dataclass(frozen=True)
class Statements:
    """SQL statements of board.refresh + render_scrape: cold board, warm board, one district."""

    cold: int
    warm: int
    district: int

    def describe(self) -> str:
        return f"{self.cold} cold / {self.warm} warm / {self.district} district"


@dataclass(frozen=True)
class Reads:
    first: Scrape
    warm: Scrape
    no_interfaces: Scrape
    district: Scrape
    district_schools: int
    school_readiness_s: float
    board_refresh_s: float
    statements: Statements
    peak_rss_bytes: int | None


@dataclass(frozen=True)
class ScaleRun:
    backend: str
    build: FleetBuild
    reads: Reads
    disk: dict[str, int]

    @property
    def name(self) -> str:
        return f"{self.backend} {self.build.schools}"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def _samples(body: bytes) -> int:
    return sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))


def _get(client: httpx.Client, path: str) -> tuple[float, bytes]:
    started = time.perf_counter()
    answer = client.get(path)
    elapsed = time.perf_counter() - started
    if answer.status_code != 200:
        raise BenchError(f"GET {path}: HTTP {answer.status_code} {answer.text[:200]}")
    return elapsed, answer.content


def _scrapes(client: httpx.Client, path: str, times: int) -> Scrape:
    """`times` GETs of `path`: the median time, and the size of the last answer."""
    seconds = []
    body = b""
    for _ in range(times):
        elapsed, body = _get(client, path)
        seconds.append(elapsed)
    return Scrape(statistics.median(seconds), len(body), _samples(body))


@dataclass(frozen=True)
class _Http:
    first: Scrape
    warm: Scrape
    no_interfaces: Scrape
    district: Scrape
    school_readiness_s: float
    peak_rss_bytes: int | None


def measure_http(database_url: str, workdir: Path, district_id: int, schools: list[int]) -> _Http:
    """The reads Prometheus and the API make, against a collector started on the built fleet."""
    # The rollup job off: its first run over a big fleet is a backfill that would compete with
    # the reads measured here (bench/rollups.py measures it).
    no_rollups = {"READYNET_COLLECTOR_ROLLUP_INTERVAL_S": "86400"}
    with start_collector(database_url, workdir, env=no_rollups) as collector:
        try:
            auth = {"Authorization": f"Bearer {reader_token(database_url)}"}
            with httpx.Client(
                base_url=collector.url, timeout=HTTP_TIMEOUT_S, headers=auth
            ) as client:
                first = _scrapes(client, "/metrics", 1)
                warm = _scrapes(client, "/metrics", WARM_SCRAPES)
                none = _scrapes(client, "/metrics?interfaces=none", WARM_SCRAPES)
                district = _scrapes(client, f"/metrics?district={district_id}", DISTRICT_SCRAPES)
                _get(client, f"/api/v1/schools/{schools[0]}/readiness")  # warm-up
                readiness = [
                    _get(client, f"/api/v1/schools/{school_id}/readiness")[0]
                    for school_id in schools[1:]
                ]
        except (httpx.HTTPError, BenchError) as exc:
            raise BenchError(f"{exc}; collector log tail:\n{log_tail(collector.log_path)}") from exc
        rss = peak_rss_bytes(collector.pid)
    return _Http(first, warm, none, district, statistics.median(readiness), rss)


def measure_in_process(
    database_url: str, district_id: int, school_id: int
) -> tuple[Statements, float]:
    """Statements of refresh + render (cold, warm, one district) and the cold refresh time.

    Between the cold and the warm scrape one school reports a new test, as some school always
    has in a live fleet: the warm refresh then recomputes that school, with the same statements
    whatever the fleet's size.
    """
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    board = ReadinessBoard(
        load_profile(str(_DEFAULTS["target_profile"].default)),
        days=int(_DEFAULTS["readiness_window_days"].default),
    )
    budget = int(_DEFAULTS["metrics_interface_budget"].default)
    default = ScrapeRequest(detail=False, scope=Scope(), interfaces=True, interface_budget=budget)
    district = ScrapeRequest(
        detail=True,
        scope=Scope(everything=False, district_id=district_id),
        interfaces=True,
        interface_budget=budget,
    )
    counts = []
    refresh_s = []
    try:
        for request in (default, default, district):
            with sessions() as session, recorded_statements(engine) as statements:
                started = time.perf_counter()
                snapshot = board.refresh(session)
                refresh_s.append(time.perf_counter() - started)
                render_scrape(session=session, request=request, board=snapshot, gate=IDLE_GATE)
            counts.append(len(statements))
            if len(counts) == 1:
                _report_one_test(sessions, school_id)
    finally:
        engine.dispose()
    return Statements(*counts), refresh_s[0]


def _report_one_test(sessions: sessionmaker[Session], school_id: int) -> None:
    with sessions() as session:
        agent_id = session.scalar(select(Agent.id).where(Agent.school_id == school_id))
        if agent_id is None:
            raise BenchError(f"school {school_id} has no agent")
        test = ThroughputTest(path="onnet", server="http://127.0.0.1:8080", download_bps=1e8)
        batch = Batch(agent_version="bench-scale", measurements=[test])
        add_batch(session=session, agent_id=agent_id, school_id=school_id, batch=batch)


def _fleet_ids(database_url: str, rng: random.Random) -> tuple[int, int, list[int]]:
    """(first district's id, its schools, SCHOOL_READS + 1 school ids picked at random)."""
    engine = make_engine(database_url, workers=1)
    try:
        with engine.connect() as connection:
            district_id = int(connection.scalar(select(District.id).order_by(District.id)) or 0)
            schools = [int(s) for s in connection.scalars(select(School.id))]
            in_district = select(func.count()).where(School.district_id == district_id)
            members = int(connection.scalar(in_district) or 0)
    finally:
        engine.dispose()
    picked = [rng.choice(schools) for _ in range(SCHOOL_READS + 1)]
    return district_id, members, picked


def measure_reads(database_url: str, workdir: Path, build: FleetBuild) -> Reads:
    district_id, members, schools = _fleet_ids(database_url, random.Random(0))
    # The board re-reads schools that received tests in the last COMMIT_MARGIN: once the build
    # is older than that, warm scrapes recompute only schools whose data changed.
    wait_s = COMMIT_MARGIN.total_seconds() + 1 - (time.monotonic() - build.last_batch_at)
    if wait_s > 0:
        say(f"  waiting {wait_s:.0f} s until the newest batch is past the board's look-back")
        time.sleep(wait_s)
    http = measure_http(database_url, workdir, district_id, schools)
    statements, refresh_s = measure_in_process(database_url, district_id, schools[0])
    return Reads(
        first=http.first,
        warm=http.warm,
        no_interfaces=http.no_interfaces,
        district=http.district,
        district_schools=members,
        school_readiness_s=http.school_readiness_s,
        board_refresh_s=refresh_s,
        statements=statements,
        peak_rss_bytes=http.peak_rss_bytes,
    )


@contextmanager
def _database(backend: str, workdir: Path) -> Iterator[str]:
    """A fresh database: a throwaway PostgreSQL one, or a SQLite file removed afterwards."""
    if backend == "postgres":
        with throwaway_postgres() as database_url:
            yield database_url
        return
    with tempfile.TemporaryDirectory(dir=workdir, prefix="fleet-") as tmp:
        yield f"sqlite:///{Path(tmp) / 'fleet.db'}"


def measure_fleet(backend: str, schools: int, poll_history: timedelta, workdir: Path) -> ScaleRun:
    """Build one fleet in a fresh database, measure it, drop it."""
    say(f"scale, {backend}, {schools:,} schools, {history_label(poll_history)}: building")
    with _database(backend, workdir) as database_url:
        build = build_fleet(database_url, schools=schools, poll_history=poll_history, say=say)
        say(f"  {build.describe()}")
        disk = table_bytes(database_url)
        reads = measure_reads(database_url, workdir, build)
    run = ScaleRun(backend, build, reads, disk)
    for line in describe(run):
        say(f"  {line}")
    return run


def describe(run: ScaleRun) -> list[str]:
    r = run.reads
    rss = "n/a" if r.peak_rss_bytes is None else f"{r.peak_rss_bytes / 1e6:.1f} MB"
    return [
        f"first /metrics (computes the readiness board): {r.first.describe()}",
        f"warm /metrics, median of {WARM_SCRAPES}: {r.warm.describe()}",
        f"/metrics?interfaces=none, median of {WARM_SCRAPES}: {r.no_interfaces.describe()}",
        f"/metrics?district= ({r.district_schools} schools), median of {DISTRICT_SCRAPES}: "
        f"{r.district.describe()}",
        f"one school's readiness, median of {SCHOOL_READS}: {_ms(r.school_readiness_s)}",
        f"all schools' readiness, cold ReadinessBoard.refresh in-process: {_ms(r.board_refresh_s)}",
        f"SQL statements per board.refresh + render_scrape: {r.statements.describe()}",
        f"collector peak RSS (VmHWM): {rss}",
        f"database: {_disk(run.disk)}",
    ]


def _disk(disk: dict[str, int]) -> str:
    parts = sorted(disk.items(), key=lambda item: -item[1])
    shown = ", ".join(f"{name} {size / 1e6:,.1f}" for name, size in parts if size >= 1e6)
    return f"{sum(disk.values()) / 1e6:,.1f} MB ({shown or 'every table under 1 MB'})"


def _target(
    run: ScaleRun, what: str, value: float, target: float, unit: str, scale: float
) -> Figure:
    return Figure(
        group="scale",
        label=f"{run.name} {what}",
        unit=unit,
        ours_name="measured",
        value=value * scale,
        reference_name="target",
        reference=target * scale,
        lower_is_better=True,
        verdict="PASS" if value <= target else "MISS",
    )


def run_figures(run: ScaleRun, smallest: ScaleRun) -> list[Figure]:
    """Build time, every read against its target, and statements against the smallest fleet."""
    r, b = run.reads, run.build
    rss_mb = None if r.peak_rss_bytes is None else r.peak_rss_bytes / 1e6
    same = r.statements == smallest.reads.statements
    return [
        Figure(
            "scale",
            f"{run.name} build",
            "",
            "",
            None,
            "",
            None,
            True,
            instead=b.timings(),
        ),
        _target(run, "/metrics first (board)", r.first.seconds, ALL_READINESS_S, "ms", 1000),
        _target(run, "/metrics warm", r.warm.seconds, DEFAULT_SCRAPE_S, "ms", 1000),
        _target(
            run, "/metrics interfaces=none", r.no_interfaces.seconds, DEFAULT_SCRAPE_S, "ms", 1000
        ),
        _target(run, "district detail", r.district.seconds, DISTRICT_SCRAPE_S, "ms", 1000),
        _target(run, "school readiness", r.school_readiness_s, SCHOOL_READINESS_S, "ms", 1000),
        _target(run, "all readiness (refresh)", r.board_refresh_s, ALL_READINESS_S, "ms", 1000),
        Figure(
            "scale",
            f"{run.name} peak RSS",
            "MB",
            "measured",
            rss_mb,
            "target",
            PEAK_RSS_MB,
            True,
            verdict="PASS" if rss_mb is not None and rss_mb <= PEAK_RSS_MB else "MISS",
        ),
        Figure(
            "scale",
            f"{run.name} SQL statements",
            "",
            "",
            None,
            "",
            None,
            True,
            instead=(
                f"{r.statements.describe()} | at {smallest.build.schools} schools "
                f"{smallest.reads.statements.describe()}"
            ),
            verdict="constant: PASS" if same else "grows: MISS",
        ),
    ]


def history_figures(full: ScaleRun, short: ScaleRun) -> list[Figure]:
    """The same reads with a 30-day and a 2-hour poll history: ratios near 1."""
    pairs = (
        ("/metrics warm", full.reads.warm.seconds, short.reads.warm.seconds),
        ("interfaces=none", full.reads.no_interfaces.seconds, short.reads.no_interfaces.seconds),
        ("district detail", full.reads.district.seconds, short.reads.district.seconds),
        ("school readiness", full.reads.school_readiness_s, short.reads.school_readiness_s),
    )
    figures = [
        Figure(
            "scale",
            f"{full.name} history 30 d/2 h {what}",
            "ms",
            "30 d",
            deep * 1000,
            "2 h",
            shallow * 1000,
            lower_is_better=True,
            verdict=_history_verdict(deep, shallow),
        )
        for what, deep, shallow in pairs
    ]
    same = full.reads.statements == short.reads.statements
    figures.append(
        Figure(
            "scale",
            f"{full.name} history 30 d/2 h SQL",
            "",
            "",
            None,
            "",
            None,
            True,
            instead=f"{full.reads.statements.describe()} | {short.reads.statements.describe()}",
            verdict="same: PASS" if same else "differ: MISS",
        )
    )
    return figures


def _history_verdict(deep: float, shallow: float) -> str:
    flat = deep <= HISTORY_RATIO_LIMIT * shallow
    return f"<= {HISTORY_RATIO_LIMIT}: {'PASS' if flat else 'MISS'}"


def disk_figure(full: ScaleRun) -> Figure:
    """Bytes per school-year from a build that holds 30 days of everything."""
    days = full.build.history / timedelta(days=1)
    per_year = DAYS_PER_YEAR / days / full.build.schools
    parts = sorted(full.disk.items(), key=lambda item: -item[1])
    shown = ", ".join(f"{n} {size * per_year / 1e6:,.1f}" for n, size in parts[:4])
    return Figure(
        "scale",
        f"{full.backend} disk per school-year",
        "",
        "",
        None,
        "",
        None,
        True,
        instead=(
            f"{sum(full.disk.values()) * per_year / 1e6:,.0f} MB ({shown} MB; measured on "
            f"{full.build.schools} schools x {days:.0f} days, scaled to {DAYS_PER_YEAR})"
        ),
    )


def _skipped(label: str, reason: str) -> Figure:
    return Figure("scale", label, "", "", None, "", None, True, instead=f"skipped: {reason}")


def measure_backend(backend: str, sizes: Sequence[int], workdir: Path) -> list[Figure]:
    if backend == "postgres" and (unreachable := postgres_unreachable()) is not None:
        return [_skipped("postgres", unreachable)]
    figures: list[Figure] = []
    smallest: ScaleRun | None = None
    for schools in sorted(set(sizes)):
        if backend == "sqlite" and schools > SQLITE_MAX_SCHOOLS:
            reason = f"SQLite is measured up to {SQLITE_MAX_SCHOOLS:,} schools"
            figures.append(_skipped(f"sqlite {schools}", reason))
            continue
        short = measure_fleet(backend, schools, SHORT_HISTORY, workdir)
        smallest = smallest or short
        figures += run_figures(short, smallest)
        if schools == FULL_HISTORY_SCHOOLS:
            full = measure_fleet(backend, schools, FULL_HISTORY, workdir)
            figures += [*history_figures(full, short), disk_figure(full)]
    return figures


def run(
    sizes: Sequence[int] = SIZES, backends: Sequence[str] = ("postgres", "sqlite")
) -> list[Figure]:
    """Every size on each backend (SQLite up to SQLITE_MAX_SCHOOLS)."""
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="rn-bench-scale-") as tmp:
        for backend in backends:
            figures += measure_backend(backend, sizes, Path(tmp))
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--schools", type=int, nargs="+", default=list(SIZES), metavar="N")
    parser.add_argument("--backend", choices=("both", "postgres", "sqlite"), default="both")
    args = parser.parse_args(argv)
    if any(n < 1 for n in args.schools):
        parser.error("--schools: every size must be at least 1")
    backends = ("postgres", "sqlite") if args.backend == "both" else (args.backend,)
    figures = run(args.schools, backends)
    say("")
    for figure in figures:
        say(figure.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
