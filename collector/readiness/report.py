"""Glue between the store and the pure evaluation: readiness of stored schools, windowed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from collector.readiness.evaluate import Readiness, SchoolFacts, WindowStats, evaluate_school
from collector.readiness.targets import TargetProfile
from collector.store.models import School
from collector.store.windows import SchoolWindow, school_windows


def window_start(days: int, now: datetime | None = None) -> datetime:
    return (now or datetime.now(UTC)) - timedelta(days=days)


def facts_of(school: School) -> SchoolFacts:
    return SchoolFacts(
        school_id=school.id, name=school.name, students=school.students, staff=school.staff
    )


def judge(
    *,
    school: SchoolFacts,
    window: SchoolWindow | None,
    start: datetime,
    days: int,
    profile: TargetProfile,
) -> Readiness:
    stats = (
        WindowStats(start, days, 0, None, ())
        if window is None
        else WindowStats(start, days, window.tests, window.median_download_bps, window.paths)
    )
    return evaluate_school(school=school, window=stats, profile=profile)


def school_readiness(
    *, session: Session, school: School, profile: TargetProfile, days: int
) -> Readiness:
    """One school's readiness over the last `days` days, read live."""
    start = window_start(days)
    windows = school_windows(session=session, start=start, school_ids=[school.id])
    return judge(
        school=facts_of(school),
        window=windows.get(school.id),
        start=start,
        days=days,
        profile=profile,
    )
