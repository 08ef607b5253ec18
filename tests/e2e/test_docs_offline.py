"""The API docs with the network cut: Debian's headless Chromium (driven by Playwright) against a
real collector on 127.0.0.1, every request to any other host refused and recorded. `/docs`
(Swagger UI, from a package) must render every operation of the OpenAPI document and call the
API from the collector alone, with nothing in the console and nothing tried elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Route, expect, sync_playwright

from tests.fixtures.collector import RunningCollector

CHROMIUM = "/usr/bin/chromium"
# In-page URLs (Swagger UI's inline icons) never reach a network.
IN_PAGE_SCHEMES = ("data", "blob")


@dataclass
class OfflinePage:
    page: Page
    elsewhere: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def offline(browser: Browser) -> Iterator[OfflinePage]:
    """A page whose browser reaches 127.0.0.1 only; the test fails on any attempt elsewhere."""
    context = browser.new_context()
    page = context.new_page()
    seen = OfflinePage(page)

    def cut(route: Route) -> None:
        url = urlsplit(route.request.url)
        if url.hostname == "127.0.0.1" or url.scheme in IN_PAGE_SCHEMES:
            route.continue_()
        else:
            seen.elsewhere.append(route.request.url)
            route.abort("internetdisconnected")

    def console(message: ConsoleMessage) -> None:
        # A request the page's policy blocks never reaches `cut`, but is an error here.
        if message.type == "error":
            seen.problems.append(f"console: {message.text} ({message.location})")

    # On the context rather than the page: workers and pop-ups are cut off too.
    context.route("**/*", cut)
    page.on("console", console)
    page.on("pageerror", lambda error: seen.problems.append(f"page error: {error}"))
    yield seen
    context.close()
    assert seen.elsewhere == [], seen.elsewhere
    assert seen.problems == [], seen.problems


def _operations(collector: RunningCollector) -> set[tuple[str, str]]:
    document = httpx.get(f"{collector.url}/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    return {(method, path) for path, item in document["paths"].items() for method in item}


def test_swagger_ui_renders_every_operation_offline(
    offline: OfflinePage, collector: RunningCollector
) -> None:
    page = offline.page
    answer = page.goto(f"{collector.url}/docs")
    assert answer is not None and answer.ok
    policy = answer.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    script = next(part for part in policy.split(";") if part.strip().startswith("script-src"))
    assert "'sha256-" in script and "unsafe" not in script

    results = page.locator(".opblock-post").filter(
        has=page.locator('.opblock-summary-path[data-path="/api/v1/results"]')
    )
    expect(results).to_be_visible(timeout=10_000)
    expect(results.locator(".opblock-summary-description")).to_have_text("Post Results")
    expect(page.locator(".info .title")).to_contain_text("ReadyNet collector")
    shown = {
        (method, path)
        for block in page.locator(".opblock").all()
        if (method := block.locator(".opblock-summary-method").inner_text().lower())
        and (path := block.locator(".opblock-summary-path").get_attribute("data-path"))
    }
    assert shown == _operations(collector)

    # "Try it out" calls the collector from the page, within the page's policy.
    health = page.locator(".opblock-get").filter(
        has=page.locator('.opblock-summary-path[data-path="/healthz"]')
    )
    health.locator(".opblock-summary-control").click()
    health.get_by_role("button", name="Try it out").click()
    health.get_by_role("button", name="Execute").click()
    live = health.locator(".live-responses-table tr.response")
    expect(live.locator(".response-col_status")).to_have_text("200", timeout=5_000)
    expect(live.locator(".microlight").first).to_contain_text('"status": "ok"')


def test_the_cdn_pages_are_gone(collector: RunningCollector) -> None:
    # FastAPI's own /redoc would load ReDoc from a CDN; the collector serves none.
    assert httpx.get(f"{collector.url}/redoc").status_code == 404
    asset = httpx.get(f"{collector.url}/docs-assets/swagger-ui-bundle.js")
    assert asset.status_code == 200 and "SwaggerUIBundle" in asset.text
