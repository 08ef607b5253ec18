"""Periodic jobs once across replicas (the lease), and the history API over the rollups, on both
databases with real collectors."""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from agent.wire import Batch, InterfaceCounters, SnmpPoll, ThroughputTest
from collector.jobs import PeriodicJob, claim, new_holder
from collector.settings import CollectorSettings
from collector.store.db import make_engine, make_session_factory
from collector.store.migrate import upgrade_to_head
from collector.store.models import JobRun
from collector.store.people import Scope
from collector.store.rollups import floor_day, roll_up
from tests.fixtures.collector import RunningCollector, run_collector


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    upgrade_to_head(database_url)
    engine = make_engine(database_url)
    yield make_session_factory(engine)
    engine.dispose()


def test_of_two_runners_one_runs_once_per_period(sessions: sessionmaker[Session]) -> None:
    ran: list[str] = []

    def work(session: Session, keep_going: object) -> str:
        ran.append(threading.current_thread().name)
        time.sleep(0.2)  # long enough for the other runner to try meanwhile
        return "done"

    jobs = [PeriodicJob("test", work, sessions, interval_s=0.6) for _ in range(2)]
    outcomes: list[bool] = []

    def tick(job: PeriodicJob) -> None:
        outcomes.append(job.tick())

    for _ in range(2):
        threads = [threading.Thread(target=tick, args=(job,)) for job in jobs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # Both again at once, within the period: neither runs.
        assert not jobs[0].tick() and not jobs[1].tick()
        time.sleep(0.6)
    assert sorted(outcomes) == [False, False, True, True]
    assert len(ran) == 2
    with sessions() as session:
        runs = session.scalars(select(JobRun).order_by(JobRun.id)).all()
        assert [r.outcome for r in runs] == ["done", "done"]
        assert all(r.finished_at is not None for r in runs)


_DIE_HOLDING_THE_LEASE = """
import os, sys
from collector.jobs import claim
from collector.store.db import make_engine, make_session_factory
engine = make_engine(sys.argv[1])
with make_session_factory(engine)() as session:
    assert claim(session=session, name="test", holder="doomed", lease_s=1.5)
print("claimed", flush=True)
os.kill(os.getpid(), 9)  # dies mid-run: the lease is never released
"""


def test_the_lease_expires_when_its_holder_dies(
    database_url: str, sessions: sessionmaker[Session]
) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", _DIE_HOLDING_THE_LEASE, database_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert dead.returncode == -9 and "claimed" in dead.stdout, dead.stderr
    other = new_holder()
    with sessions() as session:
        assert not claim(session=session, name="test", holder=other, lease_s=10)
        deadline = time.monotonic() + 10
        while not claim(session=session, name="test", holder=other, lease_s=10):
            assert time.monotonic() < deadline
            time.sleep(0.1)


def test_two_collectors_on_one_database_run_the_job_once_per_period(database_url: str) -> None:
    period = 0.5
    with run_collector(database_url, rollup_interval_s=period) as first:
        with run_collector(database_url, rollup_interval_s=period):
            time.sleep(4.0)
        with first.sessions() as session:
            runs = session.scalars(select(JobRun).order_by(JobRun.started_at)).all()
    # Once per period across both (the first collector had the job alone for a moment).
    assert 6 <= len(runs) <= 4.0 / period + 4, [(r.holder, r.started_at) for r in runs]
    for earlier, later in itertools.pairwise(runs):
        assert earlier.finished_at is not None and earlier.finished_at <= later.started_at
        assert later.started_at - earlier.started_at >= timedelta(seconds=period * 0.99)
    assert all(r.outcome and r.outcome.endswith("raw results deleted") for r in runs)


def test_a_window_longer_than_the_retention_is_refused() -> None:
    with pytest.raises(ValueError, match="shorter than readiness_window_days \\(30\\)"):
        CollectorSettings(readiness_window_days=30, raw_retention_days=20)
    assert CollectorSettings(readiness_window_days=900, raw_retention_days=0)
    serve = subprocess.run(
        [sys.executable, "-m", "collector", "serve", "--port", "0"],
        env={
            "READYNET_COLLECTOR_READINESS_WINDOW_DAYS": "500",
            "READYNET_COLLECTOR_DATABASE_URL": "sqlite:///unused.db",
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert serve.returncode != 0
    assert (
        "READYNET_COLLECTOR_RAW_RETENTION_DAYS: shorter than readiness_window_days (500)"
        in serve.stderr
    )


def _history_data(collector: RunningCollector, token: str) -> datetime:
    day = floor_day(datetime.now(UTC)) - timedelta(days=1)
    tests = [
        ThroughputTest(
            path="onnet" if h % 2 else "internet",
            server="http://127.0.0.1:8080",
            download_bps=(100 + h) * 1e6,
            upload_bps=50e6,
            latency_ms=5.0,
            loaded_latency_ms=50.0,
            measured_at=day + timedelta(hours=h, minutes=10),
        )
        for h in range(12)
    ]
    polls = [
        SnmpPoll(
            device="edge",
            address="127.0.0.1:161",
            sys_uptime_ticks=1000 + k * 30_000,
            measured_at=day + timedelta(minutes=5 * k),
            interfaces=[
                InterfaceCounters(
                    ifindex=1,
                    name="Gi0/0/0",
                    octets_in=k * 375_000_000,  # 10 Mbit/s
                    octets_out=0,
                    counter_bits=64,
                    speed_mbps=100,
                    role="internet",
                )
            ],
        )
        for k in range(4)
    ]
    answer = httpx.post(
        f"{collector.url}/api/v1/results",
        content=Batch(measurements=[*tests, *polls]).model_dump_json(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert answer.status_code == 200, answer.text
    with collector.sessions() as session:
        roll_up(session=session, now=datetime.now(UTC), retention_days=0)
    return day


def test_history_api(collector_any_db: RunningCollector) -> None:
    collector = collector_any_db
    school = collector.add_school()
    other = collector.add_school("Washington High")
    day = _history_data(collector, collector.enroll(school))
    url = f"{collector.url}/api/v1/schools/{school}"
    since = {"since": (day - timedelta(days=1)).isoformat()}
    daily = httpx.get(f"{url}/history", params=since, headers=collector.reader)
    assert daily.status_code == 200, daily.text
    body = daily.json()
    assert body["period"] == "day"
    assert [(r["path"], r["tests"]) for r in body["rows"]] == [("internet", 6), ("onnet", 6)]
    assert body["rows"][1]["min_download_mbps"] == pytest.approx(101)
    assert body["rows"][1]["median_loaded_latency_ms"] == pytest.approx(50, rel=0.02)
    summary = body["summary"]
    assert summary["tests"] == 12
    assert summary["median_download_mbps"] == pytest.approx(105.5, rel=summary["relative_error"])
    hourly = httpx.get(
        f"{url}/history",
        params={**since, "period": "hour", "path": "onnet"},
        headers=collector.reader,
    ).json()
    assert [r["tests"] for r in hourly["rows"]] == [1] * 6
    assert hourly["rows"][0]["start"].startswith((day + timedelta(hours=1)).strftime("%Y-%m-%dT%H"))
    uplinks = httpx.get(f"{url}/uplinks/history", params=since, headers=collector.reader).json()
    [uplink] = uplinks["rows"]
    assert (uplink["device"], uplink["ifname"], uplink["role"], uplink["rates"]) == (
        "edge",
        "Gi0/0/0",
        "internet",
        3,
    )
    assert uplink["max_mbps"] == pytest.approx(10)
    assert uplink["p95_utilisation"] == pytest.approx(0.1, rel=0.02)
    # Who may ask: a token, and a scope holding the school.
    assert httpx.get(f"{url}/history").status_code == 401
    outsider = collector.user_token("viewer", Scope.school(other))
    for path in ("history", "uplinks/history"):
        answer = httpx.get(f"{url}/{path}", headers={"Authorization": f"Bearer {outsider}"})
        assert answer.status_code == 404 and answer.json()["detail"] == "unknown school"
    missing = httpx.get(f"{collector.url}/api/v1/schools/9999/history", headers=collector.reader)
    assert missing.status_code == 404
    # A range longer than the period allows is cut to its newest part.
    until = datetime.now(UTC).replace(microsecond=0)
    cut = httpx.get(
        f"{url}/history",
        params={
            "period": "hour",
            "since": (until - timedelta(days=40)).isoformat(),
            "until": until.isoformat(),
        },
        headers=collector.reader,
    ).json()
    assert datetime.fromisoformat(cut["since"]) == until - timedelta(days=31)
    for since in ("2026-01-01T00:00:00", "0.5"):  # no offset; a number
        answer = httpx.get(f"{url}/history", params={"since": since}, headers=collector.reader)
        assert answer.status_code == 422
