"""School read-outs: the list, readiness before any test, and the documented schema."""

from __future__ import annotations

import subprocess
import sys

import httpx

from collector import __version__
from tests.fixtures.collector import RunningCollector


def test_schools_are_listed(collector: RunningCollector) -> None:
    first = collector.add_school("Adams Middle", students=800, staff=70)
    second = collector.add_school("Baker High", students=1500, staff=120)
    assert httpx.get(f"{collector.url}/api/v1/schools").json() == [
        {"id": first, "name": "Adams Middle", "students": 800, "staff": 70},
        {"id": second, "name": "Baker High", "students": 1500, "staff": 120},
    ]


def test_readiness_without_tests_is_inconclusive(collector: RunningCollector) -> None:
    school = collector.add_school("Adams Middle", students=800, staff=70)
    body = httpx.get(f"{collector.url}/api/v1/schools/{school}/readiness").json()
    assert (body["users"], body["tests"], body["paths"]) == (870, 0, [])
    assert [(t["required_mbps"], t["measured_mbps"], t["verdict"]) for t in body["targets"]] == [
        (87.0, None, "inconclusive"),
        (870.0, None, "inconclusive"),
    ]
    assert body["targets"][0]["reason"].startswith("only 0 of the 10 tests needed")


def test_openapi_documents_the_readiness_answer(collector: RunningCollector) -> None:
    schema = httpx.get(f"{collector.url}/openapi.json").json()
    readiness = schema["components"]["schemas"]["Readiness"]["properties"]
    assert {"users", "tests", "basis", "targets"} <= set(readiness)
    assert "/api/v1/results" in schema["paths"]


def test_both_commands_report_their_version() -> None:
    for module in ("agent", "collector"):
        out = subprocess.run(
            [sys.executable, "-m", module, "--version"], capture_output=True, text=True, check=True
        ).stdout
        assert out.strip().endswith(__version__)
