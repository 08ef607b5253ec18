"""405 with the right `Allow` on every path, whichever routers declare its methods.

Starlette answers a method a path lacks from the first route that matched the path, so with one
route per method (GET /api/v1/results reads, POST stores, in two routers) `Allow` would name only
that route's method. Each path gets one hidden route for every method it lacks, answering 405
with every method the OpenAPI document lists for it.
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})


async def _method_not_allowed(request: Request) -> Response:
    path = request.scope["route"].path_format
    documented = request.app.openapi()["paths"].get(path, {})
    allowed = sorted(method.upper() for method in documented if method.upper() in _METHODS)
    return JSONResponse(
        {"detail": "Method Not Allowed"}, status_code=405, headers={"Allow": ", ".join(allowed)}
    )


def answer_other_methods(app: FastAPI) -> None:
    """Call once every router is included."""
    declared: dict[str, set[str]] = {}
    for route in app.routes:
        if isinstance(route, APIRoute) and route.include_in_schema:
            declared.setdefault(route.path, set()).update(route.methods or ())
    for path, methods in declared.items():
        app.add_api_route(
            path,
            _method_not_allowed,
            methods=sorted(_METHODS - methods),
            include_in_schema=False,
        )
