"""Refuse oversized request bodies before they are read into memory.

FastAPI reads a whole body before any dependency runs, and uvicorn sets no limit, so the check
lives in ASGI middleware: a declared Content-Length over the limit is refused at once, and a
chunked body is counted as it arrives and cut off when it passes the limit.

Where the limit is `advertised`, every answer on its paths (413 included) carries it in a
`ReadyNet-Max-Body-Bytes` header, so agents size their batches under it.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from collector.api.errors import BODY_TOO_LARGE, UNSUPPORTED_ENCODING

# The response header naming the body limit (agent/uploader.py reads it).
MAX_BODY_HEADER = "ReadyNet-Max-Body-Bytes"


class _TooLarge(HTTPException):
    # An HTTPException on purpose: FastAPI re-raises those from body reading (others become a
    # 400 "error parsing the body"), and its handler answers 413 with our fixed detail.
    def __init__(self) -> None:
        super().__init__(413, BODY_TOO_LARGE)


class BodySizeLimit:
    """Limit the body of requests whose path starts with one of `prefixes` to `max_bytes`."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        prefixes: tuple[str, ...],
        advertised: bool = False,
    ) -> None:
        self._app = app
        self._max_bytes = max_bytes
        self._prefixes = prefixes
        self._header = (MAX_BODY_HEADER.lower().encode(), str(max_bytes).encode())
        self._advertised = advertised

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self._prefixes):
            await self._app(scope, receive, send)
            return
        if self._advertised:
            send = self._advertising(send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self._max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self._max_bytes:
                raise _TooLarge
            return message

        try:
            await self._app(scope, counting_receive, send)
        except _TooLarge:
            await self._refuse(scope, receive, send)

    def _advertising(self, send: Send) -> Send:
        async def advertise(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), self._header]}
            await send(message)

        return advertise

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse({"detail": BODY_TOO_LARGE}, status_code=413)
        await response(scope, receive, send)


async def uncompressed_body(request: Request) -> bytes:
    """The request's body, read whole; 415 if it comes with a content encoding (we parse the
    bytes as sent and never decompress, so a gzip bomb has nothing to open)."""
    if request.headers.get("content-encoding", "identity").lower() != "identity":
        raise HTTPException(415, UNSUPPORTED_ENCODING)
    return await request.body()


async def small_body(request: Request, max_bytes: int) -> bytes:
    """A small body (a slot request, a heartbeat), refused with 413 past `max_bytes` unread."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise HTTPException(413, BODY_TOO_LARGE, headers={"Connection": "close"})
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise HTTPException(413, BODY_TOO_LARGE, headers={"Connection": "close"})
    return bytes(body)
