"""Result posts parsed and stored in helper processes (collector/api/store_processes.py).

A real uvicorn in a thread of this process serves HTTP; the store processes are real processes
of the fork server. They are killed for real (SIGKILL) while they store.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from agent.wire import Batch, InterfaceCounters, SnmpPoll, ThroughputTest
from bench._collector import process_cpu_seconds, process_tree, stat_fields
from collector.api import errors
from collector.api.group_commit import ThreadStore
from collector.api.store_processes import STORE_NICENESS, ProcessStore
from collector.localrun import free_port, wait_for_http
from collector.store.db import make_engine, make_session_factory
from collector.store.interface_rows import unpack_interfaces
from collector.store.migrate import upgrade_to_head
from collector.store.models import InterfaceRate, Measurement, PollInterfaces
from collector.store.queries import create_school, enroll_agent
from tests.fixtures.collector import RunningCollector, run_collector

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
# A store process counts as busy once its CPU time has moved by two clock ticks or more.
BUSY_S = 1.5 / os.sysconf("SC_CLK_TCK")


class Served:
    """A running collector with an agent of its own, and its store at hand."""

    def __init__(self, collector: RunningCollector) -> None:
        self.server = collector.server
        self.sessions = collector.sessions
        self.token = collector.enroll(collector.add_school())

    @property
    def app(self) -> FastAPI:
        assert isinstance(self.server.app, FastAPI)
        return self.server.app

    @property
    def store(self) -> ProcessStore:
        store = self.app.state.group_store
        assert isinstance(store, ProcessStore)
        return store

    def post(self, body: bytes | str, timeout_s: float = 60) -> httpx.Response:
        return httpx.post(
            f"{self.server.url}/api/v1/results",
            content=body,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            timeout=timeout_s,
        )

    def stored(self) -> int:
        with self.sessions() as session:
            return session.scalar(select(func.count()).select_from(Measurement)) or 0


@contextmanager
def served(database_url: str, **overrides: object) -> Iterator[Served]:
    with run_collector(database_url, **overrides) as collector:
        yield Served(collector)


def _polls(count: int, ports: int = 48, start: datetime | None = None) -> Batch:
    """`count` polls of one switch, five minutes apart, with an uplink on its last port."""
    first = start or datetime.now(UTC) - timedelta(minutes=5 * count + 1)
    return Batch(
        measurements=[
            SnmpPoll(
                device="access-1",
                address="127.0.0.1:161",
                sys_uptime_ticks=1_000_000 + 30_000 * n,
                measured_at=first + timedelta(minutes=5 * n),
                interfaces=[
                    InterfaceCounters(
                        ifindex=i,
                        name=f"Gi1/0/{i}",
                        octets_in=10**9 * n + i,
                        octets_out=2 * 10**9 * n + i,
                        counter_bits=64,
                        speed_mbps=1000,
                        role="internet" if i == ports else None,
                    )
                    for i in range(1, ports + 1)
                ],
            )
            for n in range(count)
        ]
    )


def _alive(pid: int) -> bool:
    # A killed child not yet reaped by its parent is a zombie: gone for our purposes.
    fields = stat_fields(pid)
    return fields is not None and fields[0] != "Z"


@pytest.mark.parametrize("backend", BACKENDS)
def test_posts_are_parsed_and_stored_by_store_processes(
    backend: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(f"{backend}_url")
    with served(url) as collector:
        assert collector.store.pids() == set()  # started on the first post, not before
        batch = _polls(3)
        answer = collector.post(batch.model_dump_json())
        assert answer.status_code == 200, answer.text
        assert answer.json()["accepted"] == [str(m.id) for m in batch.measurements]
        pids = collector.store.pids()
        assert pids and os.getpid() not in pids
        assert all(_alive(pid) for pid in pids)
        # They give way to the serving process when both want the CPU.
        own = os.getpriority(os.PRIO_PROCESS, 0)
        assert {os.getpriority(os.PRIO_PROCESS, pid) for pid in pids} == {own + STORE_NICENESS}
        with collector.sessions() as session:
            rows = session.scalars(select(PollInterfaces.rows)).all()
            rates = session.scalars(select(InterfaceRate.in_bps)).all()
        assert sorted(len(unpack_interfaces(r)) for r in rows) == [48, 48, 48]
        # The uplink's rate against the previous poll of the same batch: 1 GB in 300 s.
        assert sorted(r for r in rates if r is not None) == [pytest.approx(8e9 / 300)] * 2
    # Stopping the collector stops its store processes.
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in pids)


# When to kill: once a store process is busy with the batch (its CPU time moves), or, on
# SQLite, once one is writing it (the write-ahead log grows), holding the lock writers share.
KILL_WHEN = [
    ("sqlite", "parsing"),
    ("sqlite", "writing"),
    pytest.param("postgres", "parsing", marks=pytest.mark.postgres),
]


def test_healthz_answers_while_the_first_store_processes_start(sqlite_url: str) -> None:
    """The first post starts the fork server, which imports the store (about a second): that
    happens off the event loop, so /healthz answers meanwhile as it always does."""
    with served(sqlite_url) as collector, httpx.Client() as client:
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(collector.post, _polls(2).model_dump_json())
            slowest = 0.0
            while not first.done():
                started = time.perf_counter()
                assert client.get(f"{collector.server.url}/healthz").status_code == 200
                slowest = max(slowest, time.perf_counter() - started)
                time.sleep(0.01)
            assert first.result().status_code == 200
        assert collector.store.pids()
        assert slowest < 0.5, f"/healthz took {slowest:.2f} s while the store processes started"


@pytest.mark.parametrize(("backend", "moment"), KILL_WHEN)
def test_a_store_process_killed_mid_batch_answers_503_and_the_retry_stores_it_once(
    backend: str, moment: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(f"{backend}_url")
    wal = Path(url.removeprefix("sqlite:///") + "-wal")
    with served(url) as collector:
        assert collector.post(_polls(1).model_dump_json()).status_code == 200
        stored_before = collector.stored()
        killed = None
        for _attempt in range(10):
            batch = _polls(600, ports=96)
            body = batch.model_dump_json()
            pids = collector.store.pids()
            cpu_s = {pid: process_cpu_seconds(pid) for pid in pids}
            wal_before = wal.stat().st_size if moment == "writing" else 0

            with ThreadPoolExecutor(1) as pool:
                pending = pool.submit(collector.post, body)
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and not pending.done():
                    if moment == "writing":
                        at_work = wal.stat().st_size > wal_before
                    else:
                        at_work = any(process_cpu_seconds(p) > cpu_s[p] + BUSY_S for p in pids)
                    if at_work:
                        for pid in pids:
                            os.kill(pid, signal.SIGKILL)
                        break
                    time.sleep(0.001)
                answer = pending.result()
            if answer.status_code == 503:
                killed = answer
                break
            assert answer.status_code == 200, answer.text  # it won the race: try again
            stored_before = collector.stored()
        assert killed is not None, "never caught a store process at work"
        assert killed.json() == {"detail": errors.STORE_RESTARTED}
        assert killed.headers["Retry-After"] == str(errors.STORE_RETRY_AFTER_S)
        # Nothing of the lost group was committed, or all of it: never a part.
        assert collector.stored() in (stored_before, stored_before + 600)
        # The agent sends the same batch again: fresh store processes take it (a lock left held
        # by a killed writer would make this wait for ever), each id once.
        again = collector.post(body, timeout_s=30)
        assert again.status_code == 200, again.text
        answered = again.json()
        assert sorted(answered["accepted"] + answered["duplicates"]) == sorted(
            str(m.id) for m in batch.measurements
        )
        assert collector.stored() == stored_before + 600
        assert collector.store.pids().isdisjoint(pids)


def test_refusals_and_receipts_match_the_in_process_store(sqlite_url: str, tmp_path: Path) -> None:
    """The same posts answered alike whether parsed in store processes or in store threads."""
    test = ThroughputTest(path="onnet", server="http://127.0.0.1", download_bps=4e8)
    good = Batch(measurements=[test]).model_dump_json()
    posts = [
        good,
        good,  # a retry: a duplicate
        good.replace('"wire_version":2', '"wire_version":9'),
        good.replace('"download_bps":400000000.0', '"download_bps":-1'),
        good[:-5],  # truncated JSON
        '{"measurements": []}',
    ]
    answers = {}
    for processes, url in ((2, sqlite_url), (0, f"sqlite:///{tmp_path / 'threads.db'}")):
        with served(url, store_processes=processes) as collector:
            kind = type(collector.app.state.group_store)
            assert kind is (ProcessStore if processes else ThreadStore)
            answers[processes] = [
                (r.status_code, r.json()) for r in (collector.post(p) for p in posts)
            ]
    assert answers[2] == answers[0]
    assert [status for status, _ in answers[2]] == [200, 200, 422, 422, 400, 422]
    assert "accepts 1, 2" in answers[2][2][1]["errors"][0]["msg"]


def test_many_agents_posting_at_once_on_sqlite_are_all_stored(sqlite_url: str) -> None:
    """Two store processes on one SQLite file take turns to write: no post is lost to a busy
    database, and none waits in SQLite's busy handler for its whole timeout."""
    with served(sqlite_url) as collector:
        bodies = [_polls(20, ports=24).model_dump_json() for _ in range(40)]
        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(collector.post, bodies))
        assert [a.status_code for a in answers] == [200] * 40
        assert collector.stored() == 40 * 20
        assert len(collector.store.pids()) == 2


def test_store_processes_die_with_a_killed_server(sqlite_url: str, tmp_path: Path) -> None:
    """`kill -9` of `serve` leaves no store process (nor the fork server) behind, holding a
    database connection and waiting for work that never comes."""
    upgrade_to_head(sqlite_url)
    engine = make_engine(sqlite_url)
    with make_session_factory(engine)() as session:
        school = create_school(session=session, name="Lincoln", students=450, staff=50)
        _, token = enroll_agent(session=session, school_id=school.id, name="pi-1")
    engine.dispose()
    port = free_port()
    with (tmp_path / "serve.log").open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "collector", "serve", "--port", str(port)],
            env={**os.environ, "READYNET_COLLECTOR_DATABASE_URL": sqlite_url},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        assert wait_for_http(server, f"http://127.0.0.1:{port}/healthz", timeout_s=60)
        answer = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/results",
            content=_polls(2).model_dump_json(),
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        helpers = set(process_tree(server.pid)) - {server.pid}
        assert len(helpers) >= 2  # the fork server and at least one store process
    finally:
        server.kill()
        server.wait(timeout=10)
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in helpers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [pid for pid in helpers if _alive(pid)] == []
