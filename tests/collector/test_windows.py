"""Readiness windows from the store: the same medians, counts and paths on both backends.

PostgreSQL takes the median with `percentile_cont`, SQLite with window functions; both must
agree with `statistics.median` for odd and even counts, ties and a single test, and leave out
failed tests, tests without a download and tests from before the window.
"""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta

from agent.wire import Batch, SnmpPoll, ThroughputTest
from collector.store.db import make_engine, make_session_factory
from collector.store.ingest import add_batch
from collector.store.migrate import upgrade_to_head
from collector.store.queries import create_school, enroll_agent
from collector.store.windows import school_windows

NOW = datetime.now(UTC).replace(microsecond=0)
START = NOW - timedelta(days=30)

# Downloads (Mbit/s) of each school's successful tests inside the window.
DOWNLOADS = {
    "odd": [300.0, 100.0, 200.0],
    "even": [400.0, 100.0, 250.5, 300.0],
    "ties": [50.0, 50.0, 50.0, 900.0],
    "single": [75.25],
}


def _test(mbps: float | None, *, days_ago: float = 1, error: str | None = None) -> ThroughputTest:
    return ThroughputTest(
        path="internet" if mbps == 100.0 else "onnet",
        server="x",
        download_bps=None if mbps is None else mbps * 1e6,
        measured_at=NOW - timedelta(days=days_ago),
        error=error,
    )


def test_windows_agree_with_statistics_median(database_url: str) -> None:
    upgrade_to_head(database_url)
    engine = make_engine(database_url)
    ids: dict[str, int] = {}
    try:
        with make_session_factory(engine)() as session:
            for name, downloads in DOWNLOADS.items():
                school = create_school(session=session, name=name, students=100, staff=10)
                agent, _ = enroll_agent(session=session, school_id=school.id, name=f"pi-{name}")
                ids[name] = school.id
                measurements: list[ThroughputTest | SnmpPoll] = [
                    _test(mbps, days_ago=1 + n) for n, mbps in enumerate(downloads)
                ]
                # None of these count: before the window, failed, no download, not a test.
                measurements += [
                    _test(1.0, days_ago=31),
                    _test(2.0, error="server refused"),
                    _test(None),
                    SnmpPoll(device="core", address="127.0.0.1:161", measured_at=NOW),
                ]
                add_batch(
                    session=session,
                    agent_id=agent.id,
                    school_id=school.id,
                    batch=Batch(measurements=measurements),
                )
            empty = create_school(session=session, name="empty", students=1, staff=1)
            windows = school_windows(session=session, start=START)
            some = school_windows(session=session, start=START, school_ids=[ids["even"]])
    finally:
        engine.dispose()

    assert empty.id not in windows
    assert set(windows) == set(ids.values())
    assert set(some) == {ids["even"]}
    for name, downloads in DOWNLOADS.items():
        window = windows[ids[name]]
        assert window.tests == len(downloads), name
        assert window.median_download_bps == statistics.median(d * 1e6 for d in downloads), name
        assert window.oldest == NOW - timedelta(days=len(downloads)), name
        expected_paths = {"internet" if d == 100.0 else "onnet" for d in downloads}
        assert window.paths == tuple(sorted(expected_paths)), name
    assert some[ids["even"]] == windows[ids["even"]]
