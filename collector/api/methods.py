"""405 with the right `Allow` on every path, whichever routers declare its methods.

Starlette answers a method a path lacks from the first route that matched the path, so with one
route per method (GET /api/v1/results reads, POST stores, in two routers) `Allow` would name only
that route's method. Each path gets one hidden route for every method it lacks, answering 405
with every method its routes declare.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})


def answer_other_methods(app: FastAPI, routers: Iterable[APIRouter]) -> None:
    """Call once every router is included; `routers` are the ones included."""
    declared: dict[str, set[str]] = {}
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute) and route.include_in_schema:
                declared.setdefault(route.path, set()).update(route.methods or ())
    for path, methods in declared.items():
        app.add_api_route(
            path,
            _refusal(sorted(methods - {"HEAD"})),
            methods=sorted(_METHODS - methods - ({"HEAD"} if "GET" in methods else set())),
            include_in_schema=False,
        )


def _refusal(allowed: list[str]) -> Callable[[Request], Awaitable[Response]]:
    allow = ", ".join(allowed)

    async def method_not_allowed(request: Request) -> Response:
        return JSONResponse(
            {"detail": "Method Not Allowed"}, status_code=405, headers={"Allow": allow}
        )

    return method_not_allowed
