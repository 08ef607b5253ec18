"""The collector's HTTP server: uvicorn, with deadlines for slow clients and a connection limit.

Left to itself uvicorn (h11) gives a client unlimited time to send a request head or a body,
and accepts connections until accept() fails for want of file descriptors: 2,000 half-open
connections were held for as long as their clients liked, and under the default 1,024 open
files 1,100 of them made accept() fail. `readynet-collector serve` and the test servers both
build their server here, so the tests run what production runs:

- Head deadline: a request head must be complete within `header_timeout_s` of the connection
  opening or of the previous response on it. Bytes trickling in do not extend it (slowloris). A
  connection that misses it is closed without an answer.
- Body deadline (`BodyDeadline`): a pause longer than `body_idle_timeout_s` between two pieces
  of a body, or a body that falls below `body_min_bytes_per_s` on average once that grace has
  passed (Apache mod_reqtimeout's rule), is answered 408 with a fixed detail and the connection
  is closed.
- Connection limit: while `max_connections` are open, a new connection is answered 503 with
  `Retry-After` at once, before its request is read, and half-closed; what the client still
  sends is dropped until it closes (so a client sending a body reads the 503, not a reset):
  for `REFUSAL_LINGER_S` after the last bytes arrived, `MAX_REFUSAL_LINGER_S` in all, at most
  `MAX_LINGERING` connections at once, beyond them closed at once. A flood then costs one
  short-lived descriptor per connection and never starves accept().
- Open files: `serve` raises the soft RLIMIT_NOFILE to the hard limit. The open connections
  and a burst of new ones (four listen backlogs of 2,048) must fit in it, about 12,300 files by
  default; where they cannot, `build_config` lowers `max_connections` and the backlog and warns.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import socket
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

import uvicorn
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    _HAVE_HTTPTOOLS = True
except ImportError:  # httptools is optional: h11 works everywhere, only slower
    HttpToolsProtocol = H11Protocol  # type: ignore[assignment,misc]
    _HAVE_HTTPTOOLS = False
from uvicorn.server import ServerState

from collector.api.errors import BODY_TIMEOUT, TOO_MANY_CONNECTIONS
from collector.process import (
    DEFAULT_BACKLOG,
    fit_to_open_files,
    raise_open_files_limit,
    tune_interpreter,
)
from collector.settings import CollectorSettings

# uvicorn's own logger, so these lines land in the server log in the server's format.
logger = logging.getLogger("uvicorn.error")

RETRY_AFTER_S = 5
# A refused connection is read (and the bytes dropped) this long at most after the 503, so that
# a client still sending its request reads the 503 instead of a reset; at most this many at once
# (beyond them, closed at once as before: a flood must not hold descriptors).
REFUSAL_LINGER_S = 2.0
# A refused client still sending (a large batch on a slow link) is read this long at most.
MAX_REFUSAL_LINGER_S = 30.0
MAX_LINGERING = 256

_REFUSAL_BODY = json.dumps({"detail": TOO_MANY_CONNECTIONS}).encode()
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"content-type: application/json\r\n"
    b"retry-after: %d\r\n"
    b"connection: close\r\n"
    b"content-length: %d\r\n"
    b"\r\n%s"
) % (RETRY_AFTER_S, len(_REFUSAL_BODY), _REFUSAL_BODY)


@dataclass(frozen=True)
class TransportLimits:
    """The settings that bound what one client can hold on to; see the module docstring."""

    header_timeout_s: float
    body_idle_timeout_s: float
    body_min_bytes_per_s: float
    max_connections: int
    keep_alive_s: int

    @classmethod
    def from_settings(cls, settings: CollectorSettings) -> TransportLimits:
        return cls(
            header_timeout_s=settings.header_timeout_s,
            body_idle_timeout_s=settings.body_idle_timeout_s,
            body_min_bytes_per_s=settings.body_min_bytes_per_s,
            max_connections=settings.max_connections,
            keep_alive_s=settings.keep_alive_s,
        )


class _Refusals:
    """Whether a server is at its connection limit, so the log says so once per episode."""

    def __init__(self) -> None:
        self.active = False
        self.count = 0
        self.lingering = 0


if TYPE_CHECKING:
    # The mixin below runs on top of either of uvicorn's protocols; they share these members.
    _ProtocolBase = H11Protocol
else:
    _ProtocolBase = object


class _Guard(_ProtocolBase):
    """A request-head deadline and a connection limit, for either of uvicorn's HTTP protocols.

    uvicorn makes one instance per connection; bind limits with `guarded_protocol(limits)`.
    """

    LIMITS: ClassVar[TransportLimits]
    REFUSALS: ClassVar[_Refusals]

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._refused = False
        self._linger: asyncio.TimerHandle | None = None
        self._linger_until = 0.0
        self._head_deadline: asyncio.TimerHandle | None = None
        # The request cycle current when the deadline was armed: a new one means a head arrived.
        self._cycle_at_arming: object = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.LIMITS.max_connections:
            self._refuse(transport)
            return
        if self.REFUSALS.active:
            logger.info("below max_connections again; %d refused", self.REFUSALS.count)
            self.REFUSALS.active, self.REFUSALS.count = False, 0
        super().connection_made(transport)
        self._arm_head_deadline()

    def _refuse(self, transport: asyncio.Transport) -> None:
        self._refused = True
        if not self.REFUSALS.active:
            logger.warning(
                "%d connections open (max_connections): answering new ones 503",
                len(self.connections),
            )
            self.REFUSALS.active = True
        self.REFUSALS.count += 1
        # Answered before the request is read. Closed at once with the request unread, the
        # close would be a reset, and a reset drops the 503 from the client's receive buffer
        # (an agent posting a batch saw only "connection reset"). So the answer is followed by
        # a FIN, what the client still sends is read and dropped, and the connection is closed
        # when the client closes its side or after REFUSAL_LINGER_S (a lingering close).
        transport.write(REFUSAL)
        if self.REFUSALS.lingering >= MAX_LINGERING or not transport.can_write_eof():
            transport.close()
            return
        self.REFUSALS.lingering += 1
        self.transport = transport
        transport.write_eof()
        loop = asyncio.get_running_loop()
        self._linger_until = loop.time() + MAX_REFUSAL_LINGER_S
        self._linger = loop.call_later(REFUSAL_LINGER_S, transport.close)

    def _keep_lingering(self) -> None:
        """Bytes still arrive: the client is sending its body; read it a while longer."""
        if self._linger is None:
            return
        loop = asyncio.get_running_loop()
        close_at = min(loop.time() + REFUSAL_LINGER_S, self._linger_until)
        if close_at > self._linger.when():
            self._linger.cancel()
            self._linger = loop.call_at(close_at, self.transport.close)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
            self.REFUSALS.lingering -= 1
        if not self._refused:
            super().connection_lost(exc)

    def eof_received(self) -> None:
        if self._refused:
            self.transport.close()
            return
        super().eof_received()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            self._keep_lingering()
            return
        super().data_received(data)
        self._disarm_once_head_parsed()

    def on_response_complete(self) -> None:
        # Armed before uvicorn parses a pipelined request, so that one disarms it.
        self._arm_head_deadline()
        super().on_response_complete()
        self._disarm_once_head_parsed()

    def _arm_head_deadline(self) -> None:
        self._disarm_head_deadline()
        self._cycle_at_arming = self.cycle
        self._head_deadline = self.loop.call_later(
            self.LIMITS.header_timeout_s, self._head_deadline_passed
        )

    def _disarm_once_head_parsed(self) -> None:
        if self.cycle is not self._cycle_at_arming:
            self._disarm_head_deadline()

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_deadline_passed(self) -> None:
        self._head_deadline = None
        if self.cycle is self._cycle_at_arming and not self.transport.is_closing():
            logger.debug("%s: no complete request head in time; closing", self.client)
            self.transport.close()


class GuardedH11Protocol(_Guard, H11Protocol):
    """uvicorn's pure-Python h11 protocol, guarded."""


# Under mypy the mixin's stand-in base is H11Protocol, whose `cycle` type differs; at run time
# the mixin's base is `object`.
class GuardedHttpToolsProtocol(_Guard, HttpToolsProtocol):  # type: ignore[misc]
    """uvicorn's httptools protocol (C parser), guarded: the default when httptools is there.

    Under a burst of a thousand posts, parsing heads and bodies in h11 was a large share of the
    event loop's work, time in which `/healthz` waited too.
    """


def guarded_protocol(limits: TransportLimits, *, parser: str = "auto") -> type[_Guard]:
    """A protocol class for `uvicorn.Config(http=...)`, bound to `limits` and one server.

    `parser` is "httptools", "h11", or "auto" (httptools when it is installed).
    """
    base: type[_Guard] = GuardedH11Protocol
    if parser == "httptools" or (parser == "auto" and _HAVE_HTTPTOOLS):
        base = GuardedHttpToolsProtocol

    class BoundGuardedProtocol(base):  # type: ignore[valid-type,misc]
        LIMITS = limits
        REFUSALS = _Refusals()

    return BoundGuardedProtocol


class _BodyTimedOut(HTTPException):
    # An HTTPException on purpose: FastAPI re-raises those from body reading (others become a
    # 400 "error parsing the body"), and its handler answers with our detail and headers.
    def __init__(self) -> None:
        super().__init__(408, BODY_TIMEOUT, headers={"Connection": "close"})


class _BodyClock:
    """One request's `receive`, held to the body deadline until the body is complete."""

    def __init__(self, receive: Receive, *, idle_timeout_s: float, min_bytes_per_s: float) -> None:
        self._receive = receive
        self._idle_timeout_s = idle_timeout_s
        self._min_bytes_per_s = min_bytes_per_s
        self._loop = asyncio.get_running_loop()
        self._started = self._loop.time()
        self._received = 0
        self._complete = False

    async def receive(self) -> Message:
        if self._complete:
            # Only http.disconnect comes after the body, and apps may wait for it as long as
            # they like (streaming responses do).
            return await self._receive()
        allowed_until = (
            self._started + self._idle_timeout_s + self._received / self._min_bytes_per_s
        )
        timeout = min(self._idle_timeout_s, allowed_until - self._loop.time())
        try:
            async with asyncio.timeout(max(timeout, 0)):
                message = await self._receive()
        except TimeoutError:
            raise _BodyTimedOut from None
        self._received += len(message.get("body", b""))
        self._complete = not message.get("more_body", False)
        return message


class BodyDeadline:
    """ASGI middleware: answer 408 and close the connection when a request body stalls or trickles.

    The app reads the body as usual; a read that misses the deadline raises an HTTPException,
    which FastAPI answers `{"detail": BODY_TIMEOUT}` with `Connection: close`. Should the app let
    it through, this middleware answers the same.
    """

    def __init__(self, app: ASGIApp, *, idle_timeout_s: float, min_bytes_per_s: float) -> None:
        self._app = app
        self._idle_timeout_s = idle_timeout_s
        self._min_bytes_per_s = min_bytes_per_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        clock = _BodyClock(
            receive, idle_timeout_s=self._idle_timeout_s, min_bytes_per_s=self._min_bytes_per_s
        )
        response_started = False

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._app(scope, clock.receive, tracking_send)
        except _BodyTimedOut as exc:
            if response_started:
                raise
            response = JSONResponse({"detail": exc.detail}, status_code=408, headers=exc.headers)
            await response(scope, receive, send)


def build_config(app: ASGIApp, settings: CollectorSettings, **options: Any) -> uvicorn.Config:
    """The uvicorn config serving `app` within `settings`' limits; `options` go to uvicorn as is.

    Call `raise_open_files_limit()` first: `max_connections` is fitted to the open-files limit
    in force now.
    """
    limits = TransportLimits.from_settings(settings)
    open_files, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    fit = fit_to_open_files(limits.max_connections, open_files)
    config = uvicorn.Config(
        BodyDeadline(
            app,
            idle_timeout_s=limits.body_idle_timeout_s,
            min_bytes_per_s=limits.body_min_bytes_per_s,
        ),
        http=guarded_protocol(replace(limits, max_connections=fit.max_connections)),
        timeout_keep_alive=limits.keep_alive_s,
        backlog=fit.backlog,
        **options,
    )
    # Logged after uvicorn.Config, which sets up logging.
    if fit.backlog < DEFAULT_BACKLOG:
        logger.warning(
            "open-files limit %d: max_connections lowered from %d to %d, listen backlog to %d",
            open_files,
            limits.max_connections,
            fit.max_connections,
            fit.backlog,
        )
    logger.info(
        "request head within %g s; body pauses up to %g s, then at least %g bytes/s; "
        "keep-alive %d s; max_connections %d, listen backlog %d",
        limits.header_timeout_s,
        limits.body_idle_timeout_s,
        limits.body_min_bytes_per_s,
        limits.keep_alive_s,
        fit.max_connections,
        fit.backlog,
    )
    return config


def serve(
    app: ASGIApp, settings: CollectorSettings, *, host: str, port: int, reuse_port: bool = False
) -> None:
    """Serve `app` until stopped, as `readynet-collector serve` does.

    `reuse_port`: bind with SO_REUSEPORT, so that several collector processes (the workers of
    `serve --workers N`) listen on one port and the kernel spreads new connections over them.
    """
    tune_interpreter()
    open_files = raise_open_files_limit()
    config = build_config(app, settings, host=host, port=port, log_level="info")
    logger.info(
        "open files limit %d (was %d, hard limit %d)",
        open_files.soft,
        open_files.before,
        open_files.hard,
    )
    if not reuse_port:
        uvicorn.Server(config).run()
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    uvicorn.Server(config).run(sockets=[sock])
