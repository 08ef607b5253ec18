"""An agent's life at the collector, over real HTTP on both databases: enrolment codes, tokens
revoked and rotated, heartbeats and the agent list, the remote config with its ETag."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from agent.control import Heartbeat, OutboxFigures
from agent.wire import Batch, LatencyTest
from collector.api.errors import AGENT_REVOKED, BAD_TOKEN, ENROLMENT_REFUSED
from collector.store.agents import (
    agent_statuses,
    issue_enrolment_code,
    revoke_agent,
    set_agent_config,
)
from collector.store.models import Agent, AgentHeartbeat
from tests.fixtures.collector import RunningCollector, run_collector

NOW = datetime.now(UTC)


@pytest.fixture
def lively(database_url: str) -> Any:
    # Tokens looked up again at once: a revocation from another process shows immediately.
    with run_collector(database_url, agent_token_cache_s=0) as running:
        yield running


def _enrol(collector: RunningCollector, code: str, hostname: str = "pi-lincoln") -> httpx.Response:
    body = {"code": code, "hostname": hostname, "agent_version": "0.1.0"}
    return httpx.post(f"{collector.url}/api/v1/enrol", json=body)


def _beat(
    collector: RunningCollector, token: str, *, sent_at: datetime | None = None, **extra: Any
) -> httpx.Response:
    beat = Heartbeat(
        agent_version="0.1.0",
        started_at=NOW - timedelta(hours=1),
        sent_at=sent_at or datetime.now(UTC),
        outbox=OutboxFigures(pending=3, dead_letters=1),
        **extra,
    )
    return httpx.post(
        f"{collector.url}/api/v1/heartbeat",
        content=beat.model_dump_json(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )


def _post_result(collector: RunningCollector, token: str) -> httpx.Response:
    batch = Batch(
        measurements=[LatencyTest(target="127.0.0.1:1", method="http", answered=1, lost=0)]
    )
    return httpx.post(
        f"{collector.url}/api/v1/results",
        content=batch.model_dump_json(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )


def test_a_code_is_exchanged_once_for_a_working_token(lively: RunningCollector) -> None:
    school = lively.add_school()
    code = lively.enrolment_code(school, name="pi-lincoln")

    # Typed as a person would: lower case, spaces instead of dashes.
    answer = _enrol(lively, code.lower().replace("-", " "))
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["agent_name"] == "pi-lincoln"
    assert body["school_id"] == school
    assert body["school_name"] == "Lincoln Elementary"
    assert _post_result(lively, body["token"]).status_code == 200

    again = _enrol(lively, code)
    assert again.status_code == 403
    assert again.json()["detail"] == ENROLMENT_REFUSED
    assert "already used" in again.json()["errors"][0]["msg"]
    # Only digests are stored: neither the code nor the token is in the database.
    with lively.sessions() as session:
        rows = [*session.execute(text("SELECT * FROM enrolment_codes"))]
        rows += [*session.execute(text("SELECT * FROM agents"))]
    dump = "\n".join(str(row) for row in rows)
    assert code not in dump and body["token"] not in dump


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("7KX4-M2QD-R8TW-3HNP", "unknown enrolment code"),
        ("7KX4-M2QD", "not an enrolment code"),
        ("0000-0000-0000-0000", "not an enrolment code"),
    ],
)
def test_bad_codes_are_refused_with_the_reason(
    collector: RunningCollector, typed: str, reason: str
) -> None:
    answer = _enrol(collector, typed)
    assert answer.status_code == 403
    [problem] = answer.json()["errors"]
    assert problem["loc"] == ["code"]
    assert problem["msg"].startswith(reason)


def test_an_expired_code_is_refused(collector: RunningCollector) -> None:
    school = collector.add_school()
    with collector.sessions() as session:
        _, code = issue_enrolment_code(
            session=session, school_id=school, valid_for=timedelta(seconds=-1)
        )
    answer = _enrol(collector, code)
    assert answer.status_code == 403
    assert "expired" in answer.json()["errors"][0]["msg"]


@pytest.mark.parametrize(
    "body",
    [b"{", b"[]", b'{"code": 5}', b'{"code": "x", "extra": 1}', b'{"code": ""}'],
)
def test_malformed_enrolments_get_a_4xx(collector: RunningCollector, body: bytes) -> None:
    answer = httpx.post(
        f"{collector.url}/api/v1/enrol",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code in (400, 422)


def test_a_revoked_agent_is_told_so_and_comes_back_with_a_new_code(
    lively: RunningCollector,
) -> None:
    school = lively.add_school()
    token = _enrol(lively, lively.enrolment_code(school, name="pi-1")).json()["token"]
    assert _beat(lively, token).status_code == 200
    with lively.sessions() as session:
        revoke_agent(session=session, name="pi-1")

    refused = _post_result(lively, token)
    assert refused.status_code == 401
    assert refused.json()["detail"] == AGENT_REVOKED
    assert _beat(lively, token).status_code == 401

    with lively.sessions() as session:
        _, code = issue_enrolment_code(session=session, agent_name="pi-1")
        statuses = {
            s.name: s.status
            for s in agent_statuses(session=session, stale_after=timedelta(minutes=5))
        }
    assert statuses == {"pi-1": "revoked"}
    fresh = _enrol(lively, code).json()
    assert fresh["agent_name"] == "pi-1"
    assert _post_result(lively, fresh["token"]).status_code == 200
    old = _post_result(lively, token)
    assert old.status_code == 401 and old.json()["detail"] == BAD_TOKEN


def test_a_rotated_token_keeps_the_old_one_until_the_new_one_is_used(
    lively: RunningCollector,
) -> None:
    school = lively.add_school()
    old = _enrol(lively, lively.enrolment_code(school)).json()["token"]
    rotated = httpx.post(
        f"{lively.url}/api/v1/agent/token", headers={"Authorization": f"Bearer {old}"}
    )
    assert rotated.status_code == 200
    new = rotated.json()["token"]
    assert new != old
    until = datetime.fromisoformat(rotated.json()["old_valid_until"])
    assert timedelta(minutes=50) < until - datetime.now(UTC) <= timedelta(hours=1)
    # The agent may have crashed before saving the new token: the old one still works...
    assert _post_result(lively, old).status_code == 200
    # ...until the new one is used.
    assert _post_result(lively, new).status_code == 200
    assert _post_result(lively, old).status_code == 401
    assert _post_result(lively, new).status_code == 200


def test_heartbeats_make_the_agent_list(lively: RunningCollector) -> None:
    school = lively.add_school()
    token = _enrol(lively, lively.enrolment_code(school, name="pi-ok")).json()["token"]
    lively.enrolment_code(school, name="pi-never")  # enrolled on the collector, code unused
    lively.enroll(school, name="pi-silent")
    stale_token = lively.enroll(school, name="pi-stale")
    # The agent's clock is two minutes ahead.
    receipt = _beat(lively, token, sent_at=datetime.now(UTC) + timedelta(minutes=2))
    assert receipt.status_code == 200, receipt.text
    assert 119 < receipt.json()["clock_offset_s"] < 121
    assert receipt.json()["config_etag"] is None
    assert _beat(lively, stale_token).status_code == 200
    with lively.sessions() as session:
        row = session.get(AgentHeartbeat, _agent_id(lively, "pi-stale"))
        assert row is not None
        row.received_at = datetime.now(UTC) - timedelta(minutes=6)
        session.commit()

    listed = httpx.get(f"{lively.url}/api/v1/agents", headers=lively.reader).json()
    by_name = {a["name"]: a for a in listed}
    assert {n: a["status"] for n, a in by_name.items()} == {
        "pi-never": "never_seen",
        "pi-ok": "ok",
        "pi-silent": "never_seen",
        "pi-stale": "stale",
    }
    ok = by_name["pi-ok"]
    assert ok["enrolled"] is True and by_name["pi-never"]["enrolled"] is False
    assert ok["hostname"] == "pi-lincoln"
    assert ok["version"] == "0.1.0"
    assert ok["outbox_pending"] == 3 and ok["dead_letters"] == 1
    assert 119 < ok["clock_offset_s"] < 121
    assert by_name["pi-stale"]["seconds_since_heartbeat"] > 300
    assert [
        a["name"]
        for a in httpx.get(
            f"{lively.url}/api/v1/agents", params={"school_id": school + 1}, headers=lively.reader
        ).json()
    ] == []


def _agent_id(collector: RunningCollector, name: str) -> int:
    with collector.sessions() as session:
        agent_id = session.scalar(select(Agent.id).where(Agent.name == name))
        assert agent_id is not None
        return agent_id


def test_remote_config_with_etag(collector: RunningCollector) -> None:
    school = collector.add_school()
    token = collector.enroll(school, name="pi-1")
    auth = {"Authorization": f"Bearer {token}"}
    url = f"{collector.url}/api/v1/agent/config"
    assert httpx.get(url, headers=auth).status_code == 404
    with collector.sessions() as session:
        etag = set_agent_config(
            session=session, name="pi-1", config={"schedule": {"blackout_dates": ["2027-04-13"]}}
        )
    assert _beat(collector, token).json()["config_etag"] == etag
    got = httpx.get(url, headers=auth)
    assert got.status_code == 200
    assert got.headers["etag"] == f'"{etag}"'
    assert got.json() == {"etag": etag, "config": {"schedule": {"blackout_dates": ["2027-04-13"]}}}
    unchanged = httpx.get(url, headers={**auth, "If-None-Match": f'"{etag}"'})
    assert unchanged.status_code == 304 and unchanged.content == b""
    assert httpx.get(url).status_code == 401


def _cli(
    database_url: str, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "collector", *args],
        env={"READYNET_COLLECTOR_DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
    )


def test_the_agent_commands(collector: RunningCollector, tmp_path: Path) -> None:
    db = collector.database_url
    school = collector.add_school()
    issued = _cli(db, "agent", "enroll", "--school", str(school))
    assert issued.returncode == 0, issued.stderr
    code = issued.stdout.splitlines()[0]
    assert len(code) == 19 and code.count("-") == 3
    assert f"school-{school}-agent-1" in issued.stderr
    assert f"readynet-agent enroll --collector http://127.0.0.1:8080 --code {code}" in issued.stderr
    token = _enrol(collector, code).json()["token"]
    assert _beat(collector, token).status_code == 200

    listed = _cli(db, "agent", "list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert row["name"] == f"school-{school}-agent-1" and row["status"] == "ok"
    text = _cli(db, "agent", "list").stdout
    assert f"school-{school}-agent-1\t{school} Lincoln Elementary\tok\t0.1.0" in text

    remote = tmp_path / "remote.yaml"
    remote.write_text("devices:\n  - {name: core, address: 127.0.0.1, port: 99999}\n")
    bad = _cli(db, "agent", "config", "set", row["name"], "--file", str(remote))
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "error: file: devices.0.port: Input should be less than or equal to 65535"
    )
    remote.write_text("schedule:\n  blackout_dates: [2027-04-13]\n")
    good = _cli(db, "agent", "config", "set", row["name"], "--file", str(remote))
    assert good.returncode == 0, good.stderr
    shown = _cli(db, "agent", "config", "show", row["name"])
    assert '"2027-04-13"' in shown.stdout and good.stdout.strip() in shown.stdout
    assert _cli(db, "agent", "config", "clear", row["name"]).returncode == 0

    revoked = _cli(db, "agent", "revoke", row["name"])
    assert revoked.returncode == 0, revoked.stderr
    assert f"agent enroll --agent {row['name']}" in revoked.stderr
    assert json.loads(_cli(db, "agent", "list", "--format", "json").stdout)[0]["status"] == (
        "revoked"
    )
    again = _cli(db, "agent", "enroll", "--agent", row["name"])
    assert again.returncode == 0, again.stderr
    unknown = _cli(db, "agent", "enroll", "--agent", "nobody")
    assert (unknown.returncode, unknown.stderr) == (2, "error: agent: no agent named 'nobody'\n")
    both = _cli(db, "agent", "enroll", "--agent", "x", "--name", "y")
    assert both.returncode == 2
