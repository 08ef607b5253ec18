"""The API docs, served by the collector itself: Swagger UI at `/docs`, nothing from elsewhere.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so on a district network without
internet `/docs` stays blank. This page loads Swagger UI 5 from the `fastapi-offline` package
(its files only, mounted at `/docs-assets`; its FastAPI factory is not used), and the app is
built with FastAPI's docs routes off. Not `swagger-ui-bundle`: it ships Swagger UI 4.15, which
cannot render the OpenAPI 3.1 that FastAPI writes. No `/redoc`: the ReDoc 2.5 bundle always
loads its logo from cdn.redoc.ly. The page allows scripts, styles and connections from this
origin only, plus its one inline script by hash.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/docs"
ASSETS_URL = "/docs-assets"
ASSETS_PACKAGE = ("fastapi_offline", "static")
# Swagger UI's online validator badge fetches an image from validator.swagger.io for any
# document not on localhost: off, like everything else that would leave the collector.
SWAGGER_PARAMETERS: dict[str, Any] = {"validatorUrl": None}
_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)
# Swagger UI draws some icons from data: URLs in its style sheet.
_POLICY = (
    "default-src 'self'; script-src 'self'{script}; style-src 'self'{style}; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; "
    "object-src 'none'"
)


def install_docs(app: FastAPI) -> None:
    """Serve `/docs` and its assets; `app` is built with docs_url=None and redoc_url=None."""
    if app.openapi_url is None:
        raise ValueError("the API docs need the app's OpenAPI document")
    swagger = get_swagger_ui_html(
        openapi_url=app.openapi_url,
        title=f"{app.title}: API",
        swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
        swagger_ui_parameters=SWAGGER_PARAMETERS,
    )
    app.mount(ASSETS_URL, StaticFiles(packages=[ASSETS_PACKAGE]), name="docs-assets")
    app.add_api_route(DOCS_URL, _page(bytes(swagger.body)), include_in_schema=False)


def _page(html: bytes) -> Callable[[], Coroutine[Any, Any, Response]]:
    headers = {
        "Content-Security-Policy": content_security_policy(html.decode()),
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }

    async def page() -> Response:
        return Response(html, media_type="text/html; charset=utf-8", headers=headers)

    return page


def content_security_policy(html: str) -> str:
    """The page's policy: its inline `<script>` and `<style>` blocks allowed by their hashes."""
    hashes: dict[str, str] = {"script": "", "style": ""}
    for kind, body in _INLINE.findall(html):
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        hashes[kind] += f" 'sha256-{digest}'"
    return _POLICY.format(**hashes)
