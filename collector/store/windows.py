"""Readiness windows: each school's successful throughput tests since a start time, summed up.

Set-based: one statement for any number of schools. PostgreSQL computes the median itself
(`percentile_cont`), so only one row per school crosses the wire; SQLite has no percentile
aggregate, so its rows come back and the median is taken here. Both give the same answer.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from collector.store.models import Measurement, ThroughputResult

THROUGHPUT = "throughput"


@dataclass(frozen=True)
class SchoolWindow:
    """One school's successful tests since the window start."""

    tests: int
    median_download_bps: float
    paths: tuple[str, ...]
    oldest: datetime


def _successful_since(start: datetime, school_ids: Collection[int] | None) -> Select[int]:
    query = (
        select(Measurement.school_id)
        .join(ThroughputResult, ThroughputResult.measurement_id == Measurement.id)
        .where(
            Measurement.kind == THROUGHPUT,
            Measurement.measured_at >= start,
            Measurement.error.is_(None),
            ThroughputResult.download_bps.is_not(None),
        )
    )
    if school_ids is not None:
        query = query.where(Measurement.school_id.in_(school_ids))
    return query


def school_windows(
    *, session: Session, start: datetime, school_ids: Collection[int] | None = None
) -> dict[int, SchoolWindow]:
    """Windows of `school_ids` (every school when None); schools without tests are left out."""
    if school_ids is not None and not school_ids:
        return {}
    if session.get_bind().dialect.name == "postgresql":
        return _aggregated_in_database(session, start, school_ids)
    return _aggregated_here(session, start, school_ids)


def _aggregated_in_database(
    session: Session, start: datetime, school_ids: Collection[int] | None
) -> dict[int, SchoolWindow]:
    query = (
        _successful_since(start, school_ids)
        .add_columns(
            func.count(),
            func.percentile_cont(0.5).within_group(ThroughputResult.download_bps),
            func.array_agg(ThroughputResult.path.distinct()),
            func.min(Measurement.measured_at),
        )
        .group_by(Measurement.school_id)
    )
    return {
        school_id: SchoolWindow(count, float(median), tuple(sorted(paths)), oldest)
        for school_id, count, median, paths, oldest in session.execute(query)
    }


def _aggregated_here(
    session: Session, start: datetime, school_ids: Collection[int] | None
) -> dict[int, SchoolWindow]:
    query = _successful_since(start, school_ids).add_columns(
        ThroughputResult.download_bps, ThroughputResult.path, Measurement.measured_at
    )
    downloads: dict[int, list[float]] = defaultdict(list)
    paths: dict[int, set[str]] = defaultdict(set)
    oldest: dict[int, datetime] = {}
    for school_id, download_bps, path, measured_at in session.execute(query):
        downloads[school_id].append(download_bps)
        paths[school_id].add(path)
        if school_id not in oldest or measured_at < oldest[school_id]:
            oldest[school_id] = measured_at
    return {
        school_id: SchoolWindow(
            len(values),
            statistics.median(values),
            tuple(sorted(paths[school_id])),
            oldest[school_id],
        )
        for school_id, values in downloads.items()
    }


def schools_with_tests_since(*, session: Session, received_since: datetime) -> set[int]:
    """Schools that received a throughput result after `received_since` (collector clock)."""
    query = (
        select(Measurement.school_id)
        .where(Measurement.kind == THROUGHPUT, Measurement.received_at > received_since)
        .distinct()
    )
    return set(session.scalars(query))
