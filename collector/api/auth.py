"""Who may read and change what: the people's side of the API (agents have `deps.AgentDep`).

Every read endpoint takes `ViewerDep`, every inventory write `AdminDep`. A person is known by a
user's API token (`Authorization: Bearer rnu_...`: scripts, Prometheus) or by the session
cookie of a web sign-in (`readynet_session`, routes/people.py). A request signed in by cookie
that changes anything (any method but GET, HEAD, OPTIONS) must also carry the session's CSRF
token in `X-CSRF-Token`, or 403: a cookie rides along on requests another site makes the
browser send, a header does not. Bearer requests need none (no browser adds them by itself).

A user sees only the schools of their scope (`collector.store.people.visible_schools`); an
agent's token is not a user's and reads nothing (401). `/healthz` and `/readyz` stay open, and
so do `/docs` and `/openapi.json`: they describe the API's shape and hold no data.
`/metrics` and its service discovery take `ScraperDep`: a viewer of scope `all` (the scrape is
one global page), looked up on the scrape's reserved connection, not in the store gate, so a
scrape never queues behind result posts.

Example:
    @router.get("/schools")
    async def get_schools(viewer: ViewerDep, gate: GateDep) -> list[SchoolPublic]: ...
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated, Protocol, TypeVar

import anyio.to_thread
from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from collector.api.deps import MAX_TOKEN_CHARS, GateDep
from collector.api.errors import CSRF_MISSING, SCRAPE_SCOPE
from collector.api.errors import NOT_ALLOWED as NOT_ALLOWED  # re-exported for routes
from collector.api.errors import NOT_SIGNED_IN as NOT_SIGNED_IN
from collector.store.people import Principal, principal_for_session, principal_for_token
from collector.store.queries import hash_token

SESSION_COOKIE = "readynet_session"
# Readable by the pages' scripts (not HttpOnly), which send it back as the header below.
CSRF_COOKIE = "readynet_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
T = TypeVar("T")


class Runner(Protocol):
    """Where a lookup runs: the store gate, or the scrape's reserved connection."""

    def __call__(self, work: Callable[[Session], T], /) -> Awaitable[T]: ...


_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="UserToken",
    description="A user's API token from `readynet-collector token create` (rnu_...).",
)
_cookie = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    scheme_name="WebSession",
    description="The session cookie of `POST /signin`; changes also need `X-CSRF-Token`.",
)
Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
Cookie = Annotated[str | None, Depends(_cookie)]


def csrf_matches(given: str | None, expected_sha256: str) -> bool:
    if not given or len(given) > MAX_TOKEN_CHARS:
        return False
    return hmac.compare_digest(hash_token(given), expected_sha256)


def not_signed_in() -> HTTPException:
    return HTTPException(401, NOT_SIGNED_IN, headers={"WWW-Authenticate": "Bearer"})


async def _principal(
    request: Request, bearer: HTTPAuthorizationCredentials | None, cookie: str | None, run: Runner
) -> Principal:
    if bearer is not None:
        # A bearer token decides alone: a bad one is refused even beside a good cookie.
        token = bearer.credentials
        found = None
        if token and len(token) <= MAX_TOKEN_CHARS:

            def by_token(session: Session) -> Principal | None:
                return principal_for_token(session=session, token=token)

            found = await run(by_token)
        if found is None:
            raise not_signed_in()
        return found
    if cookie and len(cookie) <= MAX_TOKEN_CHARS:

        def by_cookie(session: Session) -> tuple[Principal, str] | None:
            signed_in = principal_for_session(session=session, cookie=cookie)
            return None if signed_in is None else (signed_in.principal, signed_in.csrf_sha256)

        signed = await run(by_cookie)
        if signed is not None:
            principal, csrf_sha256 = signed
            if request.method not in SAFE_METHODS and not csrf_matches(
                request.headers.get(CSRF_HEADER), csrf_sha256
            ):
                raise HTTPException(403, CSRF_MISSING)
            return principal
    raise not_signed_in()


async def get_principal(
    request: Request, gate: GateDep, bearer: Bearer, cookie: Cookie
) -> Principal:
    return await _principal(request, bearer, cookie, gate.run)


ViewerDep = Annotated[Principal, Depends(get_principal)]


async def get_admin(principal: ViewerDep) -> Principal:
    if not principal.is_admin:
        raise HTTPException(403, NOT_ALLOWED)
    return principal


AdminDep = Annotated[Principal, Depends(get_admin)]


async def get_scraper(request: Request, bearer: Bearer, cookie: Cookie) -> Principal:
    state = request.app.state

    async def on_scrape_connection(work: Callable[[Session], T]) -> T:
        def call() -> T:
            with state.session_factory() as session:
                return work(session)

        return await anyio.to_thread.run_sync(call, limiter=state.scrape_limiter)

    principal = await _principal(request, bearer, cookie, on_scrape_connection)
    if principal.scope.kind != "all":
        raise HTTPException(403, SCRAPE_SCOPE)
    return principal


ScraperDep = Annotated[Principal, Depends(get_scraper)]
