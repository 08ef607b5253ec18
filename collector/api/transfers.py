"""Speed-test transfers held to a limiter: downloads of the shared payload, counted uploads.

Shared by the agents' on-net endpoints (`routes/speedtest.py`) and the classroom's LibreSpeed
endpoints (`routes/librespeed.py`). A download streams views into the collector's one
preallocated random payload, so its bytes are never allocated per request; an upload is read and
discarded piece by piece. Both charge their bytes to a `Transfer` as they move and are held to a
`RateFloor`: a transfer that runs out of budget, or a client too slow to keep up, is cut off.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator

from fastapi import HTTPException, Request
from fastapi.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from collector.api.errors import BODY_TIMEOUT, BODY_TOO_LARGE, SPEEDTEST_BUDGET
from collector.api.speedtest_limits import (
    Direction,
    LimitReached,
    RateFloor,
    SpeedtestLimiter,
    TooSlow,
    Transfer,
)

# Slices of the shared payload: a client that stops reading pins at most one slice plus
# uvicorn's write buffer (64 KiB) until the floor rate cuts it off.
CHUNK_BYTES = 256 * 1024
# uvicorn's own logger, so these lines land in the server log in the server's format.
logger = logging.getLogger("uvicorn.error")


def too_many(detail: str, retry_after_s: int, **headers: str) -> HTTPException:
    return HTTPException(429, detail, headers={"Retry-After": str(retry_after_s), **headers})


def open_transfer(
    limiter: SpeedtestLimiter,
    *,
    holder: int,
    direction: Direction,
    need_bytes: int,
    details: dict[str, str] | None = None,
) -> Transfer:
    """Admit a transfer for `holder` (an agent or a school), or raise 429.

    `details` maps the limiter's fixed 429 texts to the caller's own, when its holder is not an
    agent.
    """
    try:
        return limiter.open(agent_id=holder, direction=direction, need_bytes=need_bytes)
    except LimitReached as exc:
        detail = (details or {}).get(exc.detail, exc.detail)
        raise too_many(detail, exc.retry_after_s) from None


async def payload_slices(payload: memoryview, size: int) -> AsyncIterator[memoryview]:
    """`size` bytes as views into `payload`, repeated as often as needed: nothing is copied."""
    remaining = size
    while remaining > 0:
        for start in range(0, len(payload), CHUNK_BYTES):
            piece = payload[start : start + min(CHUNK_BYTES, remaining)]
            remaining -= len(piece)
            yield piece
            if remaining == 0:
                return


def payload_download(
    request: Request,
    limiter: SpeedtestLimiter,
    *,
    holder: int,
    size: int,
    who: str,
    headers: dict[str, str],
    details: dict[str, str] | None = None,
) -> MeteredDownload:
    """Admit a download of `size` bytes of the app's shared payload for `holder`, or raise 429."""
    payload: bytes = request.app.state.speedtest_payload
    floor = RateFloor.for_limits(limiter.limits)
    # Opened last: the response closes the transfer once it has been sent.
    transfer = open_transfer(
        limiter, holder=holder, direction=Direction.DOWNLOAD, need_bytes=size, details=details
    )
    return MeteredDownload(
        payload_slices(memoryview(payload), size),
        transfer=transfer,
        floor=floor,
        who=who,
        headers={"Content-Length": str(size), **headers},
    )


class MeteredDownload(StreamingResponse):
    """The payload, charged to a budget and held to the floor rate as it is sent.

    A download that runs out of budget or falls below the floor ends short of its
    Content-Length: returning without the final body message makes uvicorn close the connection,
    the only way left to stop once the status line has gone out. `who` names the holder in the
    log line that says so (never a secret: no token, no classroom code).
    """

    def __init__(
        self,
        content: AsyncIterator[memoryview],
        *,
        transfer: Transfer,
        floor: RateFloor,
        who: str,
        headers: dict[str, str],
    ) -> None:
        super().__init__(content, media_type="application/octet-stream", headers=headers)
        self._transfer = transfer
        self._floor = floor
        self._who = who

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
        logger.warning("speed-test download of %s cut short: %s", self._who, reason)


async def receive_upload(
    request: Request,
    limiter: SpeedtestLimiter,
    *,
    holder: int,
    max_bytes: int,
    details: dict[str, str] | None = None,
) -> int:
    """Admit an upload for `holder`, then read, count and discard its body; its byte count.

    A declared Content-Length over `max_bytes` is refused (413) before a byte is read; a chunked
    body cannot say its size, so it needs only some budget left to start.
    """
    declared = request.headers.get("content-length", "")
    declared_bytes = int(declared) if declared.isdigit() else None
    if declared_bytes is not None and declared_bytes > max_bytes:
        raise HTTPException(413, BODY_TOO_LARGE, headers={"Connection": "close"})
    transfer = open_transfer(
        limiter,
        holder=holder,
        direction=Direction.UPLOAD,
        need_bytes=1 if declared_bytes is None else declared_bytes,
        details=details,
    )
    try:
        return await count_body(
            request.receive,
            transfer,
            RateFloor.for_limits(limiter.limits),
            max_bytes=max_bytes,
            budget_detail=(details or {}).get(SPEEDTEST_BUDGET, SPEEDTEST_BUDGET),
        )
    finally:
        transfer.close()


async def count_body(
    receive: Receive,
    transfer: Transfer,
    floor: RateFloor,
    *,
    max_bytes: int,
    budget_detail: str,
) -> int:
    """Read, count and discard the body; stop at the first piece that breaks a limit.

    Over `max_bytes` is 413, past the budget 429 with `budget_detail`, below the floor rate 408.
    """
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
            raise too_many(budget_detail, transfer.retry_after_s(len(body)), **close)
        floor.moved(len(body))
        if not message.get("more_body", False):
            return received
