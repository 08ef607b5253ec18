"""Readiness windows: each school's successful tests since a start time, summed up.

Two kinds of window. A school's circuit window holds its on-net and internet tests, the ones its
readiness verdict is judged on. A classroom window holds one room's classroom tests: those
measure the room's whole path (device, Wi-Fi, LAN and WAN), so they are summed up per room and
never mixed into the circuit's median.

Set-based: a fixed number of statements for any number of schools, and only one row per school
(or room) crosses the wire; the percentiles are the database's (`collector.store.percentiles`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, case, func, select
from sqlalchemy.orm import Session

from collector.store.models import Measurement, ThroughputResult
from collector.store.percentiles import Columns, Percentile, grouped_percentiles

THROUGHPUT = "throughput"
# The paths a school's verdict is judged on: the circuit, school to district and to internet.
CIRCUIT_PATHS = ("internet", "onnet")
CLASSROOM = "classroom"


@dataclass(frozen=True)
class SchoolWindow:
    """One school's successful on-net and internet tests since the window start.

    The latency figures cover the tests that timed round trips both idle and under load, so
    that idle and loaded compare like with like (an internet test has no loaded figure).
    `limited_link_mbps` is the slowest and fastest agent link of the agent-limited tests, when
    they reported one.
    """

    tests: int
    median_download_bps: float
    paths: tuple[str, ...]
    oldest: datetime
    p90_download_bps: float | None = None
    median_idle_latency_ms: float | None = None
    median_loaded_latency_ms: float | None = None
    median_responsiveness_rpm: float | None = None
    agent_limited_tests: int = 0
    limited_link_mbps: tuple[int, int] | None = None


@dataclass(frozen=True)
class RoomWindow:
    """One classroom's successful tests since the window start."""

    room: str
    tests: int
    median_download_bps: float
    median_upload_bps: float | None
    newest: datetime


def _successful_since(
    start: datetime, school_ids: Collection[int] | None, paths: Sequence[str]
) -> Select[Any]:
    query: Select[*tuple[Any, ...]] = (
        select(Measurement.school_id, Measurement.measured_at)
        .join(ThroughputResult, ThroughputResult.measurement_id == Measurement.id)
        .where(
            Measurement.kind == THROUGHPUT,
            Measurement.measured_at >= start,
            Measurement.error.is_(None),
            ThroughputResult.download_bps.is_not(None),
            ThroughputResult.path.in_(paths),
        )
    )
    if school_ids is not None:
        query = query.where(Measurement.school_id.in_(school_ids))
    return query


# The verdict's figures: PostgreSQL shares one sort per school between the two.
_DOWNLOAD_PERCENTILES = (Percentile("download", 0.5), Percentile("download", 0.9))
# Each of these sorts every school's tests once more: at 10,000 schools they took the cold
# board from 6.7 to 10.8 s, so only one school's answer asks for them.
_LATENCY_PERCENTILES = (
    Percentile("idle_ms", 0.5),
    Percentile("loaded_ms", 0.5),
    Percentile("rpm", 0.5),
)


def school_windows(
    *,
    session: Session,
    start: datetime,
    school_ids: Collection[int] | None = None,
    latency: bool = False,
) -> dict[int, SchoolWindow]:
    """Windows of `school_ids` (every school when None); schools without tests are left out.

    The latency medians are computed with `latency` only (None otherwise).
    """
    if school_ids is not None and not school_ids:
        return {}
    t = ThroughputResult
    loaded = t.loaded_latency_ms.is_not(None)
    source = (
        _successful_since(start, school_ids, CIRCUIT_PATHS)
        .add_columns(
            t.path,
            t.download_bps.label("download"),
            case((loaded, t.latency_ms)).label("idle_ms"),
            case((t.latency_ms.is_not(None), t.loaded_latency_ms)).label("loaded_ms"),
            t.responsiveness_rpm.label("rpm"),
            t.agent_limited,
            t.agent_link_mbps,
        )
        .subquery()
    )
    query = grouped_percentiles(
        dialect=session.get_bind().dialect.name,
        source=source,
        keys=["school_id"],
        percentiles=_DOWNLOAD_PERCENTILES + (_LATENCY_PERCENTILES if latency else ()),
        aggregates=_school_aggregates,
    )
    windows = {}
    for school_id, median, p90, *rest in session.execute(query):
        idle, loaded_ms, rpm = rest[:3] if latency else (None, None, None)
        tests, limited, slowest, fastest, oldest, *per_path = rest[3:] if latency else rest
        paths = tuple(p for p, n in zip(CIRCUIT_PATHS, per_path, strict=True) if n)
        windows[school_id] = SchoolWindow(
            tests=tests,
            median_download_bps=float(median),
            paths=paths,
            oldest=oldest,
            p90_download_bps=float(p90),
            median_idle_latency_ms=_float(idle),
            median_loaded_latency_ms=_float(loaded_ms),
            median_responsiveness_rpm=_float(rpm),
            agent_limited_tests=int(limited or 0),
            limited_link_mbps=None if slowest is None else (int(slowest), int(fastest)),
        )
    return windows


def _school_aggregates(c: Columns) -> list[ColumnElement[Any]]:
    limited_link = case((c.agent_limited, c.agent_link_mbps))
    return [
        func.count(),
        func.sum(case((c.agent_limited, 1), else_=0)),
        func.min(limited_link),
        func.max(limited_link),
        func.min(c.measured_at),
        *(func.sum(case((c.path == path, 1), else_=0)) for path in CIRCUIT_PATHS),
    ]


def room_windows(
    *, session: Session, start: datetime, school_ids: Collection[int]
) -> dict[int, list[RoomWindow]]:
    """Each classroom's window, by school, rooms in name order; schools without any left out."""
    if not school_ids:
        return {}
    t = ThroughputResult
    source = (
        _successful_since(start, school_ids, (CLASSROOM,))
        .add_columns(
            func.coalesce(t.room, "").label("room"),
            t.download_bps.label("download"),
            t.upload_bps.label("upload"),
        )
        .subquery()
    )
    query = grouped_percentiles(
        dialect=session.get_bind().dialect.name,
        source=source,
        keys=["school_id", "room"],
        percentiles=(Percentile("download", 0.5), Percentile("upload", 0.5)),
        aggregates=lambda c: [func.count(), func.max(c.measured_at)],
    )
    rooms: dict[int, list[RoomWindow]] = {}
    for school_id, room, download, upload, tests, newest in session.execute(query):
        window = RoomWindow(room, tests, float(download), _float(upload), newest)
        rooms.setdefault(school_id, []).append(window)
    for found in rooms.values():
        found.sort(key=lambda r: r.room)
    return rooms


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def schools_with_tests_since(*, session: Session, received_since: datetime) -> set[int]:
    """Schools that received a throughput result after `received_since` (collector clock)."""
    query = (
        select(Measurement.school_id)
        .where(Measurement.kind == THROUGHPUT, Measurement.received_at > received_since)
        .distinct()
    )
    return set(session.scalars(query))
