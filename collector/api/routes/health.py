"""Liveness and readiness for systemd, compose and load balancers.

`/healthz` says the process serves HTTP; it never touches the database, so it answers at once
even while a thousand result posts queue for the store. `/readyz` adds a `SELECT 1` on a
connection reserved for it, with a deadline, for load balancers that should stop sending work
to a collector whose database is away.
"""

from __future__ import annotations

import anyio
import anyio.to_thread
from fastapi import APIRouter, HTTPException, Request
from sqlalchemy import text

from collector.api.errors import DATABASE_UNAVAILABLE, error_responses

router = APIRouter(tags=["health"])
READY_TIMEOUT_S = 2.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses=error_responses(503))
async def readyz(request: Request) -> dict[str, str]:
    engine = request.app.state.engine

    def ping() -> None:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    try:
        with anyio.fail_after(READY_TIMEOUT_S):
            await anyio.to_thread.run_sync(
                ping, limiter=request.app.state.ready_limiter, abandon_on_cancel=True
            )
    except Exception as exc:
        raise HTTPException(503, DATABASE_UNAVAILABLE, headers={"Retry-After": "5"}) from exc
    return {"status": "ok"}
