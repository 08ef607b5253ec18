"""The thin readiness evaluation: required Mbps, median measured Mbps, verdicts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from collector.readiness.evaluate import Readiness, SchoolFacts, WindowStats, evaluate_school
from collector.readiness.targets import UnknownProfile, available_profiles, load_profile

SETDA = load_profile("setda-2012")
SCHOOL = SchoolFacts(school_id=1, name="Lincoln", students=450, staff=50)  # 500 users
START = datetime(2026, 11, 1, tzinfo=UTC)


def _evaluate(school: SchoolFacts, downloads_bps: list[float]) -> Readiness:
    window = WindowStats.from_downloads(
        start=START, days=30, downloads_bps=downloads_bps, paths=["onnet"] * len(downloads_bps)
    )
    return evaluate_school(school=school, window=window, profile=SETDA)


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
