"""One error model for every 4xx/5xx, and the fixed `detail` strings clients and tests match on.

Every route documents each status it can return with `ErrorBody`; the strings below never change
casually, since agents and scripts branch on them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from agent.wire import ROWS_AS_ARRAYS, ROWS_AS_OBJECTS, WIRE_VERSION, InterfaceCounters

MALFORMED_JSON = "malformed JSON"
INVALID_PAYLOAD = "invalid payload"
BAD_TOKEN = "invalid or missing agent token"
AGENT_REVOKED = "agent token revoked: enrol the agent again with a new code"
ENROLMENT_REFUSED = "enrolment code refused"
BODY_TOO_LARGE = "request body too large"
UNKNOWN_SCHOOL = "unknown school"
UNKNOWN_DISTRICT = "unknown district"
UNSUPPORTED_ENCODING = "unsupported content encoding: send the body uncompressed"
DATABASE_UNAVAILABLE = "database unavailable"
STORE_RESTARTED = "the collector's store restarted while storing this batch: send it again"
# People (collector/api/auth.py, routes/people.py): every read needs a user's token or session.
NOT_SIGNED_IN = "a user's API token is needed (readynet-collector token create)"
NOT_ALLOWED = "this user's role or scope does not allow it"
CSRF_MISSING = "missing or wrong X-CSRF-Token for this session"


class FieldProblem(BaseModel):
    """One bad field: where it is (`loc`, e.g. ["measurements", "0", "download_bps"]) and why."""

    loc: list[str]
    msg: str


class ErrorBody(BaseModel):
    """Every error answer: a fixed `detail`, plus the bad fields for 422."""

    detail: str
    errors: list[FieldProblem] | None = None


_DESCRIPTIONS = {
    400: f"`{MALFORMED_JSON}`: the body is not JSON",
    401: f"`{BAD_TOKEN}` or `{AGENT_REVOKED}` (agent routes); `{NOT_SIGNED_IN}` (every other)",
    403: f"`{ENROLMENT_REFUSED}`: unknown, used or expired code (the reason in `errors`); "
    f"`{NOT_ALLOWED}`; `{CSRF_MISSING}`",
    404: "the resource does not exist",
    408: "the request body did not arrive in time",
    413: f"`{BODY_TOO_LARGE}`",
    409: "the resource is taken for now; retry after `Retry-After` seconds",
    415: f"`{UNSUPPORTED_ENCODING}`",
    422: f"`{INVALID_PAYLOAD}`, with `errors` naming each bad field",
    429: "a per-agent, per-school or sign-in limit was reached; retry after `Retry-After` seconds",
    503: "the collector is over its limits or its database is away; retry after `Retry-After`",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` documenting `statuses` with the one error model."""
    return {s: {"model": ErrorBody, "description": _DESCRIPTIONS[s]} for s in statuses}


def field_problems(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    # Once each (both row branches may say the same of the list itself), in a set: a body of
    # 10,000 refused rows is tens of thousands of errors, and a search of the list per error
    # was quadratic.
    seen: set[tuple[tuple[str, ...], str]] = set()
    problems: list[dict[str, Any]] = []
    for loc, msg in _one_row_form(list(errors)):
        key = (tuple(str(p) for p in loc), msg)
        if key not in seen:
            seen.add(key)
            problems.append({"loc": list(key[0]), "msg": msg})
    return problems


# A row that is not an array, as the array branch of a poll's rows says so.
_NOT_AN_ARRAY = {"tuple_type", "list_type"}


def _one_row_form(errors: list[Mapping[str, Any]]) -> list[tuple[tuple[Any, ...], str]]:
    """Each error's loc and message, a poll's interface rows told apart from the union that
    validates them (`agent.wire._InterfaceRows`): a refused poll fails both branches. The array
    branch's errors are kept unless all it said was that rows are not arrays; then the object
    branch's. A position inside a row is given as the field it holds."""
    split = [
        (_row_form(tuple(e.get("loc", ()))), str(e.get("msg", "")), e.get("type")) for e in errors
    ]
    arrays_wrong = {
        base
        for (base, form, rest), _, kind in split
        if form == ROWS_AS_ARRAYS and not (len(rest) == 1 and kind in _NOT_AN_ARRAY)
    }
    kept = []
    for (base, form, rest), msg, kind in split:
        if form == ROWS_AS_ARRAYS and len(rest) == 1 and kind in _NOT_AN_ARRAY:
            continue
        if form == ROWS_AS_OBJECTS and base in arrays_wrong:
            continue
        kept.append((_named((*base, *rest)), msg))
    return kept


def _row_form(loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], str | None, tuple[Any, ...]]:
    """(loc up to "interfaces", the rows' union branch, the rest), or (loc, None, ())."""
    for i in range(len(loc) - 1):
        if loc[i] == "interfaces" and loc[i + 1] in (ROWS_AS_ARRAYS, ROWS_AS_OBJECTS):
            return loc[: i + 1], loc[i + 1], loc[i + 2 :]
    return loc, None, ()


def _named(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """`loc` with a position inside an interface row (an array on the wire) given as the field
    it holds: ..., "interfaces", 0, "octets_in" rather than ..., "interfaces", 0, 2."""
    for i in range(len(loc) - 2):
        position = loc[i + 2]
        if (
            loc[i] == "interfaces"
            and isinstance(loc[i + 1], int)
            and isinstance(position, int)
            and 0 <= position < len(InterfaceCounters._fields)
        ):
            return (*loc[: i + 2], InterfaceCounters._fields[position], *loc[i + 3 :])
    return loc


def payload_error(exc: ValidationError) -> JSONResponse:
    """400 for JSON that does not parse, 422 naming each bad field for anything else."""
    status_code, content = _payload_problem(exc)
    return JSONResponse(content, status_code=status_code)


def _payload_problem(exc: ValidationError) -> tuple[int, dict[str, Any]]:
    errors = exc.errors()
    if any(err.get("type") == "json_invalid" for err in errors):
        return 400, {"detail": MALFORMED_JSON}
    return 422, {"detail": INVALID_PAYLOAD, "errors": field_problems(errors)}


# Seconds an agent waits before sending a batch again that the store lost (STORE_RESTARTED).
STORE_RETRY_AFTER_S = 2


def store_restarted() -> JSONResponse:
    """503 for a post whose group the store lost: the same batch is to be sent again."""
    return JSONResponse(
        {"detail": STORE_RESTARTED},
        status_code=503,
        headers={"Retry-After": str(STORE_RETRY_AFTER_S)},
    )


# Batch versions this collector reads (agent.wire.Batch.wire_version).
ACCEPTED_WIRE_VERSIONS = (1, WIRE_VERSION)


def batch_problem(exc: ValidationError) -> tuple[int, dict[str, Any]]:
    """Status and body for a result batch that did not validate: as `payload_error`, except
    that a batch of a wire version this collector does not read (an agent newer than its
    collector) is told which versions it does."""
    for err in exc.errors(include_url=False, include_input=False):
        if tuple(err["loc"]) == ("wire_version",):
            accepted = ", ".join(str(v) for v in ACCEPTED_WIRE_VERSIONS)
            problem = {
                "loc": ["wire_version"],
                "msg": f"unknown wire_version: this collector accepts {accepted}; "
                "upgrade the collector or use an agent that speaks one of these",
            }
            return 422, {"detail": INVALID_PAYLOAD, "errors": [problem]}
    return _payload_problem(exc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(err.get("type") == "json_invalid" for err in errors):
        return JSONResponse({"detail": MALFORMED_JSON}, status_code=400)
    return JSONResponse(
        {"detail": INVALID_PAYLOAD, "errors": field_problems(errors)}, status_code=422
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)


# Transport limits (collector/server.py).
BODY_TIMEOUT = "request body not received in time"
TOO_MANY_CONNECTIONS = "too many open connections"

# Per-agent speed-test limits (collector/api/speedtest_limits.py), answered 429.
SPEEDTEST_STREAMS = "too many speed-test transfers open for this agent"
SPEEDTEST_BUDGET = "speed-test byte budget of this agent used up for now"

# Classroom codes and the classroom's speed-test limits (collector/api/classroom_access.py).
UNKNOWN_CLASSROOM_CODE = "unknown or revoked classroom code"
CLASSROOM_STREAMS = "too many classroom speed-test transfers open for this school"
CLASSROOM_BUDGET = "classroom speed-test byte budget of this school used up for now"
CLASSROOM_RESULTS = "too many classroom results from this school for now"

# Result posts per agent (collector/api/routes/results.py, `agent_posts_per_minute`).
AGENT_POSTS = "too many result posts from this agent for now"

# /metrics covers every school: a narrower scope would see other schools' series.
SCRAPE_SCOPE = "/metrics needs the token of a user whose scope is all"
# Web sign-in: one answer for an unknown name and a wrong password.
SIGNIN_FAILED = "wrong name or password"
SIGNIN_ATTEMPTS = "too many sign-in attempts for this name or from this address for now"

# Test slots on a shared exit (collector/store/slots.py).
SLOT_BUSY = "another test holds this exit: retry after Retry-After seconds"
UNKNOWN_SLOT = "unknown slot"
