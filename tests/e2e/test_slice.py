"""The thin slice end to end, through the real commands: no mocks, loopback only.

readynet-collector migrate / school add / agent enroll / serve   (a real uvicorn process)
readynet-agent once  x10   (on-net test against the collector + SNMP poll of snmpsim)
→ POST /api/v1/results → database → /api/v1/schools/{id}/readiness → /metrics (a user's token)
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import func, select

from collector.localrun import free_port, wait_for_http
from collector.store.db import make_engine, make_session_factory
from collector.store.interface_rows import unpack_interfaces
from collector.store.models import Measurement, PollInterfaces, SnmpPollResult, ThroughputResult
from tests.fixtures.commands import run_ok
from tests.fixtures.metrics import fresh_samples
from tests.fixtures.snmpsim import SnmpSim

BIN = Path(sys.executable).parent


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """`readynet-collector serve` as its own process, after `migrate`."""
    env = {
        **os.environ,
        "READYNET_COLLECTOR_DATABASE_URL": database_url,
        # Loopback moves gigabits: ten tests would spend a school's speed-test budget.
        "READYNET_COLLECTOR_SPEEDTEST_DOWNLOAD_BUDGET_BYTES": "10000000000000",
        "READYNET_COLLECTOR_SPEEDTEST_UPLOAD_BUDGET_BYTES": "10000000000000",
        "READYNET_COLLECTOR_READINESS_REFRESH_S": "0.2",
    }
    run_ok(str(BIN / "readynet-collector"), "migrate", env=env)
    port = free_port()
    log = (tmp_path / "collector.log").open("w")
    proc = subprocess.Popen(
        [BIN / "readynet-collector", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    ready = wait_for_http(proc, f"{url}/healthz", timeout_s=30)
    assert ready, (tmp_path / "collector.log").read_text()
    yield url, env
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


def test_agent_to_verdict_and_metric(
    served: tuple[str, dict[str, str]], snmpsim: SnmpSim, tmp_path: Path
) -> None:
    url, env = served
    collector = str(BIN / "readynet-collector")
    school_id = int(
        run_ok(
            collector,
            "school",
            "add",
            "--name",
            "Lincoln Elementary",
            "--students",
            "450",
            "--staff",
            "50",
            env=env,
        )
    )
    token = run_ok(collector, "agent", "add", "--school", str(school_id), "--name", "pi-1", env=env)
    config = tmp_path / "agent.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "collector_url": url,
                "token": token.strip(),
                "state_dir": str(tmp_path / "agent-state"),
                "onnet": {"duration_s": 1.0, "warmup_s": 0.3, "request_bytes": 4_000_000},
                "latency": {"probes": 5, "interval_s": 0.02},
                "devices": [
                    {
                        "name": "core-router",
                        "address": snmpsim.host,
                        "port": snmpsim.port,
                        "auth": {"community": "iosxe"},
                    },
                ],
            }
        )
    )

    # District IT reads through a user's token, made as an operator would.
    run_ok(collector, "user", "add", "--name", "it@district.example", "--role", "viewer", env=env)
    reader = run_ok(
        collector, "token", "create", "--user", "it@district.example", "--name", "slice", env=env
    ).strip()
    auth = {"Authorization": f"Bearer {reader}"}

    agent = [str(BIN / "readynet-agent"), "once", "--config", str(config)]
    for _ in range(9):
        out = run_ok(*agent, env=env)
        assert "delivered: 3 new, 0 already stored, 0 waiting" in out
    readiness = httpx.get(f"{url}/api/v1/schools/{school_id}/readiness", headers=auth).json()
    assert readiness["tests"] == 9
    assert {t["verdict"] for t in readiness["targets"]} == {"inconclusive"}
    assert readiness["targets"][0]["reason"].startswith("only 9 of the 10 tests needed")

    run_ok(*agent, env=env)
    readiness = httpx.get(f"{url}/api/v1/schools/{school_id}/readiness", headers=auth).json()
    assert (readiness["users"], readiness["tests"], readiness["paths"]) == (500, 10, ["onnet"])
    assert readiness["basis"] == "measured throughput, not contracted capacity"
    internet_2014, internet_2017 = readiness["targets"]
    assert (internet_2014["required_mbps"], internet_2017["required_mbps"]) == (50.0, 500.0)
    for target in readiness["targets"]:
        expected = "meets" if target["measured_mbps"] >= target["required_mbps"] else "below"
        assert target["verdict"] == expected
    # Loopback moves far more than 50 Mbps: the 2014-15 target must be met.
    assert internet_2014["verdict"] == "meets"

    engine = make_engine(env["READYNET_COLLECTOR_DATABASE_URL"])
    with make_session_factory(engine)() as session:
        # Each round: a latency test, an on-net test and a poll.
        assert session.scalar(select(func.count()).select_from(Measurement)) == 30
        assert session.scalar(select(func.count()).select_from(ThroughputResult)) == 10
        assert session.scalar(select(func.count()).select_from(SnmpPollResult)) == 10
        # iosxe Gi0/0/1 (ifIndex 2), straight from the recording.
        octets = [
            i.octets_in
            for rows in session.scalars(select(PollInterfaces.rows))
            for i in unpack_interfaces(rows)
            if i.name == "Gi0/0/1"
        ]
        assert octets == [19432396613] * 10
    engine.dispose()

    samples = fresh_samples(url, token=reader)
    labels = {"school": "Lincoln Elementary", "profile": "setda-2012", "target": "internet-2014-15"}
    assert (
        samples[("readynet_school_readiness", frozenset({**labels, "verdict": "meets"}.items()))]
        == 1
    )
    assert (
        samples[
            (
                "readynet_school_window_tests",
                frozenset({("school", "Lincoln Elementary")}),
            )
        ]
        == 10
    )
    iface = {
        "school": "Lincoln Elementary",
        "device": "core-router",
        "ifindex": "2",
        "ifname": "Gi0/0/1",
    }
    assert (
        samples[("readynet_interface_received_bytes_total", frozenset(iface.items()))]
        == 19432396613
    )
    assert samples[("readynet_interface_speed_bits_per_second", frozenset(iface.items()))] == 100e6
