"""LibreSpeed's backend protocol, so LibreSpeed clients (and the classroom page) test here.

Stock LibreSpeed clients know only URLs, so the school's classroom code is part of the path:
point a LibreSpeed server entry at `/librespeed/<code>/` with `garbage.php`, `empty.php` (upload
and ping) and `getIP.php`. The answers follow LibreSpeed's PHP backend: 1 MiB chunks of
incompressible bytes (`ckSize`, default 4, capped at 1024 like LibreSpeed's and at
`speedtest_max_bytes`), no-store caching headers, CORS headers when `cors` is in the query, and
getIP's JSON shape. `rawIspInfo` is always empty: the collector never looks an ISP up (schools'
networks are filtered, and it would tell a third party who tests from where).

Every transfer is charged to the code's school, under the per-school classroom limits
(`collector.api.classroom_access`): 429 with `Retry-After` beyond them. An unknown or revoked
code is 404.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from collector.api.classroom_access import LIMIT_DETAILS, ClassroomLimiterDep, SchoolInPath
from collector.api.errors import error_responses
from collector.api.speedtest_limits import Direction
from collector.api.transfers import open_transfer, payload_download, receive_upload

router = APIRouter(prefix="/librespeed/{code}", tags=["classroom"])

MIB = 1 << 20
DEFAULT_CHUNKS = 4
MAX_CHUNKS = 1024
# LibreSpeed sends two Cache-Control headers; one header with both lists means the same.
NO_STORE = {
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0, s-maxage=0, "
    "post-check=0, pre-check=0",
    "Pragma": "no-cache",
}
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST",
    "Access-Control-Allow-Headers": "Content-Encoding, Content-Type",
}
_CGNAT = ipaddress.ip_network("100.64.0.0/10")

CorsQuery = Annotated[
    str | None, Query(description="present (LibreSpeed sends `cors=true`): add CORS headers")
]
_EMPTY: dict[int | str, dict[str, Any]] = {
    200: {"description": "empty", "content": {"text/plain": {"schema": {"type": "string"}}}}
}


def _headers(cors: str | None) -> dict[str, str]:
    return {**NO_STORE, **(CORS if cors is not None else {})}


def _empty(cors: str | None) -> Response:
    return Response(status_code=200, media_type="text/plain", headers=_headers(cors))


@router.get(
    "/garbage.php",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "`ckSize` MiB of incompressible bytes",
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        },
        **error_responses(404, 422, 429),
    },
)
async def garbage(
    request: Request,
    school: SchoolInPath,
    limiter: ClassroomLimiterDep,
    cors: CorsQuery = None,
    chunks: Annotated[
        int,
        Query(alias="ckSize", ge=0, description="MiB to send; 0 means 4, as in LibreSpeed"),
    ] = DEFAULT_CHUNKS,
) -> StreamingResponse:
    most = max(1, min(MAX_CHUNKS, request.app.state.settings.speedtest_max_bytes // MIB))
    size = min(chunks or DEFAULT_CHUNKS, most) * MIB
    return payload_download(
        request,
        limiter,
        holder=school.id,
        size=size,
        who=school.label,
        headers={
            "Content-Description": "File Transfer",
            "Content-Disposition": "attachment; filename=random.dat",
            "Content-Transfer-Encoding": "binary",
            **_headers(cors),
        },
        details=LIMIT_DETAILS,
    )


@router.get(
    "/empty.php", response_class=Response, responses={**_EMPTY, **error_responses(404, 422, 429)}
)
async def ping(
    school: SchoolInPath, limiter: ClassroomLimiterDep, cors: CorsQuery = None
) -> Response:
    # Counted as a download while it is answered: it takes a stream, never budget.
    open_transfer(
        limiter, holder=school.id, direction=Direction.DOWNLOAD, need_bytes=0, details=LIMIT_DETAILS
    ).close()
    return _empty(cors)


@router.post(
    "/empty.php",
    response_class=Response,
    responses={**_EMPTY, **error_responses(404, 408, 413, 422, 429)},
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def upload(
    request: Request, school: SchoolInPath, limiter: ClassroomLimiterDep, cors: CorsQuery = None
) -> Response:
    await receive_upload(
        request,
        limiter,
        holder=school.id,
        max_bytes=request.app.state.settings.speedtest_max_bytes,
        details=LIMIT_DETAILS,
    )
    return _empty(cors)


@router.options(
    "/empty.php", response_class=Response, responses={**_EMPTY, **error_responses(404, 422)}
)
async def preflight(school: SchoolInPath, cors: CorsQuery = None) -> Response:
    # A cross-origin LibreSpeed upload (Content-Type: application/octet-stream) asks first.
    return _empty(cors)


class LibreSpeedIp(BaseModel):
    """getIP.php's answer, in LibreSpeed's own field names."""

    processedString: str  # LibreSpeed's field name
    rawIspInfo: str = ""  # always empty: no ISP lookups here


@router.get("/getIP.php", response_model=LibreSpeedIp, responses=error_responses(404, 422))
async def get_ip(request: Request, school: SchoolInPath, cors: CorsQuery = None) -> Response:
    host = request.client.host if request.client else ""
    body = LibreSpeedIp(processedString=describe_address(host))
    return Response(
        body.model_dump_json(),
        media_type="application/json; charset=utf-8",
        headers=_headers(cors),
    )


def describe_address(host: str) -> str:
    """LibreSpeed's text for a client address: `10.1.2.3 - private IPv4 access`, or the bare IP."""
    host = host.removeprefix("::ffff:")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if ip.is_loopback:
        kind = "localhost"
    elif ip.is_link_local:
        kind = "link-local"
    elif ip.version == 4 and ip in _CGNAT:
        kind = "CGNAT"
    elif ip.is_private:
        kind = "private"
    else:
        return host
    return f"{host} - {kind} IPv{ip.version} access"
