"""The classroom page in headless Chromium (Debian's, driven by Playwright) against a real
collector on 127.0.0.1: a teacher opens the link with the code, enters the room, runs the test
(shortened through the page's query parameters), and the result lands in the database with the
room, the school and path "classroom". A refused code and a test cut short are shown in plain
words; a test cut short is saved with its error, since a failed measurement is data too.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from sqlalchemy import select

from collector.api import errors
from collector.store.classroom import issue_classroom_code
from collector.store.models import Measurement, ThroughputResult
from tests.fixtures.collector import RunningCollector, StartCollector

CHROMIUM = "/usr/bin/chromium"
# A phone-sized screen.
VIEWPORT = {"width": 390, "height": 844}
SHORT_TEST = "duration_s=1.5&warmup_s=0.5&pings=4"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    yield page
    context.close()
    assert problems == [], problems


def _issue(collector: RunningCollector, school_id: int) -> str:
    with collector.sessions() as session:
        return issue_classroom_code(session=session, school_id=school_id).code


def _stored(collector: RunningCollector) -> list[tuple[Measurement, ThroughputResult]]:
    with collector.sessions() as session:
        return [
            (m, t)
            for m, t in session.execute(
                select(Measurement, ThroughputResult).join(ThroughputResult)
            )
        ]


def _run(page: Page, collector: RunningCollector, query: str, room: str) -> None:
    page.goto(f"{collector.url}/classroom?{query}")
    page.get_by_label("Room", exact=True).fill(room)
    page.get_by_role("button", name="Start the test").click()
    expect(page.get_by_role("heading", name=f"Result for {room}")).to_be_visible(timeout=30_000)


def test_a_classroom_test_is_recorded_with_room_and_school(
    page: Page, collector: RunningCollector
) -> None:
    collector.add_school()
    school = collector.add_school("Baker Middle")
    code = _issue(collector, school)
    _run(page, collector, f"code={code}&{SHORT_TEST}", "Room 114")

    expect(page.locator("#saved")).to_have_text("Saved for Room 114. Thank you.", timeout=10_000)
    summary = page.locator("#summary").inner_text()
    assert "downloaded at" in summary and "Mbit/s" in summary
    assert "the whole path" in summary and "Wi-Fi" in summary
    assert page.locator("#problem").is_hidden()
    # Usable on a phone: nothing wider than the screen.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    ((measurement, test),) = _stored(collector)
    assert (measurement.agent_id, measurement.school_id, measurement.error) == (None, school, None)
    assert (test.path, test.room, test.streams) == ("classroom", "Room 114", 5)
    assert test.server == f"{collector.url}/"
    assert code not in test.server
    # Loopback moves hundreds of Mbit/s at least; anything near 0 or absurd means a bad count.
    assert test.download_bps is not None and 1e7 < test.download_bps < 1e12
    assert test.upload_bps is not None and 1e7 < test.upload_bps < 1e12
    assert test.download_p90_bps is not None and test.download_p90_bps > 0
    assert test.upload_p90_bps is not None and test.upload_p90_bps > 0
    # The mean after warm-up cannot exceed what moved in the whole phase.
    assert test.download_bytes * 8 >= test.download_bps * (1.5 - 0.5) * 0.9
    assert test.latency_ms is not None and 0 < test.latency_ms < 1000
    assert test.loaded_latency_ms is not None and 0 < test.loaded_latency_ms < 5000
    # Capped at the wire's 60,000 RPM (1 ms): an idle loopback may answer faster.
    assert test.responsiveness_rpm == pytest.approx(min(60_000 / test.loaded_latency_ms, 60_000))
    assert 3.0 <= test.duration_s < 10  # two phases of 1.5 s, sampled to their end


def test_an_unknown_code_is_explained_and_nothing_is_saved(
    page: Page, collector: RunningCollector
) -> None:
    collector.add_school()
    _run(page, collector, f"code=2222-2222&{SHORT_TEST}", "Library")
    expect(page.get_by_role("alert")).to_contain_text("not known or has been revoked")
    expect(page.locator("#saved")).to_have_text("Nothing was saved.")
    assert _stored(collector) == []


def test_a_mistyped_code_is_caught_before_testing(page: Page, collector: RunningCollector) -> None:
    page.goto(f"{collector.url}/classroom")
    page.get_by_label("Classroom code").fill("7KX4-M2Q")
    page.get_by_label("Room", exact=True).fill("Room 2")
    page.get_by_role("button", name="Start the test").click()
    expect(page.get_by_role("alert")).to_contain_text("Enter the classroom code")
    expect(page.get_by_label("Classroom code")).to_be_focused()
    assert page.locator("#progress").is_hidden()


def test_a_test_cut_short_by_the_school_budget_is_saved_with_its_error(
    page: Page, start_collector: StartCollector
) -> None:
    collector = start_collector(classroom_download_budget_bytes=2 << 20)
    school = collector.add_school()
    code = _issue(collector, school)
    # Another room used the school's download budget up a moment ago.
    used = httpx.get(f"{collector.url}/librespeed/{code}/garbage.php", params={"ckSize": "2"})
    assert len(used.content) == 2 << 20
    _run(page, collector, f"code={code}&{SHORT_TEST}", "Gym")
    expect(page.locator("#problem")).to_contain_text("The download was refused (HTTP 429")
    expect(page.locator("#saved")).to_have_text("Saved for Gym. Thank you.", timeout=10_000)
    ((measurement, test),) = _stored(collector)
    assert measurement.error is not None
    assert errors.CLASSROOM_BUDGET in measurement.error
    assert (measurement.school_id, test.room, test.path) == (school, "Gym", "classroom")
    assert test.latency_ms is not None and test.download_bps is None
