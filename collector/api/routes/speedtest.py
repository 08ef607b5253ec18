"""On-net speed-test endpoints: agents measure the school → district path (the WAN) here.

Download streams incompressible bytes; upload counts what arrives. Both need an agent token so
the collector cannot be used as a free bandwidth sink by anyone on the network, and both are held
to the per-agent limits of `collector.api.speedtest_limits`: a transfer beyond the open-stream
or byte limits is answered 429 with `Retry-After`, an upload over `speedtest_max_bytes` 413, and
a client that sends or reads below the floor rate is cut off (an upload is answered 408).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from collector.api.deps import AgentDep, CallingAgent
from collector.api.errors import BODY_TIMEOUT, BODY_TOO_LARGE, SPEEDTEST_BUDGET, error_responses
from collector.api.speedtest_limits import (
    Direction,
    LimitReached,
    RateFloor,
    SpeedtestLimiter,
    SpeedtestLimits,
    TooSlow,
    Transfer,
)

router = APIRouter(prefix="/api/v1/speedtest", tags=["speedtest"])
# Slices of the shared payload: a client that stops reading pins at most one slice plus
# uvicorn's write buffer (64 KiB) until the floor rate cuts it off.
CHUNK_BYTES = 256 * 1024
# uvicorn's own logger, so these lines land in the server log in the server's format.
logger = logging.getLogger("uvicorn.error")


async def get_limiter(request: Request) -> SpeedtestLimiter:
    # Async, so it runs on the event loop: get-or-create cannot race. One limiter per app.
    state = request.app.state
    limiter: SpeedtestLimiter | None = getattr(state, "speedtest_limiter", None)
    if limiter is None:
        limiter = SpeedtestLimiter(SpeedtestLimits.from_settings(state.settings))
        state.speedtest_limiter = limiter
    return limiter


LimiterDep = Annotated[SpeedtestLimiter, Depends(get_limiter)]


def _open(
    limiter: SpeedtestLimiter, agent: CallingAgent, direction: Direction, need_bytes: int
) -> Transfer:
    try:
        return limiter.open(agent_id=agent.id, direction=direction, need_bytes=need_bytes)
    except LimitReached as exc:
        raise _too_many(exc.detail, exc.retry_after_s) from None


def _too_many(detail: str, retry_after_s: int, **headers: str) -> HTTPException:
    return HTTPException(429, detail, headers={"Retry-After": str(retry_after_s), **headers})


@router.get("/ping", status_code=204, responses=error_responses(401, 429))
async def ping(agent: AgentDep, limiter: LimiterDep) -> Response:
    # Counted as a download while it is answered: it takes a stream, never budget.
    _open(limiter, agent, Direction.DOWNLOAD, 0).close()
    return Response(status_code=204)


@router.get(
    "/download",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "`bytes` incompressible bytes",
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        },
        **error_responses(401, 422, 429),
    },
)
async def download(
    request: Request,
    agent: AgentDep,
    limiter: LimiterDep,
    size: Annotated[int, Query(alias="bytes", ge=1)],
) -> StreamingResponse:
    if size > request.app.state.settings.speedtest_max_bytes:
        raise HTTPException(422, "requested size exceeds speedtest_max_bytes")
    payload: bytes = request.app.state.speedtest_payload
    floor = RateFloor.for_limits(limiter.limits)
    # Opened last: the response closes the transfer once it has been sent.
    transfer = _open(limiter, agent, Direction.DOWNLOAD, size)
    return _MeteredDownload(
        _slices(memoryview(payload), size),
        transfer=transfer,
        floor=floor,
        agent=agent,
        headers={"Content-Length": str(size), "Cache-Control": "no-store"},
    )


async def _slices(payload: memoryview, size: int) -> AsyncIterator[memoryview]:
    # Views into the one preallocated payload: its bytes are never copied per request.
    remaining = size
    while remaining > 0:
        for start in range(0, len(payload), CHUNK_BYTES):
            piece = payload[start : start + min(CHUNK_BYTES, remaining)]
            remaining -= len(piece)
            yield piece
            if remaining == 0:
                return


class _MeteredDownload(StreamingResponse):
    """The payload, charged to the agent's budget and held to the floor rate as it is sent.

    A download that runs out of budget or falls below the floor ends short of its
    Content-Length: returning without the final body message makes uvicorn close the connection,
    the only way left to stop once the status line has gone out.
    """

    def __init__(
        self,
        content: AsyncIterator[memoryview],
        *,
        transfer: Transfer,
        floor: RateFloor,
        agent: CallingAgent,
        headers: dict[str, str],
    ) -> None:
        super().__init__(content, media_type="application/octet-stream", headers=headers)
        self._transfer = transfer
        self._floor = floor
        self._agent = agent

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._transfer.close()

    async def stream_response(self, send: Send) -> None:
        start: Message = {
            "type": "http.response.start",
            "status": self.status_code,
            "headers": self.raw_headers,
        }
        await send(start)
        async for chunk in self.body_iterator:
            assert isinstance(chunk, memoryview)
            if not self._transfer.take(len(chunk)):
                self._cut("its byte budget ran out")
                return
            if not await self._send_in_time(send, chunk, more_body=True):
                return
            self._floor.moved(len(chunk))
        await self._send_in_time(send, b"", more_body=False)

    async def _send_in_time(self, send: Send, body: bytes | memoryview, *, more_body: bool) -> bool:
        message: Message = {"type": "http.response.body", "body": body, "more_body": more_body}
        try:
            # uvicorn waits for its buffer to drain before it writes (the last, empty message
            # too), so a cancelled send has written nothing and is simply tried again.
            await self._floor.run(functools.partial(send, message))
        except TooSlow:
            self._cut("the client read below the floor rate")
            return False
        return True

    def _cut(self, reason: str) -> None:
        logger.warning(
            "speed-test download of agent %s (id %d) cut short: %s",
            self._agent.name,
            self._agent.id,
            reason,
        )


@router.post("/upload", responses=error_responses(401, 408, 413, 429))
async def upload(request: Request, agent: AgentDep, limiter: LimiterDep) -> dict[str, int]:
    max_bytes: int = request.app.state.settings.speedtest_max_bytes
    declared = request.headers.get("content-length", "")
    declared_bytes = int(declared) if declared.isdigit() else None
    if declared_bytes is not None and declared_bytes > max_bytes:
        # Refused before a byte of the body is read.
        raise HTTPException(413, BODY_TOO_LARGE, headers={"Connection": "close"})
    # A chunked body cannot say its size: it needs only some budget left to start.
    transfer = _open(
        limiter, agent, Direction.UPLOAD, 1 if declared_bytes is None else declared_bytes
    )
    try:
        received = await _count_body(
            request.receive, transfer, RateFloor.for_limits(limiter.limits), max_bytes
        )
    finally:
        transfer.close()
    return {"bytes": received}


async def _count_body(
    receive: Receive, transfer: Transfer, floor: RateFloor, max_bytes: int
) -> int:
    """Read and count the body; stop at the first piece that breaks a limit, reading no further."""
    # The rest of a refused body is never read, so the connection cannot be reused.
    close = {"Connection": "close"}
    received = 0
    while True:
        try:
            # ASGI receive is safe to cancel: a message not yet delivered stays queued.
            message = await floor.run(receive)
        except TooSlow:
            raise HTTPException(408, BODY_TIMEOUT, headers=close) from None
        if message["type"] == "http.disconnect":
            return received  # nobody is left to answer
        body: bytes = message.get("body", b"")
        received += len(body)
        if received > max_bytes:
            raise HTTPException(413, BODY_TOO_LARGE, headers=close)
        if not transfer.take(len(body)):
            raise _too_many(SPEEDTEST_BUDGET, transfer.retry_after_s(len(body)), **close)
        floor.moved(len(body))
        if not message.get("more_body", False):
            return received
