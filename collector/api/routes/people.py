"""People over HTTP: signing in to the web pages, who is signed in, and the audit log.

- `GET /signin`: a self-contained page (no script, no CDN; the classroom page's CSP): the
  sign-in form, or, when signed in, who and a sign-out button.
- `POST /signin` (form: name, password): a web session. Its cookie `readynet_session` is
  HttpOnly, SameSite=Strict, Secure over https, and lasts `web_session_hours`; `readynet_csrf`
  holds the session's CSRF token for pages' scripts (`X-CSRF-Token`). Only SHA-256 digests of
  both are stored. A wrong password and an unknown name get the same answer in about the same
  time; attempts are limited per name and per client address (`signin_attempts_per_minute`).
- `POST /signout`: ends the session; its CSRF token in `X-CSRF-Token` or the form's field.
- `GET /me`: the user behind the token or cookie.
- `GET /api/v1/audit`: the audit log's newest entries, for an admin of scope `all`.
"""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel
from sqlalchemy.orm import Session

from collector.api.auth import (
    CSRF_COOKIE,
    CSRF_HEADER,
    NOT_ALLOWED,
    SESSION_COOKIE,
    AdminDep,
    Cookie,
    ViewerDep,
    csrf_matches,
    not_signed_in,
)
from collector.api.deps import MAX_TOKEN_CHARS, GateDep
from collector.api.errors import (
    CSRF_MISSING,
    INVALID_PAYLOAD,
    SIGNIN_ATTEMPTS,
    SIGNIN_FAILED,
    error_responses,
)
from collector.api.limits import small_body
from collector.api.post_rate import PostRate
from collector.api.routes.classroom import PAGE_HEADERS
from collector.api.transfers import too_many
from collector.settings import CollectorSettings
from collector.store import audit
from collector.store.people import (
    Principal,
    create_web_session,
    end_web_session,
    principal_for_session,
    sign_in,
)

router = APIRouter(tags=["people"])
# A form of the longest fields, each character percent-encoded UTF-8 (up to 12 bytes).
MAX_FORM_BYTES = 32 * 1024
# The form's fields: longer ones are refused (422) before any lookup.
MAX_NAME_CHARS = 200
MAX_FIELD_CHARS = 1024
FORM = "application/x-www-form-urlencoded"

_FORM_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            FORM: {
                "schema": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string", "maxLength": MAX_NAME_CHARS},
                        "password": {"type": "string", "maxLength": MAX_FIELD_CHARS},
                    },
                    "required": ["name", "password"],
                    "additionalProperties": False,
                }
            }
        },
    }
}
_SIGNOUT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "content": {
            FORM: {
                "schema": {
                    "type": "object",
                    "properties": {"csrf_token": {"type": "string"}},
                    "additionalProperties": False,
                }
            }
        },
    }
}
_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>ReadyNet: sign in</title>
</head>
<body>
<h1>ReadyNet</h1>
{body}
</body>
</html>
"""
_SIGNIN_FORM = """{problem}<form method="post" action="/signin">
<p><label>Name <input name="name" autocomplete="username" required maxlength="200"></label></p>
<p><label>Password <input name="password" type="password" autocomplete="current-password"
required></label></p>
<p><button type="submit">Sign in</button></p>
</form>"""
_SIGNED_IN = """<p>Signed in as <strong>{name}</strong> ({role}, scope {scope}).</p>
<form method="post" action="/signout">
<input type="hidden" name="csrf_token" value="{csrf}">
<p><button type="submit">Sign out</button></p>
</form>"""


def _page(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(body=body), status_code=status, headers=PAGE_HEADERS)


def _signin_page(problem: str | None = None, status: int = 200) -> HTMLResponse:
    shown = "" if problem is None else f'<p role="alert">{html.escape(problem)}</p>\n'
    return _page(_SIGNIN_FORM.format(problem=shown), status)


def _settings(request: Request) -> CollectorSettings:
    settings: CollectorSettings = request.app.state.settings
    return settings


def _signin_rate(request: Request) -> PostRate:
    # Kept on the app (not the module): each collector in a process has its own buckets.
    state = request.app.state
    rate: PostRate | None = getattr(state, "signin_rate", None)
    if rate is None:
        rate = PostRate(per_minute=_settings(request).signin_attempts_per_minute)
        state.signin_rate = rate
    return rate


async def _form(request: Request, fields: tuple[str, ...]) -> dict[str, str]:
    """The urlencoded form's `fields` (the first value of each); 415 for any other body, 422
    for a field the form does not have."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != FORM:
        raise HTTPException(415, f"send the form as {FORM}")
    text = (await small_body(request, MAX_FORM_BYTES)).decode("utf-8", errors="replace")
    try:
        parsed = parse_qs(text, keep_blank_values=True, max_num_fields=2 * len(fields))
    except ValueError:  # more fields than the form has
        raise HTTPException(422, INVALID_PAYLOAD) from None
    unknown = [
        {"loc": ["body", name[:64]], "msg": "not a field of this form"}
        for name in parsed
        if name not in fields
    ]
    if unknown:
        raise RequestValidationError(unknown)
    return {k: v[0] for k, v in parsed.items() if v}


def _signin_fields(fields: dict[str, str]) -> tuple[str, str]:
    """Name and password, or 422 naming the field that is missing or too long."""
    problems = [
        {"loc": ["body", field], "msg": f"required, at most {limit} characters"}
        for field, limit in (("name", MAX_NAME_CHARS), ("password", MAX_FIELD_CHARS))
        if field not in fields or len(fields[field]) > limit
    ]
    if problems:
        raise RequestValidationError(problems)
    return fields["name"], fields["password"]


@router.get(
    "/signin",
    response_class=HTMLResponse,
    responses={200: {"description": "the page", "content": {"text/html": {}}}},
)
async def signin_page(request: Request, gate: GateDep) -> Response:
    """The sign-in form, or who is signed in and a sign-out button."""
    # Read by hand, not as a security dependency: the page is open to everyone.
    cookie, csrf = request.cookies.get(SESSION_COOKIE), request.cookies.get(CSRF_COOKIE)
    if cookie and csrf and len(cookie) <= MAX_TOKEN_CHARS:

        def lookup(session: Session) -> tuple[Principal, str] | None:
            found = principal_for_session(session=session, cookie=cookie)
            return None if found is None else (found.principal, found.csrf_sha256)

        signed = await gate.run(lookup)
        if signed is not None and csrf_matches(csrf, signed[1]):
            principal = signed[0]
            return _page(
                _SIGNED_IN.format(
                    name=html.escape(principal.name),
                    role=principal.role,
                    scope=html.escape(principal.scope.describe()),
                    csrf=html.escape(csrf),
                )
            )
    return _signin_page()


@router.post(
    "/signin",
    status_code=303,
    openapi_extra=_FORM_BODY,
    responses={
        303: {"description": "signed in: the session cookies are set; on to `/me`"},
        401: {"description": f"`{SIGNIN_FAILED}` (the page again)", "content": {"text/html": {}}},
        **error_responses(413, 415, 422, 429),
    },
)
async def signin(request: Request, gate: GateDep) -> Response:
    """Sign in with name and password (a form); the session cookie for the web pages."""
    name, password = _signin_fields(await _form(request, ("name", "password")))
    client = request.client.host if request.client else ""
    rate = _signin_rate(request)
    # Each attempt takes from both: a guesser must spread over names and addresses.
    wait_s = max(rate.take(hash(("name", name.casefold()))), rate.take(hash(("client", client))))
    if wait_s > 0:
        raise too_many(SIGNIN_ATTEMPTS, PostRate.retry_after_s(wait_s))
    lifetime = timedelta(hours=_settings(request).web_session_hours)

    def attempt(session: Session) -> tuple[str, str, datetime] | None:
        user = sign_in(session=session, name=name, password=password) if name else None
        if user is None:
            return None
        audit.record(
            session,
            actor=f"user:{user.name} (session)",
            action="sign_in",
            object_type="user",
            object_id=user.name,
            details={"client": client},
        )
        new = create_web_session(session=session, user_id=user.id, lifetime=lifetime)
        return new.cookie, new.csrf_token, new.expires_at

    signed = await gate.run(attempt)
    if signed is None:
        return _signin_page(SIGNIN_FAILED, status=401)
    cookie, csrf, expires_at = signed
    response = RedirectResponse("/me", status_code=303)
    secure = request.url.scheme == "https"
    max_age = int((expires_at - datetime.now(UTC)).total_seconds())
    for key, value, http_only in ((SESSION_COOKIE, cookie, True), (CSRF_COOKIE, csrf, False)):
        response.set_cookie(
            key,
            value,
            max_age=max_age,
            expires=expires_at,
            path="/",
            secure=secure,
            httponly=http_only,
            samesite="strict",
        )
    return response


@router.api_route(
    "/signin", methods=["PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"], include_in_schema=False
)
async def signin_other_methods() -> Response:
    # GET and POST are two routes: Starlette's own 405 would name only the first one's method.
    return JSONResponse(
        {"detail": "Method Not Allowed"}, status_code=405, headers={"Allow": "GET, POST"}
    )


@router.post(
    "/signout",
    status_code=303,
    openapi_extra=_SIGNOUT_BODY,
    responses={
        303: {"description": "signed out: the cookies are cleared; on to `/signin`"},
        **error_responses(401, 403, 413, 415, 422),
    },
)
async def signout(request: Request, gate: GateDep, cookie: Cookie) -> Response:
    """End the web session; its CSRF token in `X-CSRF-Token` or the form's `csrf_token`."""
    if not cookie or len(cookie) > MAX_TOKEN_CHARS:
        raise not_signed_in()

    def lookup(session: Session) -> str | None:
        found = principal_for_session(session=session, cookie=cookie)
        return None if found is None else found.csrf_sha256

    csrf_sha256 = await gate.run(lookup)
    if csrf_sha256 is None:
        raise not_signed_in()
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.headers.get("content-type", "").startswith(FORM):
        given = (await _form(request, ("csrf_token",))).get("csrf_token")
    if not csrf_matches(given, csrf_sha256):
        raise HTTPException(403, CSRF_MISSING)

    def end(session: Session) -> None:
        end_web_session(session=session, cookie=cookie)

    await gate.run(end)
    response = RedirectResponse("/signin", status_code=303)
    for key in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(key, path="/", samesite="strict")
    return response


class ScopeOut(BaseModel):
    kind: str
    state: str | None
    district_id: int | None
    school_id: int | None


class MeOut(BaseModel):
    """Who is asking, and through what (`token:<name>` or `session`)."""

    name: str
    role: str
    scope: ScopeOut
    via: str


@router.get("/me", responses=error_responses(401))
async def me(principal: ViewerDep) -> MeOut:
    """The user behind this request's token or session cookie."""
    scope = principal.scope
    return MeOut(
        name=principal.name,
        role=principal.role,
        scope=ScopeOut(
            kind=scope.kind,
            state=scope.state,
            district_id=scope.district_id,
            school_id=scope.school_id,
        ),
        via=principal.via,
    )


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str | None
    details: dict[str, Any]


@router.get("/api/v1/audit", responses=error_responses(401, 403, 422))
async def audit_log(
    admin: AdminDep,
    gate: GateDep,
    object_type: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditOut]:
    """The newest entries of the audit log (who changed what, when), newest first.

    For admins of scope `all`: an entry can name any school or user."""
    if admin.scope.kind != "all":
        raise HTTPException(403, NOT_ALLOWED)

    def read(session: Session) -> list[AuditOut]:
        return [
            AuditOut(
                id=e.id,
                at=e.at,
                actor=e.actor,
                action=e.action,
                object_type=e.object_type,
                object_id=e.object_id,
                details=json.loads(e.details),
            )
            for e in audit.entries(session=session, object_type=object_type, limit=limit)
        ]

    return await gate.run(read)
