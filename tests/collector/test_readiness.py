"""The thin readiness evaluation: required Mbps, median measured Mbps, verdicts."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from collector.readiness.evaluate import Readiness, SchoolFacts, WindowStats, evaluate_school
from collector.readiness.targets import UnknownProfile, available_profiles, load_profile

SETDA = load_profile("setda-2012")
SCHOOL = SchoolFacts(school_id=1, name="Lincoln", students=450, staff=50)  # 500 users
START = datetime(2026, 11, 1, tzinfo=UTC)


def _window(downloads_bps: list[float]) -> WindowStats:
    return WindowStats.from_downloads(
        start=START, days=30, downloads_bps=downloads_bps, paths=["onnet"] * len(downloads_bps)
    )


def _evaluate(school: SchoolFacts, downloads_bps: list[float]) -> Readiness:
    return evaluate_school(school=school, window=_window(downloads_bps), profile=SETDA)


def test_setda_2012_profile_holds_the_published_numbers() -> None:
    assert "setda-2012" in available_profiles()
    assert SETDA.denominator == "students_staff"
    assert SETDA.min_tests == 10
    assert [(t.school_year, t.mbps_per_1000_users) for t in SETDA.targets] == [
        ("2014-15", 100),
        ("2017-18", 1000),
    ]


def test_unknown_profile_is_named() -> None:
    with pytest.raises(UnknownProfile, match="setda-1999"):
        load_profile("setda-1999")


@pytest.mark.parametrize(
    ("downloads_mbps", "verdicts", "measured"),
    [
        # 500 users: 50 Mbps for 2014-15, 500 Mbps for 2017-18.
        ([600.0] * 10, ["meets", "meets"], 600.0),
        ([100.0] * 10, ["meets", "below"], 100.0),
        ([50.0] * 10, ["meets", "below"], 50.0),  # exactly the requirement meets it
        ([40.0] * 10, ["below", "below"], 40.0),
        # The median resists one outlier in either direction.
        ([10.0] + [600.0] * 9 + [5000.0], ["meets", "meets"], 600.0),
        ([600.0] * 9, ["inconclusive", "inconclusive"], 600.0),  # 9 tests: one short
        ([], ["inconclusive", "inconclusive"], None),
    ],
)
def test_verdicts(downloads_mbps: list[float], verdicts: list[str], measured: float | None) -> None:
    result = _evaluate(SCHOOL, [d * 1e6 for d in downloads_mbps])
    assert [t.verdict for t in result.targets] == verdicts
    assert [t.required_mbps for t in result.targets] == [50.0, 500.0]
    assert all(t.measured_mbps == measured for t in result.targets)
    assert result.users == 500
    assert result.tests == len(downloads_mbps)


def test_inconclusive_says_why() -> None:
    result = _evaluate(SCHOOL, [1e9] * 3)
    assert result.targets[0].reason.startswith("only 3 of the 10 tests needed in the last 30 days")
    assert (result.window_days, result.window_start) == (30, START)


def test_school_without_users_is_inconclusive() -> None:
    empty = SchoolFacts(school_id=2, name="Closed", students=0, staff=0)
    result = _evaluate(empty, [1e9] * 10)
    assert {t.verdict for t in result.targets} == {"inconclusive"}
    assert "no students or staff" in result.targets[0].reason


@pytest.mark.parametrize(
    ("median_mbps", "limited", "verdicts"),
    [
        # 12 tests; 500 users need 50 and 500 Mbps.
        (94.0, 6, ["meets", "inconclusive"]),  # half limited: a floor; a floor that meets stands
        (94.0, 12, ["meets", "inconclusive"]),
        (94.0, 5, ["meets", "below"]),  # fewer than half: the median is the school's
        (40.0, 7, ["inconclusive", "inconclusive"]),
        (600.0, 12, ["meets", "meets"]),
    ],
)
def test_agent_limited_tests_are_a_floor(
    median_mbps: float, limited: int, verdicts: list[str]
) -> None:
    window = replace(
        _window([median_mbps * 1e6] * 12), agent_limited_tests=limited, limited_link_mbps=(100, 100)
    )
    result = evaluate_school(school=SCHOOL, window=window, profile=SETDA)
    assert [t.verdict for t in result.targets] == verdicts
    assert (result.agent_limited_tests, result.agent_link_mbps) == (limited, 100)


def test_an_agent_limited_verdict_names_the_link_and_the_count() -> None:
    window = replace(_window([94e6] * 12), agent_limited_tests=9, limited_link_mbps=(100, 100))
    result = evaluate_school(school=SCHOOL, window=window, profile=SETDA)
    reason = result.targets[1].reason
    assert reason.startswith("median 94.0 Mbps < required 500.0 Mbps, but 9 of the 12 tests")
    assert "limited by the agent's own 100 Mbps link" in reason
    assert "a floor, not the school's capacity" in reason
    mixed = evaluate_school(
        school=SCHOOL, window=replace(window, limited_link_mbps=(100, 1000)), profile=SETDA
    )
    assert "the agents' own links of 100 to 1000 Mbps" in mixed.targets[1].reason
    unknown = evaluate_school(
        school=SCHOOL, window=replace(window, limited_link_mbps=None), profile=SETDA
    )
    assert "the agent's own link (its speed not reported)" in unknown.targets[1].reason
    assert unknown.agent_link_mbps is None


def test_the_answer_carries_the_window_figures() -> None:
    window = replace(
        _window([100e6] * 10),
        p90_download_bps=180e6,
        median_idle_latency_ms=8.0,
        median_loaded_latency_ms=240.0,
        median_responsiveness_rpm=250.0,
    )
    result = evaluate_school(school=SCHOOL, window=window, profile=SETDA)
    assert result.p90_download_mbps == 180.0
    assert (result.median_idle_latency_ms, result.median_loaded_latency_ms) == (8.0, 240.0)
    assert result.median_responsiveness_rpm == 250.0
    assert (result.agent_limited_tests, result.classrooms) == (0, [])
