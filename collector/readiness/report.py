"""Glue between the store and the pure evaluation: readiness of stored schools, windowed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from collector.readiness.evaluate import (
    ClassroomWindow,
    Readiness,
    SchoolFacts,
    WindowStats,
    evaluate_school,
)
from collector.readiness.targets import TargetProfile
from collector.store.models import School
from collector.store.uplinks import uplink_peaks, wifi_peaks
from collector.store.windows import RoomWindow, SchoolWindow, room_windows, school_windows


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
    rooms: Sequence[RoomWindow] = (),
) -> Readiness:
    stats = (
        WindowStats(start, days, 0, None, ())
        if window is None
        else WindowStats(
            start,
            days,
            window.tests,
            window.median_download_bps,
            window.paths,
            p90_download_bps=window.p90_download_bps,
            median_idle_latency_ms=window.median_idle_latency_ms,
            median_loaded_latency_ms=window.median_loaded_latency_ms,
            median_responsiveness_rpm=window.median_responsiveness_rpm,
            agent_limited_tests=window.agent_limited_tests,
            limited_link_mbps=window.limited_link_mbps,
        )
    )
    classrooms = [
        ClassroomWindow(
            room=r.room,
            tests=r.tests,
            median_download_mbps=r.median_download_bps / 1e6,
            median_upload_mbps=None if r.median_upload_bps is None else r.median_upload_bps / 1e6,
            newest_test=r.newest,
        )
        for r in rooms
    ]
    return evaluate_school(school=school, window=stats, profile=profile, classrooms=classrooms)


def school_readiness(
    *, session: Session, school: School, profile: TargetProfile, days: int
) -> Readiness:
    """One school's readiness over the last `days` days, read live, with its classrooms and
    the peaks of its uplinks and Wi-Fi."""
    start = window_start(days)
    windows = school_windows(session=session, start=start, school_ids=[school.id], latency=True)
    rooms = room_windows(session=session, start=start, school_ids=[school.id])
    readiness = judge(
        school=facts_of(school),
        window=windows.get(school.id),
        start=start,
        days=days,
        profile=profile,
        rooms=rooms.get(school.id, ()),
    )
    return replace(
        readiness,
        uplinks=uplink_peaks(session=session, school_id=school.id, start=start),
        wifi=wifi_peaks(session=session, school_id=school.id, start=start),
    )
