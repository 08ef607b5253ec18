"""Readiness windows: each school's successful throughput tests since a start time, summed up.

Set-based: a fixed number of statements for any number of schools, and only a few rows per
school cross the wire. PostgreSQL computes the median itself (`percentile_cont`); SQLite, which
has no percentile aggregate, finds the middle tests with window functions. Both give the same
answer.
"""

from __future__ import annotations

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
    return _aggregated_with_windows(session, start, school_ids)


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


def _aggregated_with_windows(
    session: Session, start: datetime, school_ids: Collection[int] | None
) -> dict[int, SchoolWindow]:
    # SQLite has no percentile aggregate: number each school's downloads in order and average
    # the middle one or two, as statistics.median does. Only summaries leave the database;
    # loading every test of 1,000 schools into Python took about 150 MB at each refresh.
    ranked = (
        _successful_since(start, school_ids)
        .add_columns(
            ThroughputResult.download_bps.label("value"),
            func.row_number()
            .over(partition_by=Measurement.school_id, order_by=ThroughputResult.download_bps)
            .label("position"),
            func.count().over(partition_by=Measurement.school_id).label("tests"),
        )
        .subquery()
    )
    middle = (ranked.c.tests + 1) // 2, (ranked.c.tests + 2) // 2
    medians = (
        select(ranked.c.school_id, func.avg(ranked.c.value))
        .where(ranked.c.position.in_(middle))
        .group_by(ranked.c.school_id)
    )
    median = {school_id: float(value) for school_id, value in session.execute(medians)}
    per_path = (
        _successful_since(start, school_ids)
        .add_columns(ThroughputResult.path, func.count(), func.min(Measurement.measured_at))
        .group_by(Measurement.school_id, ThroughputResult.path)
    )
    tests: dict[int, int] = defaultdict(int)
    paths: dict[int, set[str]] = defaultdict(set)
    oldest: dict[int, datetime] = {}
    for school_id, path, count, first in session.execute(per_path):
        tests[school_id] += count
        paths[school_id].add(path)
        oldest[school_id] = min(first, oldest.get(school_id, first))
    return {
        school_id: SchoolWindow(
            tests[school_id], median[school_id], tuple(sorted(paths[school_id])), first
        )
        for school_id, first in oldest.items()
    }


def schools_with_tests_since(*, session: Session, received_since: datetime) -> set[int]:
    """Schools that received a throughput result after `received_since` (collector clock)."""
    query = (
        select(Measurement.school_id)
        .where(Measurement.kind == THROUGHPUT, Measurement.received_at > received_since)
        .distinct()
    )
    return set(session.scalars(query))
