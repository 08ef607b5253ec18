"""School read-outs: the list, readiness before any test, and the documented schema."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from agent.wire import Batch, ThroughputTest
from collector import __version__
from collector.store.classroom import issue_classroom_code
from tests.fixtures.collector import RunningCollector


def test_schools_are_listed(collector: RunningCollector) -> None:
    first = collector.add_school("Adams Middle", students=800, staff=70)
    second = collector.add_school("Baker High", students=1500, staff=120)
    assert httpx.get(f"{collector.url}/api/v1/schools", headers=collector.reader).json() == [
        {"id": first, "name": "Adams Middle", "students": 800, "staff": 70},
        {"id": second, "name": "Baker High", "students": 1500, "staff": 120},
    ]


def test_readiness_without_tests_is_inconclusive(collector: RunningCollector) -> None:
    school = collector.add_school("Adams Middle", students=800, staff=70)
    body = httpx.get(
        f"{collector.url}/api/v1/schools/{school}/readiness", headers=collector.reader
    ).json()
    assert (body["users"], body["tests"], body["paths"]) == (870, 0, [])
    assert [(t["required_mbps"], t["measured_mbps"], t["verdict"]) for t in body["targets"]] == [
        (87.0, None, "inconclusive"),
        (870.0, None, "inconclusive"),
    ]
    assert body["targets"][0]["reason"].startswith("only 0 of the 10 tests needed")


def test_openapi_documents_the_readiness_answer(collector: RunningCollector) -> None:
    schema = httpx.get(f"{collector.url}/openapi.json").json()
    readiness = schema["components"]["schemas"]["Readiness"]["properties"]
    assert {"users", "tests", "basis", "targets", "agent_limited_tests", "classrooms"} <= set(
        readiness
    )
    assert "/api/v1/results" in schema["paths"]


def test_both_commands_report_their_version() -> None:
    for module in ("agent", "collector"):
        out = subprocess.run(
            [sys.executable, "-m", module, "--version"], capture_output=True, text=True, check=True
        ).stdout
        assert out.strip().endswith(__version__)


def test_readiness_reports_the_window_and_classrooms_apart(
    collector_any_db: RunningCollector,
) -> None:
    """Classroom tests are the room's whole path: listed per room, never in the median."""
    collector = collector_any_db
    school = collector.add_school("Adams Middle", students=450, staff=50)  # 50 / 500 Mbps
    token = collector.enroll(school)
    tests = [
        ThroughputTest(
            path="onnet",
            server="x",
            download_bps=94e6 + n * 1e5,
            latency_ms=4.0,
            loaded_latency_ms=120.0 + n,
            responsiveness_rpm=60_000 / (120.0 + n),
            agent_link_mbps=100,
            agent_limited=n < 7,
        )
        for n in range(11)
    ]
    batch = Batch(measurements=list(tests)).model_dump_json()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    assert httpx.post(f"{collector.url}/api/v1/results", content=batch, headers=headers).is_success
    with collector.sessions() as session:
        code = issue_classroom_code(session=session, school_id=school).code
    for room, mbps in (("Room 12", 900.0), ("Room 12", 700.0), ("Library", 40.0)):
        test = ThroughputTest(path="classroom", server="x", room=room, download_bps=mbps * 1e6)
        response = httpx.post(
            f"{collector.url}/api/v1/classroom/results",
            content=test.model_dump_json(),
            headers={"X-Classroom-Code": code, "Content-Type": "application/json"},
        )
        assert response.status_code == 200, response.text

    body = httpx.get(
        f"{collector.url}/api/v1/schools/{school}/readiness", headers=collector.reader
    ).json()
    assert (body["tests"], body["paths"], body["agent_limited_tests"]) == (11, ["onnet"], 7)
    assert [t["measured_mbps"] for t in body["targets"]] == [94.5, 94.5]
    assert [t["verdict"] for t in body["targets"]] == ["meets", "inconclusive"]
    assert (
        "7 of the 11 tests were limited by the agent's own 100 Mbps link"
        in (body["targets"][1]["reason"])
    )
    assert body["p90_download_mbps"] == pytest.approx(94.9)
    assert (body["median_idle_latency_ms"], body["median_loaded_latency_ms"]) == (4.0, 125.0)
    assert body["median_responsiveness_rpm"] == pytest.approx(480.0)
    assert body["agent_link_mbps"] == 100
    rooms = [(r["room"], r["tests"], r["median_download_mbps"]) for r in body["classrooms"]]
    assert rooms == [("Library", 1, 40.0), ("Room 12", 2, 800.0)]
