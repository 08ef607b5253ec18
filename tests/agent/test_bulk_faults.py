"""`agent.probes.bulk` against servers that misbehave on purpose: an adversarial pass.

Each server is a few lines of asyncio on 127.0.0.1 that breaks HTTP/1.1 one way (never answers,
answers forever, frames the body wrongly, closes or resets mid-answer, stops reading an upload,
speaks plain text to a TLS client). The client must end each case with a clear exception (or
the documented False at a deadline), never hang, and close the connection. Every test runs
under `asyncio.timeout(LIMIT_S)`, so a hang is a failure, not a stuck suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import pytest
import trustme

from agent.probes.bulk import (
    RECEIVE_BUFFER_BYTES,
    Connection,
    Endpoint,
    HttpStatusError,
    PhaseMeter,
    ProtocolFault,
    StreamCut,
    UploadConnection,
    UploadSource,
)
from agent.probes.rtt import PING_PATH, LoadedRtt, Pinger

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

# The bound on every test: far above what any case needs, far below a stuck suite.
LIMIT_S = 5.0
DOWNLOAD = "/api/v1/speedtest/download?bytes=1000"
UPLOAD = "/api/v1/speedtest/upload"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@dataclass
class Hostile:
    """A misbehaving server on loopback: where to reach it, and how many connections it took."""

    port: int
    endpoint: Endpoint
    connections: int = 0


@contextlib.asynccontextmanager
async def hostile(
    handler: Handler,
    *,
    server_tls: ssl.SSLContext | None = None,
    client_tls: ssl.SSLContext | None = None,
) -> AsyncIterator[Hostile]:
    """Serve `handler` on 127.0.0.1; on exit every handler is cancelled and its socket closed."""
    tasks: set[asyncio.Task[None]] = set()
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        writers.append(writer)
        info.connections += 1
        try:
            await handler(reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass  # the client gave up first: what these servers provoke
        except asyncio.CancelledError:
            pass  # the teardown below: how a server still waiting ends
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_tls)
    port = server.sockets[0].getsockname()[1]
    scheme = "https" if client_tls is not None else "http"
    endpoint = Endpoint.from_url(f"{scheme}://127.0.0.1:{port}", token="t", tls=client_tls)
    info = Hostile(port, endpoint)
    try:
        yield info
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for writer in writers:
            # One already closing is left to finish: 3.11 fails aborting a closed transport.
            if not writer.transport.is_closing():
                writer.transport.abort()
        await server.wait_closed()


async def until_closed(reader: asyncio.StreamReader) -> None:
    """Read and drop bytes until the client's end of the connection closes (EOF or reset)."""
    with contextlib.suppress(ConnectionError):
        while await reader.read(64 * 1024):
            pass


async def head_of(reader: asyncio.StreamReader) -> bytes:
    """The request head the client sent."""
    return await reader.readuntil(b"\r\n\r\n")


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset, not a FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _tls_pair(ca: trustme.CA, *names: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) TLS contexts: a certificate for `names`, and a client that trusts `ca`."""
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


@contextlib.asynccontextmanager
async def uploading(endpoint: Endpoint) -> AsyncIterator[tuple[UploadConnection, UploadSource]]:
    """An upload connection to `endpoint` and a source to send from; both closed on exit."""
    source = UploadSource(in_memory=endpoint.tls is not None)
    try:
        async with await UploadConnection.open(endpoint, timeout_s=2) as conn:
            yield conn, source
    finally:
        source.close()


# -- answers that never come, or come forever ----------------------------------------------


async def test_a_request_to_a_server_that_never_answers_times_out() -> None:
    """A server that takes the request and stays silent: TimeoutError at timeout_s, not a hang."""
    gone = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await until_closed(reader)
        gone.set()

    async with asyncio.timeout(LIMIT_S), hostile(silent) as server:
        async with await Connection.open(server.endpoint, timeout_s=1) as conn:
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await conn.request("GET", PING_PATH, timeout_s=0.2)
            assert 0.2 <= time.monotonic() - started < 1.0
        await gone.wait()  # closing it reached the server


async def test_a_download_from_a_server_that_never_answers_stops_at_its_deadline() -> None:
    """A silent server during a download: False at the deadline, nothing counted."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await until_closed(reader)

    async with asyncio.timeout(LIMIT_S), hostile(silent) as server:
        meter = PhaseMeter("down")
        async with await Connection.open(server.endpoint, timeout_s=1) as conn:
            meter.watch(conn)
            started = time.monotonic()
            assert await conn.download(DOWNLOAD, deadline=started + 0.2) is False
            assert time.monotonic() - started < 0.7
            meter.forget(conn)
        assert meter.total == 0


@pytest.mark.parametrize("bulk", [False, True], ids=["request", "download"])
async def test_an_endless_head_is_refused_not_buffered(bulk: bool) -> None:
    """A head that never ends (megabytes of one header line): ProtocolFault, connection aborted."""

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await head_of(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nX-Pad: ")
        for _ in range(64):  # 4 MiB, unless the client gives up first
            writer.write(b"a" * 65536)
            await writer.drain()
        await until_closed(reader)

    async with asyncio.timeout(LIMIT_S), hostile(endless) as server:
        async with await Connection.open(server.endpoint, timeout_s=1) as conn:
            with pytest.raises(ProtocolFault, match="unreadable answer"):
                if bulk:
                    await conn.download(DOWNLOAD, deadline=time.monotonic() + 3)
                else:
                    await conn.request("GET", PING_PATH, timeout_s=3)
            await asyncio.sleep(0)  # the abort's connection_lost
            assert conn.closed


@pytest.mark.parametrize(
    ("what", "trickle"),
    [
        ("head", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        ("body", b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n" + b"x" * 50),
    ],
)
async def test_a_trickling_answer_to_a_ping_times_out(what: str, trickle: bytes) -> None:
    """A slowloris answer, one byte every 20 ms (in the head or in the body): TimeoutError."""

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await head_of(reader)
        start = 0 if what == "head" else trickle.index(b"\r\n\r\n") + 4
        writer.write(trickle[:start])
        for i in range(start, len(trickle)):
            writer.write(trickle[i : i + 1])
            await asyncio.sleep(0.02)
        await until_closed(reader)

    async with asyncio.timeout(LIMIT_S), hostile(slow) as server:
        async with await Connection.open(server.endpoint, timeout_s=1) as conn:
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await conn.request("GET", PING_PATH, timeout_s=0.3)
            assert time.monotonic() - started < 1.0


async def test_a_trickling_download_stops_at_its_deadline_and_counts_what_came() -> None:
    """A 10 MB download sent 1 KB at a time: False at the deadline; the bytes that came count."""

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await head_of(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n")
        while True:
            writer.write(b"x" * 1000)
            await asyncio.sleep(0.02)

    async with asyncio.timeout(LIMIT_S), hostile(slow) as server:
        meter = PhaseMeter("down")
        buffer = memoryview(bytearray(RECEIVE_BUFFER_BYTES))
        async with await Connection.open(server.endpoint, timeout_s=1, buffer=buffer) as conn:
            meter.watch(conn)
            started = time.monotonic()
            assert await conn.download(DOWNLOAD, deadline=started + 0.4) is False
            assert time.monotonic() - started < 1.0
            meter.forget(conn)
        assert meter.total > 5000


# -- answers framed wrongly ----------------------------------------------------------------


@pytest.mark.parametrize(
    "framing",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello",
    ],
    ids=["chunked", "until-close"],
)
async def test_a_download_without_content_length_is_refused(framing: bytes) -> None:
    """A 200 download framed by chunks or by the close: ProtocolFault, not a guess at its size."""

    async def unframed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await head_of(reader)
        writer.write(framing)
        await until_closed(reader)

    async with asyncio.timeout(LIMIT_S), hostile(unframed) as server:
        async with await Connection.open(server.endpoint, timeout_s=1) as conn:
            with pytest.raises(ProtocolFault, match="without Content-Length"):
                await conn.download(DOWNLOAD, deadline=time.monotonic() + 3)


async def test_more_body_than_promised_after_the_head_is_a_fault() -> None:
    """A download body longer than its Content-Length (sent after the head): ProtocolFault."""

    async def generous(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await head_of(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"x" * 1500)
        await until_closed(reader)

    async with asyncio.timeout(LIMIT_S), hostile(generous) as server:
        async with await Connection.open(server.endpoint, timeout_s=1) as conn:
            with pytest.raises(ProtocolFault, match="more than it promised"):
                await conn.download(DOWNLOAD, deadline=time.monotonic() + 3)
            await asyncio.sleep(0)
            assert conn.closed


@pytest.mark.parametrize(
    "answer",
    [
        b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent Length: 2\r\n\r\nok",
    ],
    ids=["not-http", "negative-length", "word-length", "two-lengths", "unasked-101", "bad-name"],
)
@pytest.mark.parametrize("bulk", [False, True], ids=["request", "download"])
async def test_an_answer_that_is_not_http_we_can_read_is_a_protocol_fault(
    answer: bytes, bulk: bool
) -> None:
    """Garbage, impossible lengths, an unrequested protocol switch: ProtocolFault, aborted."""

    async def garbled(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await head_of(reader)
        writer.write(answer)
        await until_closed(reader)

    async with asyncio.timeout(LIMIT_S), hostile(garbled) as server:
        async with await Connection.open(server.endpoint, timeout_s=1) as conn:
            with pytest.raises(ProtocolFault, match="unreadable answer"):
                if bulk:
                    await conn.download(DOWNLOAD, deadline=time.monotonic() + 3)
                else:
                    await conn.request("GET", PING_PATH, timeout_s=3)
            await asyncio.sleep(0)
            assert conn.closed


async def test_a_ping_answer_delimited_by_the_close_is_read_whole() -> None:
    """An HTTP/1.0-style answer with no length, ended by the close: its body, not an error."""

    async def old(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await head_of(reader)
        writer.write(b"HTTP/1.0 200 OK\r\n\r\npong")

    async with asyncio.timeout(LIMIT_S), hostile(old) as server:
        async with await Connection.open(server.endpoint, timeout_s=1) as conn:
            assert await conn.request("GET", PING_PATH, timeout_s=2) == b"pong"


# -- informational answers -----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["request", "download", "upload"])
async def test_informational_answers_before_the_real_one_are_skipped(kind: str) -> None:
    """100 Continue and 103 Early Hints before the final answer: skipped, the answer counts."""
    size = 100_000

    async def chatty(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await head_of(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n")
        if kind == "upload":
            await reader.readexactly(size)
        if kind == "download":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 1000)
        else:
            writer.write(OK)
        await until_closed(reader)

    async with asyncio.timeout(LIMIT_S), hostile(chatty) as server:
        deadline = time.monotonic() + 3
        if kind == "upload":
            async with uploading(server.endpoint) as (sender, source):
                assert await sender.upload(UPLOAD, size, source, deadline=deadline, timeout_s=3)
            return
        async with await Connection.open(server.endpoint, timeout_s=1) as conn:
            if kind == "request":
                assert await conn.request("GET", PING_PATH, timeout_s=3) == b"ok"
            else:
                assert await conn.download(DOWNLOAD, deadline=deadline) is True
            # The kept connection still serves the next request.
            assert not conn.closed


# -- closes and resets ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "reason"),
    [
        (b"", "connection closed"),
        (b"HTTP/1.1 200 OK\r\nContent-Le", "closed mid-answer"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789", "closed mid-answer"),
    ],
    ids=["before-the-head", "mid-head", "mid-body"],
)
@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
async def test_a_ping_answer_cut_short_is_a_protocol_fault(
    sent: bytes, reason: str, reset: bool
) -> None:
    """The server closes (FIN) or resets (RST) before, inside or after the head: ProtocolFault."""

    async def cutting(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await head_of(reader)
        writer.write(sent)
        await writer.drain()
        await asyncio.sleep(0.02)
        if reset:
            _reset(writer)

    async with asyncio.timeout(LIMIT_S), hostile(cutting) as server:
        async with await Connection.open(server.endpoint, timeout_s=1) as conn:
            with pytest.raises(ProtocolFault, match=reason if not reset else "connection closed"):
                await conn.request("GET", PING_PATH, timeout_s=3)
            assert conn.closed


CUT_HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 4000000\r\n\r\n"


async def cut_download(
    *, reset: bool, tls: tuple[ssl.SSLContext, ssl.SSLContext] | None = None
) -> tuple[StreamCut, int]:
    """A 4 MB download the server ends after 2 MB (FIN or RST), past the raised low-water mark,
    over TLS if `tls` gives (server, client) contexts: the StreamCut it raised, and what the
    phase meter counted for it."""

    async def cutting(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await head_of(reader)
        writer.write(CUT_HEAD)
        await writer.drain()
        await asyncio.sleep(0.02)  # the first body bytes come apart: the low-water mark rises
        writer.write(b"x" * 2_000_000)
        await writer.drain()
        await asyncio.sleep(0.1)
        if reset:
            _reset(writer)

    server_tls, client_tls = tls if tls is not None else (None, None)
    async with (
        asyncio.timeout(LIMIT_S),
        hostile(cutting, server_tls=server_tls, client_tls=client_tls) as server,
    ):
        meter = PhaseMeter("down")
        buffer = memoryview(bytearray(RECEIVE_BUFFER_BYTES))
        async with await Connection.open(server.endpoint, timeout_s=1, buffer=buffer) as conn:
            meter.watch(conn)
            with pytest.raises(StreamCut) as cut:
                await conn.download(DOWNLOAD, deadline=time.monotonic() + 3)
            meter.forget(conn)
    return cut.value, meter.total


@pytest.mark.parametrize(
    ("reset", "tls"), [(False, False), (True, False), (True, True)], ids=["fin", "rst", "tls-rst"]
)
async def test_a_download_cut_mid_body_says_how_far_it_got(
    reset: bool, tls: bool, ca: trustme.CA
) -> None:
    """A 4 MB download closed (FIN) or reset (RST, also under TLS) after 2 MB: StreamCut with
    the count."""
    cut, _ = await cut_download(reset=reset, tls=_tls_pair(ca, "127.0.0.1") if tls else None)
    assert str(cut) == "download cut short: 2000000 of 4000000 bytes"


async def test_a_download_closed_mid_body_keeps_the_kernels_count() -> None:
    """A download closed (FIN) mid-body: the meter has the kernel's count of what came."""
    _, moved = await cut_download(reset=False)
    # The head and the 2 MB, plus one: the kernel counts the FIN's sequence number as a byte.
    assert moved == len(CUT_HEAD) + 2_000_000 + 1


async def test_a_request_on_a_connection_the_server_closed_fails_at_once() -> None:
    """The server closes a kept connection between requests: the next request says so at once."""

    async def one_shot(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await head_of(reader)
        writer.write(OK)

    async with asyncio.timeout(LIMIT_S), hostile(one_shot) as server:
        async with await Connection.open(server.endpoint, timeout_s=1) as conn:
            assert await conn.request("GET", PING_PATH, timeout_s=2) == b"ok"
            await asyncio.sleep(0.05)
            assert conn.closed
            with pytest.raises(ProtocolFault, match="connection closed"):
                await conn.request("GET", PING_PATH, timeout_s=2)
            with pytest.raises(ProtocolFault, match="connection closed"):
                await conn.download(DOWNLOAD, deadline=time.monotonic() + 2)


# -- error statuses ------------------------------------------------------------------------


async def test_an_error_status_on_a_ping_is_an_http_status_error() -> None:
    """A 503 with a 1 MB body: HttpStatusError(503) saying so; the body is not kept whole."""

    async def failing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await head_of(reader)
            body = b"<html>" + b"x" * 1_000_000
            writer.write(b"HTTP/1.1 503 Busy\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    async with asyncio.timeout(LIMIT_S), hostile(failing) as server:
        async with await Connection.open(server.endpoint, timeout_s=1) as conn:
            with pytest.raises(HttpStatusError, match="collector answered HTTP 503") as refused:
                await conn.request("GET", PING_PATH, timeout_s=3)
            assert refused.value.status == 503
            # The whole body was read: the connection is still in step for a next request.
            with pytest.raises(HttpStatusError):
                await conn.request("GET", PING_PATH, timeout_s=3)


async def test_the_pinger_drops_a_connection_that_answered_an_error() -> None:
    """Pings answered 503: each raises HttpStatusError and the next opens a fresh connection."""
    gone = asyncio.Event()

    async def failing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await head_of(reader)
        writer.write(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n")
        await until_closed(reader)
        gone.set()

    async with asyncio.timeout(LIMIT_S), hostile(failing) as server:
        pinger = Pinger(server.endpoint, timeout_s=2)
        try:
            for _ in range(2):
                with pytest.raises(HttpStatusError):
                    await pinger.round_trip_ms()
        finally:
            pinger.close()
        await gone.wait()
        assert server.connections == 2


# -- connecting ----------------------------------------------------------------------------


async def test_a_refused_connection_is_connection_refused_error() -> None:
    """Nothing listens on the port: ConnectionRefusedError (an OSError the probe reports)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        endpoint = Endpoint.from_url(f"http://127.0.0.1:{port}", token="t")
        async with asyncio.timeout(LIMIT_S):
            with pytest.raises(ConnectionRefusedError):
                await Connection.open(endpoint, timeout_s=1)


async def test_tls_to_a_server_that_speaks_plain_http_is_an_ssl_error(ca: trustme.CA) -> None:
    """A TLS client meets a plain-HTTP server (it answers the ClientHello with a 400): SSLError."""
    _, client = _tls_pair(ca, "127.0.0.1")

    async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await until_closed(reader)

    async with asyncio.timeout(LIMIT_S), hostile(plain, client_tls=client) as server:
        with pytest.raises(ssl.SSLError):
            await Connection.open(server.endpoint, timeout_s=2)


async def test_a_tls_handshake_that_never_completes_times_out_and_closes(ca: trustme.CA) -> None:
    """A server that takes the ClientHello and never answers: TimeoutError, socket closed."""
    _, client = _tls_pair(ca, "127.0.0.1")
    gone = asyncio.Event()

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await until_closed(reader)
        gone.set()

    async with asyncio.timeout(LIMIT_S), hostile(mute, client_tls=client) as server:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await Connection.open(server.endpoint, timeout_s=0.3)
        assert time.monotonic() - started < 1.0
        await gone.wait()


async def test_a_certificate_for_another_name_is_refused(ca: trustme.CA) -> None:
    """A certificate our CA signed, but for another host: SSLCertVerificationError."""
    server_tls, client = _tls_pair(ca, "collector.other.example")

    async def never_reached(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await until_closed(reader)

    async with (
        asyncio.timeout(LIMIT_S),
        hostile(never_reached, server_tls=server_tls, client_tls=client) as server,
    ):
        with pytest.raises(ssl.SSLCertVerificationError):
            await Connection.open(server.endpoint, timeout_s=2)


# -- uploads against a server that stops reading -------------------------------------------


@pytest.mark.parametrize("tls", [False, True], ids=["sendfile", "tls-writes"])
async def test_the_deadline_ends_an_upload_the_server_stopped_reading(
    tls: bool, ca: trustme.CA
) -> None:
    """The server reads the head, then nothing: the upload's thread blocks in sendfile (in
    sendall under TLS) until the deadline, which returns False on time and closes the
    connection."""
    server_tls, client = _tls_pair(ca, "127.0.0.1")
    release, gone = asyncio.Event(), asyncio.Event()

    async def stalled(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await head_of(reader)
        await release.wait()
        await until_closed(reader)
        gone.set()

    async with (
        asyncio.timeout(LIMIT_S),
        hostile(
            stalled,
            server_tls=server_tls if tls else None,
            client_tls=client if tls else None,
        ) as server,
    ):
        async with uploading(server.endpoint) as (sender, source):
            started = time.monotonic()
            done = await sender.upload(
                UPLOAD, 200_000_000, source, deadline=started + 0.3, timeout_s=5
            )
            assert done is False
            assert time.monotonic() - started < 0.8
            moved = sender.moved("up")
        release.set()
        await gone.wait()
        # What the server's buffers took before it stopped: some, never the whole body.
        assert 0 < moved < 200_000_000


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("silent", TimeoutError),
        ("endless-head", ProtocolFault),
        ("http-503", HttpStatusError),
        ("closed-mid-body", ConnectionError),
    ],
)
async def test_an_upload_whose_answer_goes_wrong_says_how(
    fault: str, expected: type[Exception]
) -> None:
    """After (or instead of) taking the body the server stays silent, answers a head that never
    ends, answers 503, or closes half way: TimeoutError at timeout_s, ProtocolFault,
    HttpStatusError, ConnectionError; each one the probe reports, none a hang."""
    size = 200_000 if fault != "closed-mid-body" else 20_000_000

    async def answering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await head_of(reader)
        if fault == "closed-mid-body":
            await reader.readexactly(50_000)
            return  # closing with the rest unread: the client's sends meet a reset
        await reader.readexactly(size)
        if fault == "endless-head":
            writer.write(b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 1_000_000)
        elif fault == "http-503":
            writer.write(b"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\n\r\nbusy")
        await until_closed(reader)

    async with asyncio.timeout(LIMIT_S), hostile(answering) as server:
        async with uploading(server.endpoint) as (sender, source):
            started = time.monotonic()
            with pytest.raises(expected):
                await sender.upload(UPLOAD, size, source, deadline=started + LIMIT_S, timeout_s=0.3)
            assert time.monotonic() - started < 1.5


async def test_an_upload_refused_and_reset_before_its_body_says_why() -> None:
    """The server answers 401 to the upload's head, then resets (not reading the body): the
    401 is the reason, not the ConnectionResetError the body's sendfile met."""

    async def refusing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await head_of(reader)
        writer.write(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        _reset(writer)

    async with asyncio.timeout(LIMIT_S), hostile(refusing) as server:
        async with uploading(server.endpoint) as (sender, source):
            with pytest.raises(HttpStatusError) as refused:
                await sender.upload(
                    UPLOAD, 50_000_000, source, deadline=time.monotonic() + 3, timeout_s=2
                )
            assert refused.value.status == 401


async def test_an_upload_on_a_connection_the_server_closed_fails_as_the_probe_expects() -> None:
    """The server answers an upload and closes the kept connection (Connection: close): the
    next upload on it fails with an OSError or ProtocolFault, which the probe reports (uploads
    on the event loop raised RuntimeError("Transport is closing") here, past the probe)."""

    async def closing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await head_of(reader)
        await reader.readexactly(1000)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    async with asyncio.timeout(LIMIT_S), hostile(closing) as server:
        async with uploading(server.endpoint) as (sender, source):
            deadline = time.monotonic() + 3
            assert await sender.upload(UPLOAD, 1000, source, deadline=deadline, timeout_s=2)
            await asyncio.sleep(0.05)
            with pytest.raises((ProtocolFault, OSError)):
                await sender.upload(UPLOAD, 1000, source, deadline=deadline, timeout_s=2)


# -- cancellation --------------------------------------------------------------------------


async def _one(conn: Connection, kind: str, deadline: float) -> object:
    """One request or download on `conn`, by `deadline`."""
    if kind == "request":
        return await conn.request("GET", PING_PATH, timeout_s=deadline - time.monotonic())
    return await conn.download(DOWNLOAD, deadline=deadline)


async def _cancel_midway(work: Coroutine[Any, Any, object]) -> None:
    """Start `work`, cancel it 0.1 s in: the CancelledError must come out within 0.5 s."""
    task = asyncio.create_task(work)
    await asyncio.sleep(0.1)
    assert not task.done()
    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - cancelled_at < 0.5


@pytest.mark.parametrize("kind", ["request", "download", "upload"])
async def test_cancelling_a_stream_mid_request_propagates(kind: str) -> None:
    """task.cancel() while a request waits on a silent server (or an upload's thread sits in
    sendfile): CancelledError comes out promptly, nothing swallows it; the connection ends."""
    release, gone = asyncio.Event(), asyncio.Event()

    async def stalled(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await head_of(reader)
        await release.wait()
        await until_closed(reader)
        gone.set()

    async with asyncio.timeout(LIMIT_S), hostile(stalled) as server:
        far = time.monotonic() + 60
        if kind == "upload":
            async with uploading(server.endpoint) as (sender, source):
                await _cancel_midway(
                    sender.upload(UPLOAD, 200_000_000, source, deadline=far, timeout_s=60)
                )
        else:
            async with await Connection.open(server.endpoint, timeout_s=2) as conn:
                await _cancel_midway(_one(conn, kind, far))
        release.set()
        await gone.wait()


@pytest.mark.parametrize("kind", ["request", "download"])
async def test_a_cancel_that_races_the_timeout_is_not_swallowed(kind: str) -> None:
    """The deadline (or timeout) expires in the same loop turn as an outside cancel: the cancel
    wins; a download does not take it for its deadline and return False."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await until_closed(reader)

    async with asyncio.timeout(LIMIT_S), hostile(silent) as server:
        async with await Connection.open(server.endpoint, timeout_s=2) as conn:
            task = asyncio.create_task(_one(conn, kind, time.monotonic()))
            await asyncio.sleep(0)  # the task is waiting; its own expiry is queued
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task


@pytest.mark.parametrize("kind", ["request", "download"])
async def test_a_cancel_that_arrives_with_the_answer_is_not_swallowed(kind: str) -> None:
    """The answer and an outside cancel land in the same loop turn: the cancel wins. (3.11's
    asyncio.wait_for returned the answer here and dropped the cancel: the loaded pinger kept
    running and the phase's end waited on it for ever.)"""
    trigger, pull = socket.socketpair()  # local, not network: a second fd for the same turn

    async def answering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await head_of(reader)
        if kind == "request":
            writer.write(OK)
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 1000)
        trigger.send(b"!")  # both sockets turn readable at once: one select() sees both
        await until_closed(reader)

    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(LIMIT_S), hostile(answering) as server:
            async with await Connection.open(server.endpoint, timeout_s=2) as conn:
                task = asyncio.create_task(_one(conn, kind, time.monotonic() + 30))

                def cancel() -> None:
                    pull.recv(1)
                    task.cancel()

                loop.add_reader(pull.fileno(), cancel)
                try:
                    with pytest.raises(asyncio.CancelledError):
                        await task
                finally:
                    loop.remove_reader(pull.fileno())
    finally:
        trigger.close()
        pull.close()


async def test_loaded_round_trips_stop_when_cancelled_mid_ping() -> None:
    """LoadedRtt against a server that never answers: cancelling it ends it at once and the
    pinger's connection is closed (the loaded phase's end must never wait on a ping)."""
    gone = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await until_closed(reader)
        gone.set()

    async with asyncio.timeout(LIMIT_S), hostile(silent) as server:
        pinger = Pinger(server.endpoint, timeout_s=30)
        loaded = LoadedRtt(pinger, interval_s=0.05)
        task = asyncio.create_task(loaded.run())
        await asyncio.sleep(0.2)
        cancelled_at = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - cancelled_at < 0.5
        await gone.wait()
        assert (loaded.samples_ms, loaded.failures) == ([], 0)
        pinger.close()


# Found by the adversarial pass and fixed in bulk.py since.


async def test_a_zero_byte_download_completes() -> None:
    """A 200 download with Content-Length: 0 is complete at its head, not left to the deadline."""

    async def empty(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await head_of(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

    async with asyncio.timeout(LIMIT_S), hostile(empty) as server:
        async with await Connection.open(server.endpoint, timeout_s=2) as conn:
            started = time.monotonic()
            assert await conn.download(DOWNLOAD, deadline=started + 1) is True
            assert time.monotonic() - started < 0.5


async def test_more_body_than_promised_with_the_head_is_a_fault() -> None:
    """A download's head, its whole body and 500 bytes more in one segment: ProtocolFault, as
    when the surplus comes on its own (today the surplus is dropped unseen)."""

    async def generous(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await head_of(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 1500)
        await until_closed(reader)

    async with asyncio.timeout(LIMIT_S), hostile(generous) as server:
        async with await Connection.open(server.endpoint, timeout_s=1) as conn:
            with pytest.raises(ProtocolFault, match="more than it promised"):
                await conn.download(DOWNLOAD, deadline=time.monotonic() + 3)


async def test_bytes_nobody_asked_for_are_not_buffered_without_bound() -> None:
    """After answering a ping the server floods the idle connection: the client must not take
    it all into memory (today h11's buffer grows by hundreds of MB a second)."""
    flooded = 0

    async def flooding(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal flooded
        await head_of(reader)
        writer.write(OK)
        chunk = b"x" * (1 << 20)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.5):
                while True:
                    writer.write(chunk)
                    await writer.drain()
                    flooded += len(chunk)

    async with asyncio.timeout(LIMIT_S), hostile(flooding) as server:
        async with await Connection.open(server.endpoint, timeout_s=1) as conn:
            assert await conn.request("GET", PING_PATH, timeout_s=2) == b"ok"
            await asyncio.sleep(0.6)
    # A client that stopped reading (or dropped the connection) takes a few MB of kernel
    # buffers at most.
    assert flooded < 32 * 1024 * 1024, f"{flooded / 2**20:.0f} MiB taken in while idle"


async def test_a_download_with_both_length_and_chunked_is_refused() -> None:
    """Content-Length and Transfer-Encoding: chunked together (the smuggling shape; the body is
    chunked): ProtocolFault, not the chunk framing counted as body bytes."""

    async def smuggling(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await head_of(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"3e8\r\n" + b"x" * 995)  # 1000 bytes on the wire, 995 of body
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.write(b"x" * 5 + b"\r\n0\r\n\r\n")
        await until_closed(reader)

    async with asyncio.timeout(LIMIT_S), hostile(smuggling) as server:
        async with await Connection.open(server.endpoint, timeout_s=1) as conn:
            with pytest.raises(ProtocolFault):
                await conn.download(DOWNLOAD, deadline=time.monotonic() + 3)


async def test_an_error_head_on_a_download_is_not_lost_at_the_deadline() -> None:
    """A 503 head whose body then stalls: the download raises HttpStatusError(503) (at the
    deadline at the latest), not False as if the link were merely slow."""

    async def failing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await head_of(reader)
        writer.write(b"HTTP/1.1 503 Busy\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
        await until_closed(reader)

    async with asyncio.timeout(LIMIT_S), hostile(failing) as server:
        async with await Connection.open(server.endpoint, timeout_s=1) as conn:
            with pytest.raises(HttpStatusError) as refused:
                await conn.download(DOWNLOAD, deadline=time.monotonic() + 0.5)
            assert refused.value.status == 503


async def test_an_early_refusal_of_an_upload_is_not_lost_at_the_deadline() -> None:
    """The server answers 429 to the upload's head and stops reading without closing: at the
    deadline the upload raises HttpStatusError(429), not False as if the link were slow."""

    async def refusing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await head_of(reader)
        writer.write(b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n\r\n")
        await asyncio.sleep(3600)

    async with asyncio.timeout(LIMIT_S), hostile(refusing) as server:
        async with uploading(server.endpoint) as (sender, source):
            with pytest.raises(HttpStatusError) as refused:
                await sender.upload(
                    UPLOAD, 200_000_000, source, deadline=time.monotonic() + 0.5, timeout_s=2
                )
            assert refused.value.status == 429


async def test_a_download_reset_mid_body_keeps_the_kernels_count() -> None:
    """A download reset (RST) after 2 MB that the client read: the meter keeps the kernel's
    count (today 0: TCP_INFO is read only when polled, and the socket is gone by then)."""
    cut, moved = await cut_download(reset=True)
    assert str(cut) == "download cut short: 2000000 of 4000000 bytes"
    assert moved == len(CUT_HEAD) + 2_000_000


async def test_an_upload_connection_given_up_mid_handshake_is_closed(ca: trustme.CA) -> None:
    """The stream is cancelled while its upload connection's TLS handshake is still under way
    (the collector answers the ClientHello late): the socket must not outlive the cancel.
    (`UploadConnection.open` runs the handshake in `asyncio.to_thread`, which a cancel cannot
    stop; a handshake that then succeeds hands its socket to nobody: a ResourceWarning, and the
    socket open until the garbage collector finds it.)"""
    server_tls, client = _tls_pair(ca, "127.0.0.1")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(3.0)  # the thread below ends even if the client never comes
    port = listener.getsockname()[1]
    endpoint = Endpoint.from_url(f"https://127.0.0.1:{port}", token="t", tls=client)

    def slow_tls_server() -> float | None:
        """Accept, wait, shake hands: seconds until the client's end closed, None if it did not."""
        conn, _ = listener.accept()
        try:
            time.sleep(0.3)  # the client gives up meanwhile
            with server_tls.wrap_socket(conn, server_side=True) as tls:
                tls.settimeout(2.0)
                started = time.monotonic()
                with contextlib.suppress(ConnectionError):
                    while tls.recv(1024):
                        pass
                return time.monotonic() - started
        except TimeoutError:
            return None
        except OSError:
            return 0.0  # the handshake failed: the client had closed already
        finally:
            conn.close()

    try:
        async with asyncio.timeout(LIMIT_S):
            serving = asyncio.create_task(asyncio.to_thread(slow_tls_server))
            opening = asyncio.create_task(UploadConnection.open(endpoint, timeout_s=2))
            await asyncio.sleep(0.1)
            opening.cancel()
            with pytest.raises(asyncio.CancelledError):
                await opening
            closed_after = await serving
    finally:
        listener.close()
    assert closed_after is not None, "the client's socket stayed open after the cancel"


async def test_a_tls_download_closed_mid_body_is_cut_not_left_to_the_deadline(
    ca: trustme.CA,
) -> None:
    """Over TLS the server ends a download after 2 of 4 MB with close_notify and waits for the
    client's (as asyncio, and many TLS stacks, do before their FIN): StreamCut at once. The
    alert is too small to reach the raised SO_RCVLOWAT; without the quiet-spell timer the client
    never woke, and the download returned False at the deadline as if the link were merely
    slow."""
    started = time.monotonic()
    cut, _ = await cut_download(reset=False, tls=_tls_pair(ca, "127.0.0.1"))
    assert str(cut) == "download cut short: 2000000 of 4000000 bytes"
    assert time.monotonic() - started < 2.5  # well before the 3 s deadline
