"""The thin readiness evaluation: required Mbps, median measured Mbps, verdicts."""

from __future__ import annotations

import pytest

from collector.readiness.evaluate import SchoolFacts, evaluate_school
from collector.readiness.targets import UnknownProfile, available_profiles, load_profile

SETDA = load_profile("setda-2012")
SCHOOL = SchoolFacts(school_id=1, name="Lincoln", students=450, staff=50)  # 500 users


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
    result = evaluate_school(
        school=SCHOOL,
        downloads_bps=[d * 1e6 for d in downloads_mbps],
        paths=["onnet"] * len(downloads_mbps),
        profile=SETDA,
    )
    assert [t.verdict for t in result.targets] == verdicts
    assert [t.required_mbps for t in result.targets] == [50.0, 500.0]
    assert all(t.measured_mbps == measured for t in result.targets)
    assert result.users == 500
    assert result.tests == len(downloads_mbps)


def test_inconclusive_says_why() -> None:
    result = evaluate_school(
        school=SCHOOL, downloads_bps=[1e9] * 3, paths=["onnet"] * 3, profile=SETDA
    )
    assert result.targets[0].reason.startswith("only 3 of the 10 tests needed")


def test_school_without_users_is_inconclusive() -> None:
    empty = SchoolFacts(school_id=2, name="Closed", students=0, staff=0)
    result = evaluate_school(
        school=empty, downloads_bps=[1e9] * 10, paths=["onnet"] * 10, profile=SETDA
    )
    assert {t.verdict for t in result.targets} == {"inconclusive"}
    assert "no students or staff" in result.targets[0].reason
