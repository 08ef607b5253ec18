"""Admission: at most `limit` requests inside the application at once; the rest wait outside.

A thousand agents posting at the same instant would otherwise all enter the framework together:
routing, dependencies and parsing for every one of them, a second or more of event-loop work in
one go, during which nothing else (not even `/healthz`) is answered, and most of which is for
requests that will wait seconds for the store anyway. Waiting here costs a few hundred bytes and
no CPU, and requests are admitted in arrival order as earlier ones finish. `/healthz`,
`/readyz` and `/metrics` are never held back: they have their own bounds. Nor are speed-test
transfers (the agents' and LibreSpeed's): they last seconds, are bounded per agent and per
school by the speed-test limits, and a few dozen slow ones must not hold every slot while
result posts wait behind them.
"""

from __future__ import annotations

import anyio
from starlette.types import ASGIApp, Receive, Scope, Send

UNGATED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
UNGATED_PREFIXES = ("/api/v1/speedtest/", "/librespeed/")


class Admission:
    """ASGI middleware letting at most `limit` HTTP requests into `app` at once, FIFO."""

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self._app = app
        self._slots = anyio.CapacityLimiter(limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in UNGATED_PATHS or path.startswith(UNGATED_PREFIXES):
            await self._app(scope, receive, send)
            return
        async with self._slots:
            await self._app(scope, receive, send)
