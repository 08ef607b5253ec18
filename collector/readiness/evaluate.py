"""Compare one school's measured throughput with a target profile. Pure: no I/O."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from collector.readiness.targets import Target, TargetProfile
from collector.store.uplinks import UplinkPeak, WifiPeak

Verdict = Literal["meets", "below", "inconclusive"]
MEASURE = "median download of successful on-net and internet throughput tests"
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
    p90_download_bps: float | None = None
    # Over the tests that timed round trips both idle and under load (like with like).
    median_idle_latency_ms: float | None = None
    median_loaded_latency_ms: float | None = None
    median_responsiveness_rpm: float | None = None
    # Tests that came within reach of the agent's own link: floors, not the school's capacity.
    agent_limited_tests: int = 0
    # Slowest and fastest agent link of those tests, when they reported one.
    limited_link_mbps: tuple[int, int] | None = None

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
class ClassroomWindow:
    """One room's classroom tests in the window: the room's whole path, not the circuit."""

    room: str
    tests: int
    median_download_mbps: float
    median_upload_mbps: float | None
    newest_test: datetime


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
    p90_download_mbps: float | None = None
    median_idle_latency_ms: float | None = None
    median_loaded_latency_ms: float | None = None
    median_responsiveness_rpm: float | None = None
    agent_limited_tests: int = 0
    # The slowest agent link among the agent-limited tests.
    agent_link_mbps: int | None = None
    # Reported beside the verdict, never in it; filled in for one school's answer only.
    classrooms: list[ClassroomWindow] = field(default_factory=list)
    # The configured uplinks' peak use (5-minute rates over SNMP) and the Wi-Fi peaks.
    uplinks: list[UplinkPeak] = field(default_factory=list)
    wifi: list[WifiPeak] = field(default_factory=list)


def evaluate_school(
    *,
    school: SchoolFacts,
    window: WindowStats,
    profile: TargetProfile,
    classrooms: Sequence[ClassroomWindow] = (),
) -> Readiness:
    """Give each target of `profile` a verdict for `school` from its tests inside `window`.

    `classrooms` are reported as they are: a room's test is not the circuit's.
    """
    users = school.users(profile.denominator)
    verdicts = [
        _judge(target=target, users=users, window=window, min_tests=profile.min_tests)
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
        p90_download_mbps=_mbps(window.p90_download_bps),
        median_idle_latency_ms=window.median_idle_latency_ms,
        median_loaded_latency_ms=window.median_loaded_latency_ms,
        median_responsiveness_rpm=window.median_responsiveness_rpm,
        agent_limited_tests=window.agent_limited_tests,
        agent_link_mbps=None if window.limited_link_mbps is None else window.limited_link_mbps[0],
        classrooms=list(classrooms),
    )


def _mbps(bps: float | None) -> float | None:
    return None if bps is None else bps / 1e6


def _judge(*, target: Target, users: int, window: WindowStats, min_tests: int) -> TargetVerdict:
    required_mbps = target.mbps_per_1000_users * users / 1000
    measured_mbps = _mbps(window.median_download_bps)
    tests = window.tests
    verdict: Verdict
    if users == 0:
        verdict, reason = "inconclusive", "the school has no students or staff on record"
    elif measured_mbps is None or tests < min_tests:
        verdict = "inconclusive"
        reason = (
            f"only {tests} of the {min_tests} tests needed in the last {window.days} days: test "
            f"each school {min_tests}+ times on various days and times"
        )
    elif measured_mbps >= required_mbps:
        # A floor that meets the target is enough, agent-limited or not.
        verdict = "meets"
        reason = f"median {measured_mbps:.1f} Mbps >= required {required_mbps:.1f} Mbps"
    elif 2 * window.agent_limited_tests >= tests:
        verdict = "inconclusive"
        reason = (
            f"median {measured_mbps:.1f} Mbps < required {required_mbps:.1f} Mbps, but "
            f"{window.agent_limited_tests} of the {tests} tests were limited by "
            f"{_agent_link(window.limited_link_mbps)}: the median is a floor, not the school's "
            "capacity; connect the agent to a faster port (by cable) and test again"
        )
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


def _agent_link(link_mbps: tuple[int, int] | None) -> str:
    if link_mbps is None:
        return "the agent's own link (its speed not reported)"
    slowest, fastest = link_mbps
    if slowest == fastest:
        return f"the agent's own {slowest} Mbps link"
    return f"the agents' own links of {slowest} to {fastest} Mbps"
