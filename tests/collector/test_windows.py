"""Readiness windows from the store: the same figures on both backends, to the last bit.

PostgreSQL takes percentiles with `percentile_cont`, SQLite with window functions and the same
interpolation; both must equal a Python `percentile_cont` for odd and even counts, ties, a single
test and the p90, and leave out failed tests, tests without a download, tests from before the
window and classroom tests (a room's whole path, summed up per room instead).
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.wire import AnyMeasurement, Batch, SnmpPoll, ThroughputTest
from collector.store.db import make_engine, make_session_factory
from collector.store.ingest import add_batch
from collector.store.migrate import upgrade_to_head
from collector.store.queries import create_school, enroll_agent
from collector.store.windows import RoomWindow, SchoolWindow, room_windows, school_windows
from tests.fixtures.collector import throwaway_postgres

NOW = datetime.now(UTC).replace(microsecond=0)
START = NOW - timedelta(days=30)

# Downloads (Mbit/s) of each school's successful circuit tests inside the window.
DOWNLOADS = {
    "odd": [300.0, 100.0, 200.0],
    "even": [400.0, 100.0, 250.5, 300.0],
    "ties": [50.0, 50.0, 50.0, 900.0],
    "single": [75.25],
    "eleven": [93.7, 12.1, 55.5, 70.0, 70.0, 88.8, 41.3, 99.9, 23.4, 61.0, 47.7],
}
# Classroom tests (room, Mbit/s down, up) given to every school: never in its circuit window.
CLASSROOM = [("Room 12", 5000.0, 40.0), ("Room 12", 7000.0, None), ("Library", 9000.0, 80.0)]


@dataclass(frozen=True)
class Spec:
    """One successful circuit test."""

    mbps: float
    path: str
    idle_ms: float | None
    loaded_ms: float | None
    rpm: float | None
    limited: bool
    link_mbps: int | None


def _specs(name: str) -> list[Spec]:
    rng = random.Random(name)
    specs = []
    for n, mbps in enumerate(DOWNLOADS[name]):
        internet = n % 3 == 1  # internet tests time no round trips under load
        loaded = None if internet else round(rng.uniform(20, 400), 3)
        specs.append(
            Spec(
                mbps=mbps,
                path="internet" if internet else "onnet",
                idle_ms=round(rng.uniform(1, 30), 3),
                loaded_ms=loaded,
                rpm=None if loaded is None else 60_000 / loaded,
                limited=n % 2 == 0,
                link_mbps=rng.choice([100, 1000]) if n % 2 == 0 else None,
            )
        )
    return specs


def percentile_cont(values: Sequence[float | None], fraction: float) -> float | None:
    """PostgreSQL's percentile_cont, NULLs left out."""
    ordered = sorted(v for v in values if v is not None)
    if not ordered:
        return None
    rank = fraction * (len(ordered) - 1)
    low = math.floor(rank)
    if math.ceil(rank) == low:
        return ordered[low]
    return ordered[low] + (ordered[low + 1] - ordered[low]) * (rank - low)


def _throughput(spec: Spec, days_ago: float) -> ThroughputTest:
    return ThroughputTest(
        path=spec.path,  # type: ignore[arg-type]
        server="x",
        download_bps=spec.mbps * 1e6,
        latency_ms=spec.idle_ms,
        loaded_latency_ms=spec.loaded_ms,
        responsiveness_rpm=spec.rpm,
        agent_limited=spec.limited,
        agent_link_mbps=spec.link_mbps,
        measured_at=NOW - timedelta(days=days_ago),
    )


def _left_out() -> list[AnyMeasurement]:
    """None of these count: before the window, failed, no download, not a test."""
    return [
        ThroughputTest(path="onnet", server="x", download_bps=1e6, measured_at=NOW - timedelta(31)),
        ThroughputTest(path="onnet", server="x", download_bps=2e6, error="server refused"),
        ThroughputTest(path="internet", server="x", agent_limited=True, measured_at=NOW),
        SnmpPoll(device="core", address="127.0.0.1:161", measured_at=NOW),
    ]


def _classroom(days_ago: float) -> list[AnyMeasurement]:
    return [
        ThroughputTest(
            path="classroom",
            server="x",
            room=room,
            download_bps=down * 1e6,
            upload_bps=None if up is None else up * 1e6,
            measured_at=NOW - timedelta(days=days_ago + n),
        )
        for n, (room, down, up) in enumerate(CLASSROOM)
    ]


Windows = tuple[dict[str, SchoolWindow], dict[str, list[RoomWindow]], dict[str, SchoolWindow]]


def _windows(database_url: str) -> Windows:
    """Every school's windows (with latency medians) and rooms by name, and the even school's
    asked for alone, without them."""
    upgrade_to_head(database_url)
    engine = make_engine(database_url)
    ids: dict[str, int] = {}
    try:
        with make_session_factory(engine)() as session:
            for name in DOWNLOADS:
                school = create_school(session=session, name=name, students=100, staff=10)
                agent, _ = enroll_agent(session=session, school_id=school.id, name=f"pi-{name}")
                ids[name] = school.id
                tests = [_throughput(s, days_ago=1 + n) for n, s in enumerate(_specs(name))]
                batch = Batch(measurements=[*tests, *_left_out()])
                add_batch(session=session, agent_id=agent.id, school_id=school.id, batch=batch)
                add_batch(
                    session=session,
                    agent_id=None,
                    school_id=school.id,
                    batch=Batch(measurements=_classroom(days_ago=2)),
                )
            create_school(session=session, name="empty", students=1, staff=1)
            windows = school_windows(session=session, start=START, latency=True)
            rooms = room_windows(session=session, start=START, school_ids=list(ids.values()))
            some = school_windows(session=session, start=START, school_ids=[ids["even"]])
    finally:
        engine.dispose()
    names = {school_id: name for name, school_id in ids.items()}
    return (
        {names[i]: w for i, w in windows.items()},
        {names[i]: r for i, r in rooms.items()},
        {names[i]: w for i, w in some.items()},
    )


def test_windows_agree_with_percentile_cont(database_url: str) -> None:
    windows, rooms, some = _windows(database_url)
    assert set(windows) == set(DOWNLOADS)  # "empty" has none
    # Without `latency` (the board), the same but the latency medians.
    assert some == {
        "even": replace(
            windows["even"],
            median_idle_latency_ms=None,
            median_loaded_latency_ms=None,
            median_responsiveness_rpm=None,
        )
    }
    for name, downloads in DOWNLOADS.items():
        specs = _specs(name)
        window = windows[name]
        assert window.tests == len(downloads), name
        median = percentile_cont([d * 1e6 for d in downloads], 0.5)
        assert window.median_download_bps == median, name
        assert median == pytest.approx(statistics.median(d * 1e6 for d in downloads), rel=1e-15)
        assert window.p90_download_bps == percentile_cont([d * 1e6 for d in downloads], 0.9)
        paired = [s for s in specs if s.loaded_ms is not None and s.idle_ms is not None]
        assert window.median_idle_latency_ms == percentile_cont([s.idle_ms for s in paired], 0.5)
        assert window.median_loaded_latency_ms == percentile_cont(
            [s.loaded_ms for s in paired], 0.5
        )
        assert window.median_responsiveness_rpm == percentile_cont([s.rpm for s in specs], 0.5)
        limited = [s for s in specs if s.limited]
        assert window.agent_limited_tests == len(limited), name
        links = [s.link_mbps for s in limited if s.link_mbps is not None]
        assert window.limited_link_mbps == (min(links), max(links)), name
        assert window.oldest == NOW - timedelta(days=len(downloads)), name
        assert window.paths == tuple(sorted({s.path for s in specs})), name
        assert [(r.room, r.tests) for r in rooms[name]] == [("Library", 1), ("Room 12", 2)]
        library, room_12 = rooms[name]
        assert (library.median_download_bps, library.median_upload_bps) == (9e9, 80e6)
        assert (room_12.median_download_bps, room_12.median_upload_bps) == (6e9, 40e6)
        assert room_12.newest == NOW - timedelta(days=2)


@pytest.mark.postgres
def test_both_backends_give_the_same_windows(tmp_path: Path) -> None:
    on_sqlite = _windows(f"sqlite:///{tmp_path / 'windows.db'}")
    with throwaway_postgres() as url:
        on_postgres = _windows(url)
    assert on_sqlite == on_postgres
