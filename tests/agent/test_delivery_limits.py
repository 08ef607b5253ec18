"""Delivery against the collector's limits: byte-sized batches, 413, dead letters, Retry-After.

All against a real collector on 127.0.0.1 (small body limits, a per-agent post rate for a real
429 with Retry-After); only the request count is watched, through an httpx event hook.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import func, select

from agent.daemon import OUTBOX_FILE, AgentDaemon
from agent.errors import CollectorUnavailable
from agent.outbox import DeadLetter, Outbox
from agent.settings import AgentSettings
from agent.uploader import IN_FLIGHT, MAX_BODY_HEADER, Delivery, deliver, retry_after_s
from agent.wire import InterfaceCounters, SnmpPoll, ThroughputTest
from collector.api.limits import MAX_BODY_HEADER as COLLECTOR_HEADER
from collector.server import RETRY_AFTER_S
from collector.store.models import Measurement
from tests.fixtures.collector import RunningCollector, StartCollector

AGENT = str(Path(sys.executable).parent / "readynet-agent")
LIMIT = 20_000


def _poll(device: str, ports: int) -> SnmpPoll:
    interfaces = [
        InterfaceCounters(ifindex=i, name=f"GigabitEthernet1/0/{i}", octets_in=i, octets_out=i)
        for i in range(1, ports + 1)
    ]
    return SnmpPoll(device=device, address="127.0.0.1:161", interfaces=interfaces)


def _small(count: int) -> list[ThroughputTest]:
    return [ThroughputTest(path="onnet", server="x", download_bps=float(i)) for i in range(count)]


class Counted:
    """An httpx client to the collector that counts its requests, and the most that were
    waiting for their answers at once."""

    def __init__(self, url: str, token: str) -> None:
        self.requests = 0
        self.waiting = 0
        self.most_waiting = 0

        async def sent(request: httpx.Request) -> None:
            self.requests += 1
            self.waiting += 1
            self.most_waiting = max(self.most_waiting, self.waiting)

        async def answered(response: httpx.Response) -> None:
            self.waiting -= 1

        self.client = httpx.AsyncClient(
            base_url=url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
            event_hooks={"request": [sent], "response": [answered]},
        )


@pytest.fixture
def small_limit(start_collector: StartCollector) -> RunningCollector:
    return start_collector(max_batch_bytes=LIMIT)


def test_the_header_names_the_same_thing_on_both_sides() -> None:
    assert MAX_BODY_HEADER == COLLECTOR_HEADER


def test_every_results_answer_and_the_413_advertise_the_limit(
    small_limit: RunningCollector,
) -> None:
    token = small_limit.enroll(small_limit.add_school())
    auth = {"Authorization": f"Bearer {token}"}
    url = f"{small_limit.url}/api/v1/results"
    too_large = httpx.post(url, content=b"x" * (LIMIT + 1), headers=auth, timeout=10)
    unauthorised = httpx.post(url, content=b"{}", timeout=10)
    invalid = httpx.post(url, content=b"{}", headers=auth, timeout=10)
    assert [too_large.status_code, unauthorised.status_code, invalid.status_code] == [413, 401, 422]
    for response in (too_large, unauthorised, invalid):
        assert response.headers[MAX_BODY_HEADER] == str(LIMIT)
    assert MAX_BODY_HEADER not in httpx.get(f"{small_limit.url}/healthz").headers


async def test_large_polls_ahead_of_small_results_all_arrive_once(
    small_limit: RunningCollector, tmp_path: Path
) -> None:
    """A switch's big polls (each under the limit, all of them far over it) no longer hold
    back what waits behind them."""
    token = small_limit.enroll(small_limit.add_school())
    polls = [_poll(f"switch-{i}", 110) for i in range(30)]
    sizes = [len(p.model_dump_json()) for p in polls]
    assert LIMIT / 4 < sizes[0] < LIMIT / 2 and sum(sizes) > 10 * LIMIT
    small = _small(20)
    counted = Counted(small_limit.url, token)
    with Outbox(tmp_path / "outbox.sqlite3") as outbox:
        outbox.add([*polls, *small])
        async with counted.client:
            delivery = await deliver(outbox, client=counted.client, batch_size=500)
        assert (delivery.accepted, delivery.duplicates, delivery.remaining) == (50, 0, 0)
        assert delivery.dead_lettered == 0
        assert outbox.body_limit == LIMIT
        # The first batch is packed under the default limit and refused; after that, every
        # batch fits: about two or three polls a batch, and the small results together.
        assert counted.requests <= 1 + 30 // 2 + 2
        again = Counted(small_limit.url, token)
        outbox.add(small)  # queued twice: stored once
        async with again.client:
            repeat = await deliver(outbox, client=again.client, batch_size=500)
        assert (repeat.accepted, repeat.duplicates, again.requests) == (0, 20, 1)


async def test_a_result_alone_over_the_limit_is_dead_lettered_and_the_rest_arrive(
    small_limit: RunningCollector, tmp_path: Path
) -> None:
    token = small_limit.enroll(small_limit.add_school())
    huge = _poll("core", 400)
    assert len(huge.model_dump_json()) > LIMIT
    with Outbox(tmp_path / "outbox.sqlite3") as outbox:
        outbox.add([*_small(5), huge, *_small(5)])
        counted = Counted(small_limit.url, token)
        async with counted.client:
            delivery = await deliver(outbox, client=counted.client, batch_size=500)
            assert (delivery.accepted, delivery.remaining, delivery.dead_lettered) == (10, 0, 1)
            status = outbox.status()
            assert status.pending == 0 and status.dead_letters == 1
            [dead] = status.newest_dead_letters
            assert (dead.id, dead.kind, dead.status) == (str(huge.id), "snmp_poll", 413)
            assert f"over the collector's limit of {LIMIT} bytes" in dead.reason
            # Now the limit is known, a second such result is set aside without being sent.
            second = _poll("core-2", 400)
            outbox.add([second])
            before = counted.requests
            later = await deliver(outbox, client=counted.client, batch_size=500)
            assert (later.dead_lettered, counted.requests - before) == (1, 0)
            assert outbox.status().dead_letters == 2


def _invalid_row(path: Path) -> str:
    """A poll an older agent queued with a 201-character ifName, which the wire now refuses."""
    poll = _poll("old", 2).model_dump(mode="json")
    poll["interfaces"][1][InterfaceCounters._fields.index("name")] = "x" * 201
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO outbox VALUES (?, ?, ?)",
            (poll["id"], datetime.now(UTC).isoformat(), json.dumps(poll)),
        )
    db.close()
    return str(poll["id"])


async def _deliver_around_a_refused_one(
    collector: RunningCollector, path: Path, before: int, after: int, batch_size: int
) -> tuple[Delivery, Counted, DeadLetter]:
    """`before` good results, one the wire refuses, `after` good ones: delivered, and the one
    set aside with the reason."""
    token = collector.enroll(collector.add_school())
    with Outbox(path) as outbox:
        outbox.add(_small(before))
        bad = _invalid_row(path)
        outbox.add(_small(after))
        counted = Counted(collector.url, token)
        async with counted.client:
            delivery = await deliver(outbox, client=counted.client, batch_size=batch_size)
        [dead] = outbox.dead_letters(limit=10)
    assert (delivery.remaining, delivery.dead_lettered) == (0, 1)
    assert (dead.id, dead.status) == (bad, 422)
    return delivery, counted, dead


async def test_a_result_the_collector_refuses_is_dead_lettered_with_the_reason(
    collector: RunningCollector, tmp_path: Path
) -> None:
    delivery, counted, dead = await _deliver_around_a_refused_one(
        collector, tmp_path / "outbox.sqlite3", 3, 3, batch_size=500
    )
    assert delivery.accepted == 6
    assert counted.requests == 2  # refused naming it, then the rest without it
    assert dead.reason.startswith("invalid payload: ")
    assert "interfaces.1.name: String should have at most 200 characters" in dead.reason


async def test_a_backlog_goes_two_batches_at_a_time_and_arrives_once(
    collector: RunningCollector, tmp_path: Path
) -> None:
    """After one batch has gone through, the next is sent while the collector stores the one
    before (IN_FLIGHT); every result is confirmed once and leaves the outbox."""
    token = collector.enroll(collector.add_school())
    results = [*_small(100), *(_poll(f"switch-{i}", 48) for i in range(100))]
    with Outbox(tmp_path / "outbox.sqlite3") as outbox:
        outbox.add(results)
        counted = Counted(collector.url, token)
        async with counted.client:
            delivery = await deliver(outbox, client=counted.client, batch_size=10)
        assert (delivery.accepted, delivery.duplicates, delivery.remaining) == (200, 0, 0)
        assert counted.requests == 20 and counted.most_waiting == IN_FLIGHT == 2
    with collector.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Measurement)) == 200


async def test_delivery_cancelled_with_batches_under_way_loses_nothing(
    collector: RunningCollector, tmp_path: Path
) -> None:
    """Stopping the daemon mid-drain, with batches under way, loses nothing: what the
    collector stored of them is answered as duplicates next time, nothing is stored twice."""
    token = collector.enroll(collector.add_school())
    results = [_poll(f"switch-{i}", 48) for i in range(300)]
    with Outbox(tmp_path / "outbox.sqlite3") as outbox:
        outbox.add(results)
        counted = Counted(collector.url, token)
        sixth = asyncio.Event()

        async def note(request: httpx.Request) -> None:
            if counted.requests >= 6:  # the first, then batches two at a time
                sixth.set()

        counted.client.event_hooks["request"].append(note)
        async with counted.client:
            drain = asyncio.create_task(deliver(outbox, client=counted.client, batch_size=10))
            await sixth.wait()
            drain.cancel()
            started = time.monotonic()
            with pytest.raises(asyncio.CancelledError):
                await drain
            assert time.monotonic() - started < 2
        left = len(outbox)
        assert 0 < left < 300
        again = Counted(collector.url, token)
        async with again.client:
            rest = await deliver(outbox, client=again.client, batch_size=10)
        assert rest.remaining == 0 and rest.accepted + rest.duplicates == left
    with collector.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Measurement)) == 300


async def test_a_refused_result_in_a_batch_under_way_is_set_aside_and_the_rest_arrive(
    collector: RunningCollector, tmp_path: Path
) -> None:
    """A 422 while two batches are under way: delivery goes back to one batch at a time from
    the head of the queue, sets the refused result aside, and then picks up speed again."""
    delivery, counted, _ = await _deliver_around_a_refused_one(
        collector, tmp_path / "outbox.sqlite3", 25, 24, batch_size=10
    )
    assert delivery.accepted == 49 and counted.most_waiting == 2
    with collector.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Measurement)) == 49


@pytest.fixture
def one_post_a_minute(start_collector: StartCollector) -> RunningCollector:
    """A collector that takes one result post a minute from each agent, then answers 429."""
    return start_collector(agent_posts_per_minute=1)


async def test_429_with_retry_after_stops_delivery_and_the_daemon_waits(
    one_post_a_minute: RunningCollector, tmp_path: Path
) -> None:
    collector = one_post_a_minute
    token = collector.enroll(collector.add_school())
    settings = AgentSettings.model_validate(
        {
            "collector_url": collector.url,
            "token": token,
            "state_dir": tmp_path / "state",
            "internet": {"enabled": False},
        }
    )
    with Outbox(settings.state_dir / OUTBOX_FILE) as outbox:
        outbox.add(_small(3))
        counted = Counted(collector.url, token)
        async with counted.client:
            with pytest.raises(CollectorUnavailable) as refused:
                await deliver(outbox, client=counted.client, batch_size=1)
        # The first batch was stored; the two after it, under way together (IN_FLIGHT), were
        # refused before their bodies were read.
        assert len(outbox) == 2 and counted.requests == 1 + IN_FLIGHT == 3
    wait = refused.value.retry_after_s
    assert wait is not None and 55 <= wait <= 60
    assert "HTTP 429; retry after" in str(refused.value)
    daemon = AgentDaemon(settings)
    try:
        await daemon.deliver_outbox()
        assert daemon.deliver_not_before is not None
        # Retry-After is the floor, spread over one delivery interval (60 s) after it.
        assert 50 < daemon.deliver_not_before - time.monotonic() <= 60 + 60
        collector.server.stop()  # were the next delivery tried, it would fail differently
        await daemon.deliver_outbox()
        assert daemon.deliver_not_before is not None and daemon.delivery_failures == 1
    finally:
        daemon.policy.close()
    with Outbox(settings.state_dir / OUTBOX_FILE) as outbox:
        assert len(outbox) == 2


async def test_a_batch_posted_over_the_connection_limit_reads_the_503_and_its_retry_after(
    start_collector: StartCollector, tmp_path: Path
) -> None:
    """The collector's connection-limit 503 reaches an agent that is sending a batch (it used
    to be a connection reset, its Retry-After lost)."""
    collector = start_collector(max_connections=3)
    token = collector.enroll(collector.add_school())
    held = [socket.create_connection(("127.0.0.1", collector.server.port)) for _ in range(3)]
    try:
        await asyncio.sleep(0.2)
        with Outbox(tmp_path / "outbox.sqlite3") as outbox:
            outbox.add([_poll(f"switch-{i}", 40) for i in range(100)])  # about 800 kB
            counted = Counted(collector.url, token)
            async with counted.client:
                with pytest.raises(CollectorUnavailable) as refused:
                    await deliver(outbox, client=counted.client, batch_size=500)
            assert len(outbox) == 100 and counted.requests == 1
        assert refused.value.retry_after_s == RETRY_AFTER_S
        assert "HTTP 503" in str(refused.value)
    finally:
        for sock in held:
            sock.close()


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    now = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    assert retry_after_s("120", now=now) == 120
    assert retry_after_s(format_datetime(now + timedelta(seconds=90), usegmt=True), now=now) == 90
    assert retry_after_s(format_datetime(now - timedelta(hours=1), usegmt=True), now=now) == 0
    assert retry_after_s("999999", now=now) == 3600  # a wrong value cannot stop delivery
    assert retry_after_s("soon", now=now) is None
    assert retry_after_s(None, now=now) is None


def _old_outbox(path: Path, count: int) -> list[str]:
    """An outbox as the previous agent wrote it: one table, no dead letters, WAL."""
    rows = _small(count)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(
        "CREATE TABLE IF NOT EXISTS outbox ("
        " id TEXT PRIMARY KEY, queued_at TEXT NOT NULL, payload TEXT NOT NULL)"
    )
    queued = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    db.executemany(
        "INSERT INTO outbox VALUES (?, ?, ?)",
        [(str(r.id), queued, r.model_dump_json()) for r in rows],
    )
    db.close()
    return [str(r.id) for r in rows]


async def test_an_outbox_of_the_previous_version_opens_and_keeps_its_rows(
    collector: RunningCollector, tmp_path: Path
) -> None:
    path = tmp_path / "outbox.sqlite3"
    ids = _old_outbox(path, 4)
    with Outbox(path) as outbox:
        assert [i for i, _ in outbox.pending_rows(limit=10)] == ids
        status = outbox.status()
        assert (status.pending, status.dead_letters, outbox.body_limit) == (4, 0, None)
        assert status.oldest_pending is not None
        assert datetime.now(UTC) - status.oldest_pending > timedelta(hours=1)
        token = collector.enroll(collector.add_school())
        counted = Counted(collector.url, token)
        async with counted.client:
            delivery = await deliver(outbox, client=counted.client, batch_size=500)
        assert (delivery.accepted, delivery.remaining) == (4, 0)


def _config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "agent.yaml"
    settings: dict[str, Any] = {
        "collector_url": url,
        "token": "t",
        "state_dir": str(tmp_path / "state"),
        "onnet": {"enabled": False},
        "latency": {"enabled": False},
    }
    path.write_text(yaml.safe_dump(settings))
    return path


@pytest.fixture
def refused_outbox(collector: RunningCollector, tmp_path: Path) -> Iterator[Path]:
    """An agent.yaml whose outbox holds 2 pending results (hours old) and 1 dead letter."""
    config = _config(tmp_path, collector.url)
    state = tmp_path / "state"
    state.mkdir()
    _old_outbox(state / "outbox.sqlite3", 3)
    with Outbox(state / "outbox.sqlite3") as outbox:
        first, _ = outbox.pending_rows(limit=1)[0]
        outbox.bury([first], status=422, reason="invalid payload: download_bps: too fast")
    yield config


def test_outbox_command_shows_pending_and_dead_letters(refused_outbox: Path) -> None:
    text = subprocess.run(
        [AGENT, "outbox", "--config", str(refused_outbox)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].startswith("pending: 2 (oldest queued 2h ")
    assert lines[1] == "dead letters: 1"
    assert lines[2].endswith("HTTP 422: invalid payload: download_bps: too fast")
    assert " throughput " in lines[2]

    js = subprocess.run(
        [AGENT, "outbox", "--config", str(refused_outbox), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert js.returncode == 0, js.stderr
    report = json.loads(js.stdout)
    assert (report["pending"], report["dead_letters"]) == (2, 1)
    assert 7000 < report["oldest_pending_age_s"] < 7400
    [dead] = report["newest_dead_letters"]
    assert (dead["kind"], dead["status"]) == ("throughput", 422)
    assert dead["reason"] == "invalid payload: download_bps: too fast"
