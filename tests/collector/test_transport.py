"""Slow and surplus clients against the real server (collector.server): head and body deadlines,
the connection limit, the open-files limit, and 2,000 half-open connections.

Every connection goes to 127.0.0.1. Deadlines are shortened through settings so that each test
takes a few seconds.
"""

from __future__ import annotations

import asyncio
import configparser
import json
import os
import resource
import select
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from collector.api.errors import BODY_TIMEOUT, TOO_MANY_CONNECTIONS
from collector.localrun import LOOPBACK, free_port, stop_process, venv_script, wait_for_http
from collector.process import (
    ACCEPT_BATCHES_IN_FLIGHT,
    DEFAULT_BACKLOG,
    RESERVED_FILES,
    Fit,
    fit_to_open_files,
    raise_open_files_limit,
)
from collector.server import REFUSAL_LINGER_S, RETRY_AFTER_S
from collector.settings import CollectorSettings
from collector.store.migrate import upgrade_to_head
from tests.fixtures.collector import ServerThread, StartCollector

UNIT = Path(__file__).parents[2] / "deploy" / "systemd" / "readynet-collector.service"
# Slack for a loaded CI machine on top of each deadline.
SLACK_S = 1.5


@pytest.fixture
def open_files() -> Iterator[int]:
    """This process's soft RLIMIT_NOFILE raised to the hard limit, as `serve` does; restored
    afterwards. The server threads of these tests live in this process too."""
    limit = raise_open_files_limit()
    yield limit.soft
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit.before, limit.hard))


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def parse_response(data: bytes) -> RawResponse:
    head, separator, body = data.partition(b"\r\n\r\n")
    assert separator, f"no complete response head in {data!r}"
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    return RawResponse(int(status_line.split()[1]), headers, body)


def connect(port: int) -> socket.socket:
    return socket.create_connection((LOOPBACK, port), timeout=5)


def read_until_closed(sock: socket.socket, timeout_s: float) -> bytes:
    """Everything the server sends until it closes; fails if it is still open after timeout_s."""
    received = b""
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            chunk = sock.recv(65536)
            if not chunk:
                return received
            received += chunk
    except ConnectionResetError:
        return received
    except TimeoutError:
        raise AssertionError(f"still open after {timeout_s} s; got {received!r}") from None


def read_one_response(sock: socket.socket) -> RawResponse:
    """One response with a Content-Length body, leaving the connection open."""
    sock.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    response = parse_response(data)
    while len(response.body) < int(response.headers["content-length"]):
        response.body += sock.recv(65536)
    return response


def trickle_until_answered(
    sock: socket.socket, piece: bytes, every_s: float
) -> tuple[float, bytes]:
    """Send `piece` every `every_s` until the server answers or closes: (seconds, answer)."""
    # poll, not select: this process may hold descriptors above select's 1,024.
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    start = time.monotonic()
    while time.monotonic() - start < 30:
        if poller.poll(every_s * 1000):
            return time.monotonic() - start, read_until_closed(sock, 5)
        try:
            sock.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - start, b""
    raise AssertionError("the server neither answered nor closed in 30 s")


@pytest.mark.parametrize("when", ["new connection", "after a response"])
def test_trickled_request_head_is_cut_off_at_the_header_timeout(
    start_collector: StartCollector, when: str
) -> None:
    # keep_alive_s is long on purpose: the head deadline, not keep-alive, must end this.
    collector = start_collector(header_timeout_s=0.5, keep_alive_s=30)
    with connect(collector.server.port) as sock:
        if when == "after a response":
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert read_one_response(sock).status == 200
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        seconds, answer = trickle_until_answered(sock, b"X-Slow: 1\r\n", every_s=0.05)
    assert answer == b""
    assert 0.4 <= seconds <= 0.5 + SLACK_S


def test_request_in_time_is_served_however_long_the_answer_takes() -> None:
    async def slow_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await asyncio.sleep(1.0)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})

    settings = CollectorSettings(host=LOOPBACK, port=0, header_timeout_s=0.3)
    server = ServerThread(lambda: slow_app, settings)
    server.start()
    try:
        with httpx.Client(timeout=5) as client:
            # Twice on one connection: the deadline re-armed after the first answer is disarmed
            # by the second request's head, not left to cut the slow answer.
            for _ in range(2):
                response = client.get(server.url)
                assert response.status_code == 200 and response.text == "done"
    finally:
        server.stop()


@pytest.mark.parametrize("path", ["/api/v1/results", "/api/v1/speedtest/upload"])
@pytest.mark.parametrize("pace", ["stalled", "trickled"])
def test_slow_body_gets_408_and_the_connection_is_closed(
    start_collector: StartCollector, path: str, pace: str
) -> None:
    collector = start_collector(body_idle_timeout_s=0.5, body_min_bytes_per_s=1000)
    token = collector.enroll(collector.add_school())
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    ).encode()
    with connect(collector.server.port) as sock:
        sock.sendall(head + b'{"measurements": [')
        if pace == "stalled":
            start = time.monotonic()
            answer = read_until_closed(sock, 0.5 + SLACK_S)
            seconds = time.monotonic() - start
        else:
            # 20 bytes a second: never idle for long, far below the minimum rate.
            seconds, answer = trickle_until_answered(sock, b" ", every_s=0.05)
    response = parse_response(answer)
    assert response.status == 408
    assert json.loads(response.body) == {"detail": BODY_TIMEOUT}
    assert response.headers["connection"] == "close"
    assert 0.4 <= seconds <= 0.5 + SLACK_S


def test_slow_body_above_the_minimum_rate_is_received(start_collector: StartCollector) -> None:
    collector = start_collector(body_idle_timeout_s=0.5, body_min_bytes_per_s=1000)
    token = collector.enroll(collector.add_school())

    def paced() -> Iterator[bytes]:
        # 10 kB/s for 2 s: four times the idle timeout in all, never idle, above the rate.
        for _ in range(10):
            time.sleep(0.2)
            yield b"x" * 2000

    response = httpx.post(
        f"{collector.url}/api/v1/speedtest/upload",
        content=paced(),
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.json()["bytes"] == 20_000


def test_connections_beyond_the_limit_get_503_with_retry_after(
    start_collector: StartCollector,
) -> None:
    collector = start_collector(max_connections=20)
    held = [connect(collector.server.port) for _ in range(20)]
    try:
        with connect(collector.server.port) as sock:
            start = time.monotonic()
            answer = read_until_closed(sock, 2)
            assert time.monotonic() - start < 0.5
        response = parse_response(answer)
        assert response.status == 503
        assert response.headers["retry-after"] == str(RETRY_AFTER_S)
        assert json.loads(response.body) == {"detail": TOO_MANY_CONNECTIONS}

        # An HTTP client sending its request at once still reads the 503.
        refused = httpx.get(f"{collector.url}/healthz", timeout=5)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == str(RETRY_AFTER_S)

        held.pop().close()
        deadline = time.monotonic() + 5
        while httpx.get(f"{collector.url}/healthz", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "a freed connection slot was not reused"
            time.sleep(0.05)
    finally:
        for sock in held:
            sock.close()


def test_a_client_still_sending_its_body_reads_the_503_not_a_reset(
    start_collector: StartCollector,
) -> None:
    """The refusal is followed by a FIN and what the client sends is read and dropped: a reset
    would drop the 503 from the client's receive buffer (an agent's post saw only a reset)."""
    collector = start_collector(max_connections=5)
    held = [connect(collector.server.port) for _ in range(5)]
    try:
        body = b"x" * 2_000_000
        head = (
            b"POST /api/v1/results HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        with connect(collector.server.port) as sock:
            time.sleep(0.2)  # the 503 is written before any of the request arrives
            sock.sendall(head + body)
            start = time.monotonic()
            answer = read_until_closed(sock, 5)
            assert time.monotonic() - start < 1
        response = parse_response(answer)
        assert response.status == 503
        assert response.headers["retry-after"] == str(RETRY_AFTER_S)
        # A client that never closes its side is closed after the linger.
        with connect(collector.server.port) as sock:
            sock.sendall(head)
            start = time.monotonic()
            assert parse_response(read_until_closed(sock, 5)).status == 503
            assert time.monotonic() - start < REFUSAL_LINGER_S + 0.5
    finally:
        for sock in held:
            sock.close()


def test_a_slow_large_body_at_the_limit_still_reads_the_503(
    start_collector: StartCollector,
) -> None:
    """A batch trickling in for longer than the linger (a large post on a slow link) is read
    and dropped for as long as bytes keep coming, so the client reads the 503."""
    collector = start_collector(max_connections=5)
    held = [connect(collector.server.port) for _ in range(5)]
    try:
        body_bytes = 1_200_000
        head = (
            b"POST /api/v1/results HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % body_bytes
        )
        with connect(collector.server.port) as sock:
            sock.sendall(head)
            start = time.monotonic()
            sent = 0
            while sent < body_bytes:  # about 300 kB/s: 4 s, twice the linger
                sock.sendall(b"x" * 30_000)
                sent += 30_000
                time.sleep(0.1)
            assert time.monotonic() - start > 2 * REFUSAL_LINGER_S - 0.5
            response = parse_response(read_until_closed(sock, 5))
        assert response.status == 503
    finally:
        for sock in held:
            sock.close()


def test_2000_half_open_connections_leave_the_server_healthy(
    open_files: int, start_collector: StartCollector
) -> None:
    """With the default max_connections (room for 1,000 agents and more) none are refused."""
    header_timeout_s = 3.0
    # Both ends of the 2,000 connections live in this process, and room for accept bursts.
    needed = 2 * 2000 + ACCEPT_BATCHES_IN_FLIGHT * DEFAULT_BACKLOG + RESERVED_FILES
    if open_files != resource.RLIM_INFINITY and open_files < needed:
        pytest.skip(f"needs {needed} open files; the hard limit here is {open_files}")
    collector = start_collector(header_timeout_s=header_timeout_s)
    sockets: list[socket.socket] = []
    try:
        first_opened = time.monotonic()
        for i in range(2000):
            sock = connect(collector.server.port)
            if i % 2:
                sock.sendall(b"POST /api/v1/results HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            sockets.append(sock)
        last_opened = time.monotonic()

        health = httpx.get(f"{collector.url}/healthz", timeout=1)
        assert health.status_code == 200
        assert time.monotonic() - last_opened < 1

        closures = _wait_until_all_closed(sockets, timeout_s=header_timeout_s + 5)
        # Closed without an answer, none before its deadline, all soon after it.
        assert {answer for _, answer in closures} == {b""}
        assert min(t for t, _ in closures) - first_opened >= header_timeout_s - 0.1
        assert max(t for t, _ in closures) - last_opened <= header_timeout_s + SLACK_S
    finally:
        for sock in sockets:
            sock.close()


def _wait_until_all_closed(
    sockets: list[socket.socket], timeout_s: float
) -> list[tuple[float, bytes]]:
    """Wait for the server to close each socket: (when, what it sent); fails on time-out."""
    closures: list[tuple[float, bytes]] = []
    with selectors.DefaultSelector() as selector:
        for sock in sockets:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout_s
        while len(closures) < len(sockets):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{len(sockets) - len(closures)} connections still open"
            for key, _ in selector.select(timeout=remaining):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    answer = sock.recv(65536)
                except ConnectionResetError:
                    answer = b""
                closures.append((time.monotonic(), answer))
                selector.unregister(sock)
    return closures


def test_serve_raises_its_open_files_limit_and_applies_the_deadlines(
    sqlite_url: str, tmp_path: Path
) -> None:
    """`readynet-collector serve` as its own process, started with a 1,024 soft limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 1024:
        pytest.skip("the hard open-files limit here is 1,024: nothing to raise")
    upgrade_to_head(sqlite_url)
    port = free_port()
    env = {
        **os.environ,
        "READYNET_COLLECTOR_DATABASE_URL": sqlite_url,
        "READYNET_COLLECTOR_HEADER_TIMEOUT_S": "0.5",
    }
    lower_then_exec = (
        "import os, resource, sys\n"
        "hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))\n"
        "os.execv(sys.argv[1], sys.argv[1:])\n"
    )
    command = [str(venv_script("readynet-collector")), "serve", "--host", LOOPBACK]
    log_path = tmp_path / "collector.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", lower_then_exec, *command, "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        assert wait_for_http(process, f"http://{LOOPBACK}:{port}/healthz", 30), log_path.read_text()
        soft = _soft_open_files(process.pid)
        assert soft > 1024
        if hard != resource.RLIM_INFINITY:
            assert soft == hard
        assert f"open files limit {soft} (was 1024" in log_path.read_text()

        with connect(port) as sock:
            start = time.monotonic()
            assert read_until_closed(sock, 0.5 + SLACK_S) == b""
            assert time.monotonic() - start >= 0.4
    finally:
        stop_process(process)


def _soft_open_files(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no 'Max open files' line in /proc/PID/limits")


def test_systemd_unit_gives_room_for_the_default_connection_limit() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    limit = int(parser["Service"]["LimitNOFILE"])
    default = CollectorSettings.model_fields["max_connections"].default
    assert limit == 65536
    assert default > 1000  # 1,000 agents at once must never be refused
    assert fit_to_open_files(default, limit) == Fit(default, DEFAULT_BACKLOG)


@pytest.mark.parametrize(
    ("configured", "open_files", "fit"),
    [
        (4096, 65536, Fit(4096, DEFAULT_BACKLOG)),
        (4096, resource.RLIM_INFINITY, Fit(4096, DEFAULT_BACKLOG)),
        # 960 usable: half for accept bursts (4 batches of 120), half for connections.
        (4096, 1024, Fit(480, 120)),
        (300, 1024, Fit(300, 120)),
        (10, RESERVED_FILES, Fit(1, 1)),
    ],
)
def test_max_connections_and_backlog_fit_the_open_files_limit(
    configured: int, open_files: int, fit: Fit
) -> None:
    assert fit_to_open_files(configured, open_files) == fit
