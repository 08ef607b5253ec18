"""On-net speed-test endpoints: agents measure the school → district path (the WAN) here.

Download streams incompressible bytes; upload counts what arrives. Both need an agent token so
the collector cannot be used as a free bandwidth sink by anyone on the network.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse

from collector.api.deps import AgentDep
from collector.api.errors import error_responses

router = APIRouter(prefix="/api/v1/speedtest", tags=["speedtest"])
CHUNK_BYTES = 1 << 20


@router.get("/ping", status_code=204, responses=error_responses(401))
async def ping(agent: AgentDep) -> Response:
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
        **error_responses(401, 422),
    },
)
async def download(
    request: Request, agent: AgentDep, size: Annotated[int, Query(alias="bytes", ge=1)]
) -> StreamingResponse:
    if size > request.app.state.settings.speedtest_max_bytes:
        raise HTTPException(422, "requested size exceeds speedtest_max_bytes")
    payload: bytes = request.app.state.speedtest_payload
    return StreamingResponse(
        _repeat(payload, size),
        media_type="application/octet-stream",
        headers={"Content-Length": str(size), "Cache-Control": "no-store"},
    )


async def _repeat(payload: bytes, size: int) -> AsyncIterator[bytes]:
    remaining = size
    while remaining > 0:
        chunk = payload[: min(remaining, len(payload))]
        remaining -= len(chunk)
        yield chunk


@router.post("/upload", responses=error_responses(401))
async def upload(request: Request, agent: AgentDep) -> dict[str, int]:
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
    return {"bytes": received}
