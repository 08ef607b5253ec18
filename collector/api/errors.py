"""Fixed `detail` strings: clients and tests match on these, so they never change casually."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

MALFORMED_JSON = "malformed JSON"
INVALID_PAYLOAD = "invalid payload"
BAD_TOKEN = "invalid or missing agent token"
BODY_TOO_LARGE = "request body too large"
UNKNOWN_SCHOOL = "unknown school"
DUPLICATE_ID_IN_BATCH = "a batch must not repeat a measurement id"


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(err.get("type") == "json_invalid" for err in errors):
        return JSONResponse({"detail": MALFORMED_JSON}, status_code=400)
    problems = [
        {"loc": [str(p) for p in err.get("loc", ())], "msg": str(err.get("msg", ""))}
        for err in errors
    ]
    return JSONResponse({"detail": INVALID_PAYLOAD, "errors": problems}, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
