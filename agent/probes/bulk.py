"""HTTP/1.1 connections for the on-net test's bulk streams and round trips, below httpx.

Through httpx a 64 KiB read costs about 120 µs of Python and a round trip about 1.4 ms of CPU:
at 1 Gbit/s the agent spent 8 times iperf3's CPU to move the same bytes, and the Python time landed
inside every timed round trip. Here each stream is one kept connection driven by an asyncio
protocol:

- a download body is read into one buffer shared by every stream and never looked at, and the
  socket wakes the loop only once `SO_RCVLOWAT` bytes are queued, not for every segment;
- an upload stream is a thread blocked in sendfile(2) (`UploadConnection`), sending from a
  memfd of random bytes (random, so a compressing middlebox cannot flatter the link): no event
  loop wake-up per write, and the body is never copied through Python;
- bytes moved are read from the kernel (`TCP_INFO`: bytes received, bytes the collector
  acknowledged), so the wake-up sizes change what the test costs, not what it measures. Where
  TCP_INFO is missing (not Linux), the bytes read or handed over are counted instead.

h11 writes every request head and parses every answer; only a 200 download's body bypasses it.

Example:
    >>> endpoint = Endpoint.from_url("http://127.0.0.1:8080", token="...")
    >>> async with await Connection.open(endpoint) as conn:
    ...     status, body = await conn.request("GET", "/api/v1/speedtest/ping")
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import socket
import ssl
import struct
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import BinaryIO, Literal, Protocol, Self
from urllib.parse import urlsplit

import h11

Direction = Literal["down", "up"]

# One receive buffer for every download stream: bodies are counted, never looked at, and the
# event loop reads one stream at a time.
RECEIVE_BUFFER_BYTES = 1024 * 1024
# A download stream wakes the loop once this much is queued (or the body's end is near).
RECEIVE_LOWAT_BYTES = 1024 * 1024
# Near a body's end the low-water mark goes back to one byte, so the last bytes never wait. The
# slack covers a TLS record the decryptor already holds in part (16 KiB plus its overhead).
END_SLACK_BYTES = 32 * 1024
# Over TLS, with no wake-up for this long, a download wakes for every byte again (see _count).
LOWAT_QUIET_S = 0.2
# The kernel takes more of an upload once less than this is unsent (fewer, larger wake-ups).
NOTSENT_LOWAT_BYTES = 4 * 1024 * 1024
# Random bytes an upload is sent from, again and again; one sendfile call sends at most this.
UPLOAD_SOURCE_BYTES = 4 * 1024 * 1024
# An answer kept in memory (a ping, an upload's receipt, an error) is cut at this size.
MAX_ANSWER_BYTES = 64 * 1024
# struct tcp_info (linux/tcp.h): tcpi_bytes_received follows tcpi_bytes_acked at offset 120.
_TCP_INFO_BYTES = struct.Struct("=QQ")
_TCP_INFO_OFFSET = 120
_TCP_INFO = getattr(socket, "TCP_INFO", None)
_RCVLOWAT = getattr(socket, "SO_RCVLOWAT", None)
_NOTSENT_LOWAT = getattr(socket, "TCP_NOTSENT_LOWAT", None)


class HttpStatusError(Exception):
    """The collector answered with a status other than 2xx."""

    def __init__(self, status: int) -> None:
        super().__init__(f"collector answered HTTP {status}")
        self.status = status


class StreamCut(Exception):
    """The connection ended before a download's promised length."""


class ProtocolFault(Exception):
    """The connection closed early or the answer was not HTTP/1.1 we can read."""


@dataclass(frozen=True)
class Endpoint:
    """Where the collector listens, and the headers every request carries."""

    host: str
    port: int
    tls: ssl.SSLContext | None
    headers: tuple[tuple[str, str], ...]

    @classmethod
    def from_url(cls, url: str, *, token: str, tls: ssl.SSLContext | None = None) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        if parts.scheme == "https" and tls is None:
            raise ValueError("an https collector needs a TLS context")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(
            host=parts.hostname,
            port=port,
            tls=tls if parts.scheme == "https" else None,
            headers=(
                ("Host", parts.netloc.rsplit("@", 1)[-1]),
                ("Authorization", f"Bearer {token}"),
                ("User-Agent", "readynet-agent"),
            ),
        )


class UploadSource:
    """`UPLOAD_SOURCE_BYTES` random bytes that uploads are sent from, again and again.

    In an anonymous file for sendfile(2) (not in the resident set); in memory for a TLS
    collector (`in_memory`), since sendfile cannot encrypt.
    """

    def __init__(self, *, in_memory: bool = False) -> None:
        data = os.urandom(UPLOAD_SOURCE_BYTES)
        self.file: BinaryIO = _anonymous_file()
        self.file.write(data)
        self.file.flush()
        self._memory = memoryview(data) if in_memory else None

    def memory(self) -> memoryview:
        if self._memory is None:
            raise RuntimeError("an UploadSource for TLS needs in_memory=True")
        return self._memory

    def close(self) -> None:
        self.file.close()


def _anonymous_file() -> BinaryIO:
    if hasattr(os, "memfd_create"):
        return io.FileIO(os.memfd_create("readynet-upload"), "w+b")
    return tempfile.TemporaryFile()  # pragma: no cover - not Linux


@dataclass
class _Answer:
    status: int
    body: bytes


class _ClientProtocol(asyncio.BufferedProtocol):
    """Reads answers for `Connection`: through h11, or counted in bulk for a 200 download."""

    def __init__(self, buffer: memoryview, *, tls: bool) -> None:
        self._tls = tls
        self._buffer = buffer
        self._h11 = h11.Connection(h11.CLIENT)
        self._waiter: asyncio.Future[_Answer] | None = None
        self._status = 0
        self._body = bytearray()
        self._bulk = False  # the request is a download: a 200 body is counted, not kept
        self._bulk_left: int | None = None  # bytes of a 200 download body still to come
        self._bulk_size = 0
        self.transport: asyncio.Transport | None = None
        self.received = 0  # body bytes read, for when TCP_INFO is missing
        self.closed: BaseException | None = None
        self.on_lost: Callable[[], object] | None = None  # the socket is still open then
        self._watchdog: asyncio.TimerHandle | None = None
        self._lowat = 1  # the socket's SO_RCVLOWAT (the kernel's default)

    # -- what Connection asks for ---------------------------------------------------------

    def expect(self, *, bulk: bool) -> asyncio.Future[_Answer]:
        """A fresh h11 state for the next request; the future its answer completes."""
        self._h11 = h11.Connection(h11.CLIENT)
        self._status = 0
        self._body = bytearray()
        self._bulk = bulk
        self._bulk_left = None
        self._waiter = asyncio.get_running_loop().create_future()
        if self.closed is not None:
            self._fail(ProtocolFault(f"connection closed: {self.closed}"))
        return self._waiter

    @property
    def status(self) -> int:
        """The status of the answer being read (0 before its head)."""
        return self._status

    def head(self, event: h11.Request) -> bytes:
        data = self._h11.send(event)
        assert data is not None
        return data

    # -- asyncio callbacks ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        if self._bulk_left is not None:
            self._count(nbytes)
            return
        if self._waiter is None or self._waiter.done():
            # Nothing is asked: bytes now are a server out of step (or a late answer).
            self._broken(ProtocolFault(f"{nbytes} bytes nobody asked for"))
            return
        try:
            self._h11.receive_data(bytes(self._buffer[:nbytes]))
            self._next_events()
        except h11.RemoteProtocolError as exc:
            self._fail(ProtocolFault(f"unreadable answer: {exc}"))
            self._abort()

    def eof_received(self) -> bool | None:
        self._at_close(None)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.on_lost is not None:
            self.on_lost()
        if self._watchdog is not None:
            self._watchdog.cancel()
        self._at_close(exc)

    # -- reading answers ------------------------------------------------------------------

    def _next_events(self) -> None:
        while self._waiter is not None and not self._waiter.done():
            event = self._h11.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Response):
                self._status = event.status_code
                if self._bulk and event.status_code == 200:
                    length = _content_length(event.headers)
                    if length is None or _header(event.headers, b"transfer-encoding"):
                        raise h11.RemoteProtocolError("a download without Content-Length framing")
                    if length == 0:
                        continue  # no body: h11's EndOfMessage completes the answer
                    self._bulk_size = length
                    self._bulk_left = length
                    # Body bytes that came with the head are in h11's buffer: count them too.
                    self._drain_h11_body()
                    return
            elif isinstance(event, h11.Data):
                room = MAX_ANSWER_BYTES - len(self._body)
                self._body += event.data[: max(0, room)]
            elif isinstance(event, h11.EndOfMessage):
                self._waiter.set_result(_Answer(self._status, bytes(self._body)))
                if self._h11.trailing_data[0]:
                    self._broken(ProtocolFault("bytes after the answer"))
            elif isinstance(event, h11.ConnectionClosed):
                self._fail(ProtocolFault("connection closed before the answer"))

    def _drain_h11_body(self) -> None:
        while self._bulk_left is not None:
            event = self._h11.next_event()
            if isinstance(event, h11.Data):
                # h11 stops at the promised length: bytes past it came in the same read.
                ends = len(event.data) == self._bulk_left
                self._count(len(event.data) + (len(self._h11.trailing_data[0]) if ends else 0))
            else:
                return  # NEED_DATA: the rest bypasses h11

    def _count(self, nbytes: int) -> None:
        assert self._bulk_left is not None
        self.received += nbytes
        self._bulk_left -= nbytes
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._bulk_left < 0:
            self._fail(ProtocolFault("the collector sent more than it promised"))
            self._abort()
        elif self._bulk_left == 0:
            self._bulk_left = None
            self._low_water(1)
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_result(_Answer(self._status, b""))
        else:
            near_end = self._bulk_left <= RECEIVE_LOWAT_BYTES + END_SLACK_BYTES
            self._low_water(1 if near_end else RECEIVE_LOWAT_BYTES)
            if self._tls:
                # A TLS close_notify cutting the body short is below the low-water mark and
                # never wakes the loop (the server sends its FIN only after our reply): after
                # a quiet spell wake for every byte, until the next read. Plain TCP needs no
                # such timer: a FIN always wakes, and bytes left unread are counted anyway.
                loop = asyncio.get_running_loop()
                self._watchdog = loop.call_later(LOWAT_QUIET_S, self._low_water, 1)

    def _broken(self, reason: BaseException) -> None:
        if self.closed is None:
            self.closed = reason
        self._abort()

    def _at_close(self, exc: BaseException | None) -> None:
        if self.closed is None:
            self.closed = exc or ConnectionResetError("closed by the collector")
        if self._waiter is None or self._waiter.done():
            return
        if self._bulk_left is not None:
            done = self._bulk_size - self._bulk_left
            self._fail(StreamCut(f"download cut short: {done} of {self._bulk_size} bytes"))
            return
        try:
            self._h11.receive_data(b"")  # an answer delimited by the close ends here
            self._next_events()
        except h11.RemoteProtocolError as error:
            self._fail(ProtocolFault(f"connection closed mid-answer: {error}"))
        self._fail(ProtocolFault(f"connection closed: {self.closed}"))

    def _fail(self, exc: BaseException) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
            self._waiter.exception()  # retrieved: a stream that gave up must not log it

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _low_water(self, nbytes: int) -> None:
        if nbytes == self._lowat:
            return
        self._lowat = nbytes
        sock = None if self.transport is None else self.transport.get_extra_info("socket")
        if sock is not None and _RCVLOWAT is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, _RCVLOWAT, nbytes)


class _KernelCount:
    """Bytes a socket has had acknowledged and received since it was opened, per TCP_INFO."""

    def __init__(self, sock: socket.socket | None) -> None:
        self._sock = sock
        # The last counts read stand once the socket is closed.
        self._start = self._last = self._read()

    def moved(self, direction: Direction) -> int | None:
        """None without TCP_INFO (not Linux, or a kernel older than 4.1)."""
        self._last = self._read() or self._last
        if self._last is None or self._start is None:
            return None
        (acked, received), (acked0, received0) = self._last, self._start
        return received - received0 if direction == "down" else acked - acked0

    def _read(self) -> tuple[int, int] | None:
        if self._sock is None or _TCP_INFO is None:
            return None
        try:
            info = self._sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, 256)
        except OSError:
            return None
        if len(info) < _TCP_INFO_OFFSET + _TCP_INFO_BYTES.size:
            return None
        acked, received = _TCP_INFO_BYTES.unpack_from(info, _TCP_INFO_OFFSET)
        return int(acked), int(received)


def _header(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> bool:
    return any(key == name for key, _ in headers)


def _content_length(headers: Sequence[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            return int(value)
    return None


class _ClosedOnExit:
    """`async with` closes the connection (`close()` of the subclass)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        raise NotImplementedError


class Connection(_ClosedOnExit):
    """One kept-alive HTTP/1.1 connection to the collector."""

    def __init__(
        self,
        endpoint: Endpoint,
        transport: asyncio.Transport,
        protocol: _ClientProtocol,
    ) -> None:
        self._endpoint = endpoint
        self._transport = transport
        self._protocol = protocol
        self._kernel = _KernelCount(transport.get_extra_info("socket"))
        protocol.on_lost = lambda: self._kernel.moved("down")  # last counts before the close
        self._requests: dict[tuple[str, str, tuple[tuple[str, str], ...]], h11.Request] = {}

    @classmethod
    async def open(
        cls, endpoint: Endpoint, *, timeout_s: float, buffer: memoryview | None = None
    ) -> Connection:
        """Connect within `timeout_s`; `buffer` is the receive buffer (shared by downloads)."""
        loop = asyncio.get_running_loop()
        receive = buffer if buffer is not None else memoryview(bytearray(MAX_ANSWER_BYTES))
        async with asyncio.timeout(timeout_s):
            transport, protocol = await loop.create_connection(
                lambda: _ClientProtocol(receive, tls=endpoint.tls is not None),
                endpoint.host,
                endpoint.port,
                ssl=endpoint.tls,
                server_hostname=endpoint.host if endpoint.tls is not None else None,
            )
        assert isinstance(transport, asyncio.Transport)
        # asyncio sets TCP_NODELAY itself; no bulk body is sent here (uploads: UploadConnection).
        return cls(endpoint, transport, protocol)

    def close(self) -> None:
        self._transport.abort()

    def moved(self, direction: Direction) -> int:
        """Bytes this connection has moved in `direction`, heads included where TCP counts."""
        counted = self._kernel.moved(direction)
        if counted is not None:
            return counted
        return self._protocol.received if direction == "down" else 0

    async def request(self, method: str, target: str, *, timeout_s: float) -> bytes:
        """A request without a body; its answer's body (cut at `MAX_ANSWER_BYTES`)."""
        answer = self._protocol.expect(bulk=False)
        self._transport.write(self._head(method, target, ()))
        async with asyncio.timeout(timeout_s):
            return _checked(await answer)

    @property
    def closed(self) -> bool:
        return self._protocol.closed is not None

    async def download(self, target: str, *, deadline: float) -> bool:
        """GET a body, counted and discarded; False when `deadline` came first."""
        answer = self._protocol.expect(bulk=True)
        self._transport.write(self._head("GET", target, ()))
        try:
            async with asyncio.timeout_at(_loop_time(deadline)):
                done = await answer
        except TimeoutError:
            if self._protocol.status and not 200 <= self._protocol.status < 300:
                raise HttpStatusError(self._protocol.status) from None  # the head said why
            return False
        _checked(done)
        return True

    def _head(self, method: str, target: str, extra: tuple[tuple[str, str], ...]) -> bytes:
        key = (method, target, extra)
        event = self._requests.get(key)
        if event is None:
            # Built and validated once per connection: a round trip repeats the same request
            # every few hundred ms, and validating its headers was a fifth of its Python.
            event = h11.Request(
                method=method, target=target, headers=[*self._endpoint.headers, *extra]
            )
            self._requests[key] = event
        return self._protocol.head(event)


def _loop_time(deadline: float) -> float:
    """A `time.monotonic()` deadline on the event loop's clock (asyncio.timeout_at's)."""
    return asyncio.get_running_loop().time() + (deadline - time.monotonic())


def _checked(answer: _Answer) -> bytes:
    if not 200 <= answer.status < 300:
        raise HttpStatusError(answer.status)
    return answer.body


class UploadConnection(_ClosedOnExit):
    """One upload connection driven by a thread of its own, blocked in sendfile(2).

    Through the event loop every write wake-up cost about 50 us of Python: at 500 Mbit/s the
    uploads alone took twice iperf3's CPU. A thread blocked in the kernel costs nothing until
    the socket has room, and sendfile never copies the body through Python. The deadline is kept
    by the event loop: it shuts the socket down, which ends the blocked call at once.
    """

    def __init__(self, endpoint: Endpoint, sock: socket.socket) -> None:
        self._endpoint = endpoint
        self._sock = sock
        self._kernel = _KernelCount(sock)
        # One worker: requests on a connection are sequential, and closing the socket is queued
        # behind the request that may still be using it.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="readynet-upload")
        self._sent = 0  # body bytes handed over, for when TCP_INFO is missing
        self._stopped = False
        self.closed = False

    @classmethod
    async def open(cls, endpoint: Endpoint, *, timeout_s: float) -> UploadConnection:
        opening = asyncio.ensure_future(asyncio.to_thread(_blocking_socket, endpoint, timeout_s))
        try:
            sock = await asyncio.shield(opening)
        except asyncio.CancelledError:
            # The thread cannot be stopped: a socket it still opens is closed, not dropped.
            opening.add_done_callback(_close_opened)
            raise
        return cls(endpoint, sock)

    def moved(self, direction: Direction) -> int:
        counted = self._kernel.moved(direction)
        if counted is not None:
            return counted
        return self._sent if direction == "up" else 0

    async def upload(
        self, target: str, size: int, source: UploadSource, *, deadline: float, timeout_s: float
    ) -> bool:
        """POST `size` bytes from `source`; False when `deadline` came first.

        At the deadline the body is left unfinished and the connection is shut down: close it.
        """
        loop = asyncio.get_running_loop()
        head = h11.Connection(h11.CLIENT)
        request = h11.Request(
            method="POST",
            target=target,
            headers=[*self._endpoint.headers, ("Content-Length", str(size))],
        )
        work = loop.run_in_executor(
            self._worker, self._post, head, request, size, source, timeout_s
        )
        work.add_done_callback(_retrieved)
        try:
            done, _ = await asyncio.wait({work}, timeout=max(0.0, deadline - time.monotonic()))
        except asyncio.CancelledError:
            self._stop()
            raise
        if not done:
            # Stop sending only: an answer already queued (429, 413) can still be read.
            self._stop(how=socket.SHUT_WR)
            done, _ = await asyncio.wait({work}, timeout=0.1)
            self._stop()
            if done and work.exception() is None:
                _checked(work.result())
            return False
        _checked(work.result())
        return True

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._stop()
        self._worker.submit(self._sock.close)  # after a request still running in the worker
        self._worker.shutdown(wait=False)

    def _stop(self, how: int = socket.SHUT_RDWR) -> None:
        self._stopped = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(how)  # wakes a blocked sendfile or recv

    # -- in the worker thread -------------------------------------------------------------

    def _post(
        self,
        conn: h11.Connection,
        request: h11.Request,
        size: int,
        source: UploadSource,
        timeout_s: float,
    ) -> _Answer:
        head = conn.send(request)
        assert head is not None
        self._sock.sendall(head)
        try:
            self._send_body(size, source)
        except OSError:
            # The collector may have answered (401, 429) and closed before taking the body;
            # at the deadline, only an answer already there counts.
            wait_s = 0.05 if self._stopped else 1.0
            with contextlib.suppress(OSError, ProtocolFault):
                answer = _read_answer(self._sock, conn, timeout_s=wait_s)
                if self._stopped:
                    return answer  # upload() raises it if it is an error, else returns False
                _checked(answer)
            raise
        return _read_answer(self._sock, conn, timeout_s=timeout_s)

    def _send_body(self, size: int, source: UploadSource) -> None:
        remaining = size
        while remaining > 0:
            piece = min(remaining, UPLOAD_SOURCE_BYTES)
            if self._endpoint.tls is None:
                # The bytes are random: where in the source a piece starts does not matter.
                sent = os.sendfile(self._sock.fileno(), source.file.fileno(), 0, piece)
                if sent == 0:
                    raise ConnectionResetError("the collector stopped taking the upload")
            else:
                self._sock.sendall(source.memory()[:piece])  # TLS: sendfile cannot encrypt
                sent = piece
            self._sent += sent
            remaining -= sent


def _blocking_socket(endpoint: Endpoint, timeout_s: float) -> socket.socket:
    sock = socket.create_connection((endpoint.host, endpoint.port), timeout=timeout_s)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if _NOTSENT_LOWAT is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, _NOTSENT_LOWAT, NOTSENT_LOWAT_BYTES)
        if endpoint.tls is not None:
            sock = endpoint.tls.wrap_socket(sock, server_hostname=endpoint.host)
        sock.settimeout(None)  # blocking: sendfile needs it; the deadline shuts the socket
    except BaseException:
        sock.close()
        raise
    return sock


def _read_answer(sock: socket.socket, conn: h11.Connection, *, timeout_s: float) -> _Answer:
    """The answer to the request `conn` sent, read with blocking calls within `timeout_s`."""
    status = 0
    body = bytearray()
    sock.settimeout(timeout_s)
    try:
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise ProtocolFault(f"unreadable answer: {exc}") from None
            if event is h11.NEED_DATA:
                conn.receive_data(sock.recv(MAX_ANSWER_BYTES))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += event.data[: max(0, MAX_ANSWER_BYTES - len(body))]
            elif isinstance(event, h11.EndOfMessage):
                return _Answer(status, bytes(body))
            elif isinstance(event, h11.ConnectionClosed):
                raise ProtocolFault("connection closed before the answer")
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(None)


def _close_opened(opening: asyncio.Future[socket.socket]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        opening.result().close()


def _retrieved(work: asyncio.Future[_Answer]) -> None:
    # A request given up at the deadline fails in its thread; nobody needs to hear of it.
    if not work.cancelled():
        work.exception()


class Moving(Protocol):
    """A connection that counts what it moved (`Connection`, `UploadConnection`)."""

    def moved(self, direction: Direction) -> int: ...

    def close(self) -> None: ...


class PhaseMeter:
    """Bytes moved in one direction by a phase's connections: what `Sampler` reads."""

    def __init__(self, direction: Direction) -> None:
        self._direction = direction
        self._open: list[Moving] = []
        self._closed = 0

    def watch(self, conn: Moving) -> None:
        self._open.append(conn)

    def forget(self, conn: Moving) -> None:
        """Keep what `conn` moved, then stop asking it (call before closing it)."""
        self._closed += conn.moved(self._direction)
        self._open.remove(conn)

    @property
    def total(self) -> int:
        return self._closed + sum(conn.moved(self._direction) for conn in self._open)
