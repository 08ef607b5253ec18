"""Delivery through faults: a collector away for a day, `kill -9` mid-write and mid-upload, bad
answers, a wrong or revoked token. Every result is stored once; nothing unconfirmed leaves.

Against a real collector on 127.0.0.1 (SQLite) and tiny real servers (tests/fixtures/faults.py)
for the bad answers; the killed processes are real ones (a writer, `readynet-agent flush`).
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import func, select

from agent.cli import main
from agent.daemon import OUTBOX_FILE, AgentDaemon
from agent.outbox import Outbox
from agent.settings import AgentSettings
from agent.uploader import deliver
from agent.wire import AnyMeasurement, InterfaceCounters, SnmpPoll, ThroughputTest
from collector.api.errors import AGENT_REVOKED
from collector.store.agents import revoke_agent
from collector.store.models import Measurement
from tests.fixtures.collector import RunningCollector, ServerThread
from tests.fixtures.faults import HoldingProxy

AGENT = str(Path(sys.executable).parent / "readynet-agent")
START = datetime.now(UTC) - timedelta(days=1)


def _poll(at: datetime, ports: int = 48) -> SnmpPoll:
    interfaces = [
        InterfaceCounters(
            ifindex=i,
            name=f"GigabitEthernet1/0/{i}",
            octets_in=10**9 * i,
            octets_out=10**8 * i,
            counter_bits=64,
            speed_mbps=1000,
            oper_status=1,
        )
        for i in range(1, ports + 1)
    ]
    return SnmpPoll(device="switch", address="127.0.0.1:161", interfaces=interfaces, measured_at=at)


def _test(at: datetime) -> ThroughputTest:
    return ThroughputTest(path="onnet", server="http://127.0.0.1", download_bps=9e8, measured_at=at)


def _hour(hour: int) -> list[AnyMeasurement]:
    """An hour of a school's rounds: a poll every 5 minutes and one throughput test."""
    at = START + timedelta(hours=hour)
    return [*(_poll(at + timedelta(minutes=5 * i)) for i in range(12)), _test(at)]


def _stored(collector: RunningCollector) -> int:
    with collector.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Measurement)) or 0)


def _settings(url: str, token: str, state: Path, **extra: Any) -> dict[str, Any]:
    return {
        "collector_url": url,
        "token": token,
        "state_dir": str(state),
        "internet": {"enabled": False},
        **extra,
    }


def _config(path: Path, settings: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(settings))
    return path


def _intact(path: Path) -> None:
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        db.close()


class Counted:
    """An httpx client to the collector that counts its requests."""

    def __init__(self, url: str, token: str) -> None:
        self.requests = 0

        async def count(request: httpx.Request) -> None:
            self.requests += 1

        self.client = httpx.AsyncClient(
            base_url=url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
            event_hooks={"request": [count]},
        )


async def test_collector_down_for_a_day_then_everything_arrives_once(
    collector: RunningCollector, tmp_path: Path
) -> None:
    token = collector.enroll(collector.add_school())
    settings = AgentSettings.model_validate(_settings(collector.url, token, tmp_path / "state"))
    collector.server.stop()
    daemon = AgentDaemon(settings, rng=random.Random(9))
    queued: list[AnyMeasurement] = []
    waits: list[float] = []
    try:
        for hour in range(24):
            results = _hour(hour)
            with Outbox(settings.state_dir / OUTBOX_FILE) as outbox:
                outbox.add(results)
            queued += results
            # An hour on, the back-off (at most 30 minutes) has run out: the delivery is tried.
            daemon.deliver_not_before = None
            await daemon.deliver_outbox()
            assert daemon.delivery_failures == hour + 1
            assert daemon.deliver_not_before is not None
            waits.append(daemon.deliver_not_before - time.monotonic())
            # Within the back-off nothing is tried (a try would fail and count).
            await daemon.deliver_outbox()
            assert daemon.delivery_failures == hour + 1
        # Exponential with full jitter, from one interval (60 s) up to the cap (1800 s).
        assert all(0 < wait <= settings.delivery_backoff_max_s for wait in waits)
        assert max(waits) > 4 * settings.delivery_interval_s
        with Outbox(settings.state_dir / OUTBOX_FILE) as outbox:
            assert len(outbox) == len(queued) == 24 * 13
        collector.server.start()
        counted = Counted(collector.url, token)
        with Outbox(settings.state_dir / OUTBOX_FILE) as outbox:
            async with counted.client:
                done = await deliver(outbox, client=counted.client, batch_size=settings.batch_size)
    finally:
        daemon.policy.close()
    assert (done.accepted, done.duplicates, done.remaining, done.dead_lettered) == (312, 0, 0, 0)
    assert _stored(collector) == 312
    # About 2.6 MB: a first batch under the assumed 1 MB, then the collector's own limit.
    assert counted.requests <= 3


WRITER = """
import sys
from pathlib import Path
from agent.outbox import Outbox
from agent.wire import InterfaceCounters, SnmpPoll, ThroughputTest

with Outbox(Path(sys.argv[1])) as outbox:
    written = 0
    while True:
        polls = [
            SnmpPoll(device="switch", address="127.0.0.1:161", interfaces=[
                InterfaceCounters(ifindex=i, name=f"Gi1/0/{i}", octets_in=i, octets_out=i)
                for i in range(1, 49)
            ])
            for _ in range(5)
        ]
        written += outbox.add([*polls, ThroughputTest(path="onnet", server="x", download_bps=1.0)])
        print(written, flush=True)
"""


def test_kill_9_mid_write_keeps_every_confirmed_result_and_flushes_once(
    collector: RunningCollector, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "state" / OUTBOX_FILE
    confirmed = 0
    for kill_after in (3, 11, 7):
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
        )
        assert child.stdout is not None
        for _ in range(kill_after):
            written = int(child.stdout.readline())
        child.send_signal(signal.SIGKILL)  # most likely inside its next add
        child.wait(timeout=10)
        child.stdout.close()
        confirmed += written
        _intact(path)
        with Outbox(path) as outbox:
            # Each add the writer returned from is there whole; one in flight may be, whole.
            assert confirmed <= len(outbox) <= confirmed + 6
            assert len(outbox) % 6 == 0
    with Outbox(path) as outbox:
        queued = len(outbox)
    token = collector.enroll(collector.add_school())
    config = _config(tmp_path / "agent.yaml", _settings(collector.url, token, path.parent))
    assert main(["flush", "--config", str(config)]) == 0
    assert capsys.readouterr().out == f"delivered: {queued} new, 0 already stored, 0 waiting\n"
    assert _stored(collector) == queued


def test_kill_9_mid_upload_loses_nothing_and_stores_nothing_twice(
    collector: RunningCollector, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = collector.enroll(collector.add_school())
    state = tmp_path / "state"
    with Outbox(state / OUTBOX_FILE) as outbox:
        outbox.add([_test(START + timedelta(minutes=i)) for i in range(1200)])
    proxy = HoldingProxy(collector.url, hold_s=30)
    slow = ServerThread(lambda: proxy)
    slow.start()
    try:
        via_proxy = _config(tmp_path / "slow.yaml", _settings(slow.url, token, state))
        child = subprocess.Popen(
            [AGENT, "flush", "--config", str(via_proxy)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # The collector has stored the first batch; its answer is held: the agent waits for it.
        assert proxy.forwarded.wait(30)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        slow.stop()
    assert _stored(collector) == 500
    _intact(state / OUTBOX_FILE)
    with Outbox(state / OUTBOX_FILE) as outbox:
        assert len(outbox) == 1200  # nothing was confirmed, so nothing left the outbox
    direct = _config(tmp_path / "agent.yaml", _settings(collector.url, token, state))
    assert main(["flush", "--config", str(direct)]) == 0
    assert capsys.readouterr().out == "delivered: 700 new, 500 already stored, 0 waiting\n"
    assert _stored(collector) == 1200


# Only the hang waits for the client's timeout; the others answer at once (a short timeout
# there would turn a slow moment of a busy machine into a hang).
@pytest.mark.parametrize(
    ("fault_server", "message"),
    [
        ("http-500", "collector answered HTTP 500"),
        ("hangs", "the collector did not answer within 0.5 s: ReadTimeout"),
        # The close may land while the client still sends the batch: then the reset is read.
        (
            "closes-mid-answer",
            (
                "the collector's answer broke off: RemoteProtocolError: ",
                "cannot reach the collector: ReadError",
            ),
        ),
        (
            "truncated-json",
            "collector sent an unreadable receipt: HTTP 200, 14 bytes: body: Invalid JSON: EOF",
        ),
        (
            "wrong-shape-json",
            "collector sent an unreadable receipt: HTTP 200, 12 bytes: accepted: Field required;"
            " duplicates: Field required; ok: Extra inputs are not permitted",
        ),
    ],
    indirect=["fault_server"],
)
def test_a_bad_answer_leaves_the_outbox_untouched_with_a_one_line_error(
    fault_server: ServerThread,
    collector: RunningCollector,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    message: str | tuple[str, ...],
) -> None:
    messages = (message,) if isinstance(message, str) else message
    token = collector.enroll(collector.add_school())
    state = tmp_path / "state"
    with Outbox(state / OUTBOX_FILE) as outbox:
        outbox.add([_test(START + timedelta(minutes=i)) for i in range(5)])
        before = outbox.pending_rows(limit=10)
    timeout_s = 0.5 if "did not answer" in messages[0] else 20
    bad = _settings(fault_server.url, token, state, upload_timeout_s=timeout_s)
    assert main(["flush", "--config", str(_config(tmp_path / "bad.yaml", bad))]) == 1
    [line] = capsys.readouterr().out.splitlines()
    prefix = "not delivered, kept 5 results in the outbox: "
    assert any(line.startswith(prefix + m) for m in messages), line
    with Outbox(state / OUTBOX_FILE) as outbox:
        assert outbox.pending_rows(limit=10) == before
        assert outbox.status().dead_letters == 0
    good = _config(tmp_path / "agent.yaml", _settings(collector.url, token, state))
    assert main(["flush", "--config", str(good)]) == 0
    assert capsys.readouterr().out == "delivered: 5 new, 0 already stored, 0 waiting\n"
    assert _stored(collector) == 5


def test_a_refused_token_keeps_everything_and_says_so(
    collector: RunningCollector, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = collector.enroll(collector.add_school())
    state = tmp_path / "state"
    with Outbox(state / OUTBOX_FILE) as outbox:
        outbox.add([_test(START + timedelta(minutes=i)) for i in range(3)])
    wrong = _config(tmp_path / "wrong.yaml", _settings(collector.url, "not-" + token, state))
    assert main(["flush", "--config", str(wrong)]) == 1
    [line] = capsys.readouterr().out.splitlines()
    assert line == (
        "not delivered, kept 3 results in the outbox: the collector refused the agent's token"
        " (HTTP 401: invalid or missing agent token); results stay in the outbox until the"
        " agent has a valid token"
    )
    assert token not in line
    with Outbox(state / OUTBOX_FILE) as outbox:
        assert (len(outbox), outbox.status().dead_letters) == (3, 0)
    right = _config(tmp_path / "agent.yaml", _settings(collector.url, token, state))
    assert main(["flush", "--config", str(right)]) == 0
    assert _stored(collector) == 3


def test_a_revoked_agent_keeps_its_outbox_until_enrolled_again(
    collector: RunningCollector, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    school = collector.add_school()
    token = collector.enroll(school, name="library-pi")
    with collector.sessions() as session:
        revoke_agent(session=session, name="library-pi")
    state = tmp_path / "state"
    with Outbox(state / OUTBOX_FILE) as outbox:
        outbox.add([_test(START + timedelta(minutes=i)) for i in range(3)])
    revoked = _config(tmp_path / "revoked.yaml", _settings(collector.url, token, state))
    assert main(["flush", "--config", str(revoked)]) == 1
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith(
        "not delivered, kept 3 results in the outbox: the collector refused the agent's token"
        f" (HTTP 401: {AGENT_REVOKED})"
    )
    with Outbox(state / OUTBOX_FILE) as outbox:
        assert (len(outbox), outbox.status().dead_letters) == (3, 0)
    again = collector.enroll(school, name="library-pi-2")
    renewed = _config(tmp_path / "agent.yaml", _settings(collector.url, again, state))
    assert main(["flush", "--config", str(renewed)]) == 0
    assert capsys.readouterr().out == "delivered: 3 new, 0 already stored, 0 waiting\n"
    assert _stored(collector) == 3
