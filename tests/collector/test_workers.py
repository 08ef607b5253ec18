"""`readynet-collector serve --workers 2` on PostgreSQL: two processes share the port, a
killed worker comes back, results posted meanwhile are stored, SIGTERM stops everything."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from agent.wire import Batch, LatencyTest
from collector.localrun import free_port, wait_for_http
from collector.store.db import make_engine, make_session_factory
from collector.store.migrate import upgrade_to_head
from collector.store.models import Measurement
from collector.store.queries import create_school, enroll_agent


def _listeners(port: int) -> set[int]:
    """The pids listening on 127.0.0.1:`port`."""
    out = subprocess.run(
        ["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    return {int(pid) for pid in re.findall(r"pid=(\d+)", out)}


def _until(condition: object, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


@pytest.mark.postgres
def test_two_workers_share_the_port_and_survive_a_kill(postgres_url: str, tmp_path: Path) -> None:
    upgrade_to_head(postgres_url)
    engine = make_engine(postgres_url)
    with make_session_factory(engine)() as session:
        school = create_school(session=session, name="Lincoln", students=450, staff=50)
        _, token = enroll_agent(session=session, school_id=school.id, name="pi-1")
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    parent = subprocess.Popen(
        [sys.executable, "-m", "collector", "serve", "--workers", "2", "--port", str(port)],
        env={**os.environ, "READYNET_COLLECTOR_DATABASE_URL": postgres_url},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        assert wait_for_http(parent, f"http://127.0.0.1:{port}/healthz", timeout_s=60)
        assert _until(lambda: len(_listeners(port)) == 2, 30), _listeners(port)
        first = _listeners(port)

        def post(_: int) -> int:
            batch = Batch(
                measurements=[
                    LatencyTest(target="127.0.0.1:1", method="http", answered=1, lost=0)
                    for _ in range(10)
                ]
            )
            for _ in range(50):  # a worker being replaced may refuse a connection briefly
                try:
                    return httpx.post(
                        f"http://127.0.0.1:{port}/api/v1/results",
                        content=batch.model_dump_json(),
                        headers={"Authorization": f"Bearer {token}"},
                        timeout=30,
                    ).status_code
                except httpx.TransportError:
                    time.sleep(0.1)
            return 0

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(post, range(40))) == {200}
            victim = min(first)
            os.kill(victim, signal.SIGKILL)
            assert set(pool.map(post, range(40))) == {200}
        assert _until(lambda: len(_listeners(port)) == 2 and victim not in _listeners(port), 30)
        with make_session_factory(engine)() as session:
            assert session.scalar(select(func.count()).select_from(Measurement)) == 800
    finally:
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=40) == 0
        log.close()
        engine.dispose()
    assert _listeners(port) == set()
    assert "exited with -9; starting it again" in (tmp_path / "serve.log").read_text()


def test_more_than_one_worker_needs_postgres(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "collector", "serve", "--workers", "2", "--port", "0"],
        env={**os.environ, "READYNET_COLLECTOR_DATABASE_URL": f"sqlite:///{tmp_path}/c.db"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr == (
        "error: workers: more than one needs PostgreSQL (READYNET_COLLECTOR_DATABASE_URL)\n"
    )
