"""On-net speed-test endpoints: agents measure the school → district path (the WAN) here.

Download streams incompressible bytes; upload counts what arrives. Both need an agent token so
the collector cannot be used as a free bandwidth sink by anyone on the network, and both are held
to the per-agent limits of `collector.api.speedtest_limits`: a transfer beyond the open-stream
or byte limits is answered 429 with `Retry-After`, an upload over `speedtest_max_bytes` 413, and
a client that sends or reads below the floor rate is cut off (an upload is answered 408). The
transfers themselves are `collector.api.transfers`, shared with the classroom's endpoints.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse

from collector.api.deps import AgentDep
from collector.api.errors import error_responses
from collector.api.speedtest_limits import Direction, SpeedtestLimiter, SpeedtestLimits
from collector.api.transfers import CHUNK_BYTES as CHUNK_BYTES  # re-exported for tests
from collector.api.transfers import open_transfer, payload_download, receive_upload

router = APIRouter(prefix="/api/v1/speedtest", tags=["speedtest"])


async def get_limiter(request: Request) -> SpeedtestLimiter:
    # Async, so it runs on the event loop: get-or-create cannot race. One limiter per app.
    state = request.app.state
    limiter: SpeedtestLimiter | None = getattr(state, "speedtest_limiter", None)
    if limiter is None:
        limiter = SpeedtestLimiter(SpeedtestLimits.from_settings(state.settings))
        state.speedtest_limiter = limiter
    return limiter


LimiterDep = Annotated[SpeedtestLimiter, Depends(get_limiter)]


@router.get("/ping", status_code=204, responses=error_responses(401, 429))
async def ping(agent: AgentDep, limiter: LimiterDep) -> Response:
    # Counted as a download while it is answered: it takes a stream, never budget.
    open_transfer(limiter, holder=agent.id, direction=Direction.DOWNLOAD, need_bytes=0).close()
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
    return payload_download(
        request,
        limiter,
        holder=agent.id,
        size=size,
        who=f"agent {agent.name} (id {agent.id})",
        headers={"Cache-Control": "no-store"},
    )


@router.post("/upload", responses=error_responses(401, 408, 413, 429))
async def upload(request: Request, agent: AgentDep, limiter: LimiterDep) -> dict[str, int]:
    received = await receive_upload(
        request,
        limiter,
        holder=agent.id,
        max_bytes=request.app.state.settings.speedtest_max_bytes,
    )
    return {"bytes": received}
