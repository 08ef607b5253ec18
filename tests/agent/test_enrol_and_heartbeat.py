"""The agent's side of its life, against a real collector on loopback: `readynet-agent enroll`,
the daemon's heartbeat and status, remote config applied without a restart (and a bad one
refused), the first round after install, `check-config` and `rotate-token`."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from agent.daemon import AgentDaemon
from agent.enrol_cli import update_config
from agent.settings import AgentSettings
from collector.store.agents import revoke_agent, set_agent_config
from collector.store.models import ThroughputResult
from tests.fixtures.collector import LOOPBACK_BUDGETS, RunningCollector, StartCollector
from tests.fixtures.snmpsim import SnmpSim


@pytest.fixture
def collector(start_collector: StartCollector) -> RunningCollector:
    return start_collector(agent_token_cache_s=0, **LOOPBACK_BUDGETS)


def _agent(
    *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *(str(a) for a in args)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


CONFIG = """\
# ReadyNet agent at Lincoln Elementary
collector_url: "http://127.0.0.1:1"
token: changeme   # replaced by enroll
state_dir: {state}
onnet:
  duration_s: 0.6
  warmup_s: 0.2
  sample_interval_s: 0.1
internet: {{enabled: false}}
"""


def test_enroll_writes_the_token_and_the_config(
    collector: RunningCollector, tmp_path: Path
) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text(CONFIG.format(state=tmp_path / "state"))
    code = collector.enrolment_code(collector.add_school(), name="pi-lincoln")

    done = _agent("enroll", "--collector", collector.url, "--code", code, "--config", config)
    assert done.returncode == 0, done.stderr
    token_file = tmp_path / "agent.token"
    assert done.stdout.strip() == (
        "enrolled as agent 'pi-lincoln' (id 1) of school 1 (Lincoln Elementary); "
        f"token in {token_file}"
    )
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    text = config.read_text()
    # Comments and every other setting stay; the placeholder token goes.
    assert text.startswith("# ReadyNet agent at Lincoln Elementary\n")
    assert f'collector_url: "{collector.url}"' in text
    assert f'token_file: "{token_file}"' in text
    assert "changeme" not in text and "duration_s: 0.6" in text
    checked = _agent("check-config", "--config", config)
    assert checked.returncode == 0, checked.stderr
    assert f"token       from {token_file}" in checked.stdout

    # The same code again: refused, with the collector's reason, and nothing changed.
    before = token_file.read_text()
    again = _agent("enroll", "--collector", collector.url, "--code", code, "--config", config)
    assert again.returncode == 1
    assert again.stderr.startswith("error: the collector refused the code: HTTP 403: enrolment")
    assert "already used" in again.stderr
    assert token_file.read_text() == before


def test_enroll_creates_a_missing_config(collector: RunningCollector, tmp_path: Path) -> None:
    config = tmp_path / "etc" / "agent.yaml"
    code = collector.enrolment_code(collector.add_school())
    done = _agent("enroll", "--collector", collector.url, "--code", code, "--config", config)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert "token_file" in config.read_text()


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["--collector", "ftp://x"], 2, "--collector must start with https://"),
        (
            ["--collector", "http://collector.district.example"],
            2,
            "would send the token in clear text: use https://, or set --allow-insecure-http",
        ),
        (
            ["--collector", "http://127.0.0.1:1"],
            1,
            "cannot reach the collector at http://127.0.0.1:1",
        ),
    ],
)
def test_enroll_refusals(tmp_path: Path, args: list[str], status: int, message: str) -> None:
    done = _agent("enroll", *args, "--code", "7KX4-M2QD-R8TW-3HNP", "--config", tmp_path / "a.yaml")
    assert done.returncode == status
    assert message in done.stderr
    assert not (tmp_path / "agent.token").exists()


def test_update_config_replaces_a_block_value(tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text("token:\n  abc\n# keep me\nbatch_size: 5\n")
    update_config(config, {"token_file": "/etc/readynet/agent.token"}, remove=("token",))
    assert config.read_text() == (
        '# keep me\nbatch_size: 5\ntoken_file: "/etc/readynet/agent.token"\n'
    )


def test_check_config_says_what_is_wrong(tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text('collector_url: "http://collector.district.example"\ntoken: abc\n')
    done = _agent("check-config", "--config", config)
    assert done.returncode == 1
    assert (
        "collector_url: http:// to collector.district.example would send the token" in done.stderr
    )
    config.write_text(
        f'collector_url: "http://127.0.0.1:1"\ntoken: s3cret-t0ken\nstate_dir: {tmp_path}\n'
    )
    config.chmod(0o644)
    done = _agent("check-config", "--config", config)
    assert done.returncode == 0
    assert f"warning: {config} holds secrets and is readable by others (mode 644)" in done.stderr
    assert "s3cret-t0ken" not in done.stdout + done.stderr


# --- the daemon ---------------------------------------------------------------------------------


def _settings(collector: RunningCollector, token: str, state: Path, **extra: Any) -> AgentSettings:
    fields: dict[str, Any] = {
        "collector_url": collector.url,
        "token": token,
        "state_dir": state,
        "onnet": {"duration_s": 0.6, "warmup_s": 0.2, "sample_interval_s": 0.1, "idle_pings": 2},
        "internet": {"enabled": False},
        "latency": {"probes": 2, "interval_s": 0.01},
        "heartbeat_interval_s": 5,
        "first_round_s": None,
    }
    fields.update(extra)
    return AgentSettings.model_validate(fields)


@asynccontextmanager
async def _daemon(settings: AgentSettings) -> AsyncIterator[AgentDaemon]:
    daemon = AgentDaemon(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(stop))
    try:
        yield daemon
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def _until(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.05)
    return condition()


def _listed(collector: RunningCollector) -> dict[str, dict[str, Any]]:
    return {
        a["name"]: a
        for a in httpx.get(f"{collector.url}/api/v1/agents", headers=collector.reader).json()
    }


async def test_heartbeat_status_and_remote_config(
    collector: RunningCollector, snmpsim: SnmpSim, tmp_path: Path
) -> None:
    token = collector.enroll(collector.add_school(), name="pi-1")
    state = tmp_path / "state"
    assert _listed(collector)["pi-1"]["status"] == "never_seen"
    async with _daemon(_settings(collector, token, state)) as daemon:
        # The first heartbeat goes at start.
        assert await _until(lambda: _listed(collector)["pi-1"]["status"] == "ok", 10)
        listed = _listed(collector)["pi-1"]
        assert listed["version"] and listed["outbox_pending"] == 0
        assert abs(listed["clock_offset_s"]) < 5
        assert await _until(lambda: daemon.status.last_heartbeat_at is not None, 5)

        # District IT gives the agent a device from the collector: applied without a restart.
        device = snmpsim.device("iosxe", name="router").model_dump(
            mode="json", context={"reveal": True}, exclude_defaults=True
        )
        with collector.sessions() as session:
            etag = set_agent_config(
                session=session,
                name="pi-1",
                config={"devices": [device], "schedule": {"blackout_dates": ["2027-04-13"]}},
            )
        assert await _until(lambda: daemon.status.config_etag == etag, 15)
        assert [d.name for d in daemon.settings.devices] == ["router"]
        assert str(daemon.policy.settings.blackout_dates[0]) == "2027-04-13"
        saved = json.loads((state / "remote-config.json").read_text())
        assert saved["etag"] == etag
        assert stat.S_IMODE((state / "remote-config.json").stat().st_mode) == 0o600
        await daemon.poll_devices()
        assert daemon.status.last_poll_at is not None

        # A document this agent cannot use (a newer collector's key): refused, reported, and
        # the last good settings stay.
        with collector.sessions() as session:
            bad = set_agent_config(
                session=session, name="pi-1", config={"schedule": {"holidays": ["x"]}}
            )
        assert await _until(lambda: daemon.status.config_error is not None, 15)
        assert (
            f"settings {bad} refused: schedule.holidays: Extra inputs" in daemon.status.config_error
        )
        assert daemon.status.config_etag == etag
        assert [d.name for d in daemon.settings.devices] == ["router"]
        assert await _until(
            lambda: (_listed(collector)["pi-1"]["config_error"] or "").startswith(
                f"settings {bad} refused"
            ),
            15,
        )

    # `status` reads what the daemon wrote, from another process.
    config = tmp_path / "agent.yaml"
    config.write_text(f'collector_url: "{collector.url}"\ntoken: "{token}"\nstate_dir: "{state}"\n')
    shown = _agent("status", "--config", config, "--format", "json")
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert report["last_heartbeat_at"] is not None and report["last_poll_at"] is not None
    assert report["config_etag"] == etag
    assert report["outbox_pending"] >= 1

    # Restarted while the collector holds the bad document: the last good copy is used.
    again = AgentDaemon(_settings(collector, token, state))
    assert [d.name for d in again.settings.devices] == ["router"]
    again.policy.close()


async def test_a_revoked_agent_says_so_and_keeps_running(
    collector: RunningCollector, tmp_path: Path
) -> None:
    token = collector.enroll(collector.add_school(), name="pi-1")
    async with _daemon(_settings(collector, token, tmp_path / "state")) as daemon:
        assert await _until(lambda: daemon.status.last_heartbeat_at is not None, 10)
        with collector.sessions() as session:
            revoke_agent(session=session, name="pi-1")
        await daemon.heartbeat()
        error = daemon.status.last_heartbeat_error
        assert error is not None and "refused the agent's token" in error
        assert "enrol the agent again with a new code" in error
        assert token not in error


async def test_the_first_round_after_install_runs_at_once(
    collector: RunningCollector, tmp_path: Path
) -> None:
    token = collector.enroll(collector.add_school(), name="pi-1")
    now = datetime.now(UTC)
    # A school day that is hours away: only the first round may run now. Between 20:00 and
    # 21:00 UTC three hours on is 23:00-00:00, which ends before it starts: take an hour of
    # the afternoon, four hours back, instead.
    later = now + timedelta(hours=3)
    if later.hour == 23:
        later = now - timedelta(hours=4)
    schedule = {
        "school_day": {
            "timezone": "UTC",
            "weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
            "start": f"{later:%H}:00",
            "end": f"{(later + timedelta(hours=1)):%H}:00",
        }
    }
    settings = _settings(
        collector,
        token,
        tmp_path / "state",
        first_round_s=0.5,
        schedule=schedule,
        delivery_interval_s=1,
    )

    def stored() -> int:
        with collector.sessions() as session:
            return len(session.scalars(select(ThroughputResult)).all())

    async with _daemon(settings) as daemon:
        assert await _until(lambda: stored() >= 1, 30)
        assert daemon.status.first_round_at is not None
        assert daemon.status.last_test_at is not None
        job = daemon.scheduler.get_job("round")
        assert job is not None and job.next_run_time > datetime.now(UTC) + timedelta(hours=1)
    # Started again, it waits for the school day.
    again = AgentDaemon(settings)
    assert again.first_round is False
    again.policy.close()


def test_rotate_token(collector: RunningCollector, tmp_path: Path) -> None:
    old = collector.enroll(collector.add_school(), name="pi-1")
    token_file = tmp_path / "agent.token"
    token_file.write_text(old + "\n")
    token_file.chmod(0o600)
    config = tmp_path / "agent.yaml"
    config.write_text(
        f'collector_url: "{collector.url}"\ntoken_file: "{token_file}"\nstate_dir: "{tmp_path}"\n'
    )
    done = _agent("rotate-token", "--config", config)
    assert done.returncode == 0, done.stderr
    new = token_file.read_text().strip()
    assert new != old and stat.S_IMODE(token_file.stat().st_mode) == 0o600
    beat = {
        "agent_version": "0.1.0",
        "started_at": "2026-12-07T00:00:00Z",
        "sent_at": datetime.now(UTC).isoformat(),
    }
    post = lambda t: httpx.post(  # noqa: E731
        f"{collector.url}/api/v1/heartbeat", json=beat, headers={"Authorization": f"Bearer {t}"}
    )
    assert post(old).status_code == 200
    assert post(new).status_code == 200
    assert post(old).status_code == 401

    inline = tmp_path / "inline.yaml"
    inline.write_text(
        f'collector_url: "{collector.url}"\ntoken: "{new}"\nstate_dir: "{tmp_path}"\n'
    )
    refused = _agent("rotate-token", "--config", inline)
    assert refused.returncode == 1 and "move it to token_file first" in refused.stderr
