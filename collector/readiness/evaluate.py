"""Compare one school's measured throughput with a target profile. Pure: no I/O."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from collector.readiness.targets import Target, TargetProfile

Verdict = Literal["meets", "below", "inconclusive"]
MEASURE = "median download of successful throughput tests"
# SETDA and FCC targets are about contracted capacity; a speed test measures the experience.
BASIS = "measured throughput, not contracted capacity"


@dataclass(frozen=True)
class SchoolFacts:
    school_id: int
    name: str
    students: int
    staff: int

    def users(self, denominator: str) -> int:
        return self.students + self.staff if denominator == "students_staff" else self.students


@dataclass(frozen=True)
class WindowStats:
    """What a school's successful throughput tests inside the readiness window add up to.

    Only the window counts: a school whose circuit was upgraded last week is judged on its
    new circuit, not on a median that still remembers the old one.
    """

    start: datetime
    days: int
    tests: int
    median_download_bps: float | None
    paths: tuple[str, ...]

    @classmethod
    def from_downloads(
        cls, *, start: datetime, days: int, downloads_bps: Sequence[float], paths: Sequence[str]
    ) -> WindowStats:
        median = statistics.median(downloads_bps) if downloads_bps else None
        return cls(start, days, len(downloads_bps), median, tuple(sorted(set(paths))))


@dataclass(frozen=True)
class TargetVerdict:
    target_id: str
    link: str
    school_year: str
    mbps_per_1000_users: float
    required_mbps: float
    measured_mbps: float | None
    verdict: Verdict
    reason: str


@dataclass(frozen=True)
class Readiness:
    school_id: int
    school: str
    profile: str
    denominator: str
    users: int
    window_days: int
    window_start: datetime
    tests: int
    min_tests: int
    paths: list[str]
    measure: str
    basis: str
    targets: list[TargetVerdict]


def evaluate_school(
    *, school: SchoolFacts, window: WindowStats, profile: TargetProfile
) -> Readiness:
    """Give each target of `profile` a verdict for `school` from its tests inside `window`."""
    users = school.users(profile.denominator)
    measured_mbps = None if window.median_download_bps is None else window.median_download_bps / 1e6
    verdicts = [
        _judge(
            target=target,
            users=users,
            measured_mbps=measured_mbps,
            tests=window.tests,
            min_tests=profile.min_tests,
            days=window.days,
        )
        for target in profile.targets
    ]
    return Readiness(
        school_id=school.school_id,
        school=school.name,
        profile=profile.name,
        denominator=profile.denominator,
        users=users,
        window_days=window.days,
        window_start=window.start,
        tests=window.tests,
        min_tests=profile.min_tests,
        paths=list(window.paths),
        measure=MEASURE,
        basis=BASIS,
        targets=verdicts,
    )


def _judge(
    *,
    target: Target,
    users: int,
    measured_mbps: float | None,
    tests: int,
    min_tests: int,
    days: int,
) -> TargetVerdict:
    required_mbps = target.mbps_per_1000_users * users / 1000
    verdict: Verdict
    if users == 0:
        verdict, reason = "inconclusive", "the school has no students or staff on record"
    elif measured_mbps is None or tests < min_tests:
        verdict = "inconclusive"
        reason = (
            f"only {tests} of the {min_tests} tests needed in the last {days} days: test each "
            f"school {min_tests}+ times on various days and times"
        )
    elif measured_mbps >= required_mbps:
        verdict = "meets"
        reason = f"median {measured_mbps:.1f} Mbps >= required {required_mbps:.1f} Mbps"
    else:
        verdict = "below"
        reason = f"median {measured_mbps:.1f} Mbps < required {required_mbps:.1f} Mbps"
    return TargetVerdict(
        target_id=target.id,
        link=target.link,
        school_year=target.school_year,
        mbps_per_1000_users=target.mbps_per_1000_users,
        required_mbps=required_mbps,
        measured_mbps=measured_mbps,
        verdict=verdict,
        reason=reason,
    )
