"""The classroom test page, and where it records its results.

`GET /classroom` serves a self-contained page (`collector/web/`: no CDN, no external fonts; a
school's filtered network must not stop it) that a teacher opens on a student device. It tests
against the LibreSpeed endpoints with the school's classroom code and posts the result to
`POST /api/v1/classroom/results`, code in the `X-Classroom-Code` header (checked before the
body is read), body one wire `ThroughputTest` with `path` "classroom" and the `room`. The result
is stored through the agents' ingest path with no agent and the code's school; it is
idempotent by its `id`, as agents' results are.
"""

from __future__ import annotations

import functools
from importlib.resources import files
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import ValidationError

from agent.wire import Batch, Receipt, ThroughputTest
from collector.api.classroom_access import SchoolInHeader
from collector.api.errors import (
    CLASSROOM_RESULTS,
    INVALID_PAYLOAD,
    error_responses,
    payload_error,
)
from collector.api.group_commit import GroupCommit, Parcel, Post
from collector.api.limits import uncompressed_body
from collector.api.post_rate import PostRate
from collector.api.transfers import too_many

router = APIRouter(tags=["classroom"])

# Result posts are one test: far smaller than this, and refused above it before being read.
MAX_RESULT_BYTES = 64 * 1024
# Same origin only, nothing inline, nothing from elsewhere (but the empty `data:` icon, which
# spares a request for /favicon.ico); the page is never framed.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}
_ASSET_TYPES = {
    "classroom.html": "text/html; charset=utf-8",
    "classroom.js": "text/javascript; charset=utf-8",
    "classroom.css": "text/css; charset=utf-8",
}
TEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ClassroomTest"}}},
    }
}


@functools.cache
def _asset(name: str) -> bytes:
    return (files("collector") / "web" / name).read_bytes()


def _served(name: str) -> Response:
    return Response(_asset(name), media_type=_ASSET_TYPES[name], headers=PAGE_HEADERS)


def _doc(media_type: str, what: str) -> dict[int | str, dict[str, Any]]:
    return {200: {"description": what, "content": {media_type: {"schema": {"type": "string"}}}}}


@router.get("/classroom", response_class=HTMLResponse, responses=_doc("text/html", "the page"))
async def classroom_page() -> Response:
    """The classroom test page; `?code=` fills in the school's classroom code."""
    return _served("classroom.html")


@router.get(
    "/classroom/classroom.js",
    response_class=Response,
    responses=_doc("text/javascript", "the page's script"),
)
async def classroom_script() -> Response:
    return _served("classroom.js")


@router.get(
    "/classroom/classroom.css",
    response_class=Response,
    responses=_doc("text/css", "the page's style sheet"),
)
async def classroom_style() -> Response:
    return _served("classroom.css")


@router.post(
    "/api/v1/classroom/results",
    response_model=Receipt,
    openapi_extra=TEST_BODY,
    responses=error_responses(400, 404, 408, 413, 415, 422, 429, 503),
)
async def post_classroom_result(request: Request, school: SchoolInHeader) -> Any:
    """Store one classroom test for the code's school. Idempotent by the test's `id`.

    A school stores at most `classroom_results_per_hour` (a burst of that many, then refilled
    evenly); beyond it, 429 with `Retry-After`, before the body is read.
    """
    rate: PostRate = request.app.state.classroom_result_rate
    wait_s = rate.take(school.id)
    if wait_s > 0:
        raise too_many(CLASSROOM_RESULTS, PostRate.retry_after_s(wait_s))
    body = await uncompressed_body(request)
    try:
        test = ThroughputTest.model_validate_json(body)
    except ValidationError as exc:
        return payload_error(exc)
    problems = _not_classroom(test)
    if problems:
        return JSONResponse({"detail": INVALID_PAYLOAD, "errors": problems}, status_code=422)
    batch = Batch(measurements=[test])
    post = Post(Parcel(None, school.id, batch.model_dump_json().encode()), request.is_disconnected)
    group_commit: GroupCommit = request.app.state.group_commit
    return await group_commit.answer(post)


def _not_classroom(test: ThroughputTest) -> list[dict[str, Any]]:
    """What keeps a valid wire test from being a classroom test, as 422 field problems."""
    problems = []
    if test.path != "classroom":
        problems.append({"loc": ["path"], "msg": "must be 'classroom' on this route"})
    if test.room is None:
        problems.append({"loc": ["room"], "msg": "the room the test was taken in is required"})
    return problems
