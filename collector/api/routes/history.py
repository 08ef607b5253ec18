"""A school's history from the rollups: its throughput tests and uplinks per hour or day.

Raw results are kept `raw_retention_days`; these read `collector.store.rollups`' hourly and
daily rows, which stay. Only rolled-up periods appear (complete hours and days: the job runs
every `rollup_interval_s`). The summary is the readiness figures of the whole range, from the
merged sketches (within `relative_error` of the exact median). A viewer sees the schools of
their scope; any other school answers 404, as one that does not exist.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import AwareDatetime, BaseModel, BeforeValidator
from sqlalchemy import select
from sqlalchemy.orm import Session

from collector.api.auth import ViewerDep
from collector.api.deps import GateDep
from collector.api.errors import UNKNOWN_SCHOOL, error_responses
from collector.store.models import Device, School, ThroughputRollup, UplinkRollup
from collector.store.people import sees_school
from collector.store.rollups import CIRCUIT, RELATIVE_ERROR, summarise
from collector.store.windows import CIRCUIT_PATHS

router = APIRouter(prefix="/api/v1/schools", tags=["history"])
SchoolId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Period = Literal["hour", "day"]
PeriodQuery = Annotated[Period, Query(description="rows per UTC hour or per UTC day")]

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _rfc3339(value: object) -> object:
    # Query values are text, and pydantic would also read "0.5" as a Unix time: only the
    # date-time the schema publishes is taken.
    if isinstance(value, str) and not _RFC3339.fullmatch(value):
        raise ValueError("an RFC 3339 date-time with its offset, e.g. 2026-09-01T00:00:00Z")
    return value


DateTime = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]
SinceQuery = Annotated[
    DateTime | None,
    Query(
        description="periods starting at or after (default: 2 days before `until` for hours, "
        "30 days for days; at most 31 days of hours or 3660 of days before `until`)"
    ),
]
UntilQuery = Annotated[DateTime | None, Query(description="periods starting before (now)")]
PathQuery = Annotated[
    Literal["onnet", "internet", "classroom"] | None, Query(description="one path only")
]
# The longest range one request may ask for (a longer one is cut to its newest part): a month
# of hours, ten years of days.
MAX_RANGE = {"hour": timedelta(days=31), "day": timedelta(days=3660)}
DEFAULT_RANGE = {"hour": timedelta(days=2), "day": timedelta(days=30)}
# Times outside these are taken as these (the answer's since and until say what was used).
_EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)


class ThroughputPeriod(BaseModel):
    """One path's tests in one period (`tests`: the successful ones, which the figures cover)."""

    start: datetime
    path: str
    tests: int
    errors: int
    agent_limited_tests: int
    median_download_mbps: float | None
    p90_download_mbps: float | None
    min_download_mbps: float | None
    max_download_mbps: float | None
    median_upload_mbps: float | None
    p90_upload_mbps: float | None
    median_idle_latency_ms: float | None
    median_loaded_latency_ms: float | None


class HistorySummary(BaseModel):
    """The range's on-net and internet tests together, as readiness judges them (or the one
    path asked for)."""

    tests: int
    agent_limited_tests: int
    median_download_mbps: float
    p90_download_mbps: float
    # The medians are the merged sketches': within this fraction of the exact figure.
    relative_error: float


class SchoolHistory(BaseModel):
    school_id: int
    period: Period
    since: datetime
    until: datetime
    rows: list[ThroughputPeriod]
    summary: HistorySummary | None


class UplinkPeriod(BaseModel):
    """One uplink's busier-direction 5-minute rates in one period."""

    start: datetime
    device: str
    ifindex: int
    ifname: str
    role: str
    speed_mbps: int | None
    rates: int
    gaps: int
    p95_mbps: float | None
    max_mbps: float | None
    p95_utilisation: float | None


class UplinkHistory(BaseModel):
    school_id: int
    period: Period
    since: datetime
    until: datetime
    rows: list[UplinkPeriod]


def _utc(at: datetime) -> datetime:
    try:
        utc = at.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 with an offset
        return _EARLIEST if at.year < 5000 else _LATEST
    return min(max(utc, _EARLIEST), _LATEST)


def _range(
    period: Period, since: datetime | None, until: datetime | None
) -> tuple[datetime, datetime]:
    """The range asked for, in UTC, cut to the years and length allowed (empty if reversed)."""
    end = datetime.now(UTC) if until is None else _utc(until)
    longest = max(end - MAX_RANGE[period], _EARLIEST)
    start = max(end - DEFAULT_RANGE[period], _EARLIEST) if since is None else _utc(since)
    return max(start, longest), end


def _mbps(bps: float | None) -> float | None:
    return None if bps is None else bps / 1e6


@router.get("/{school_id}/history", responses=error_responses(401, 404, 422))
async def get_history(
    school_id: SchoolId,
    viewer: ViewerDep,
    gate: GateDep,
    period: PeriodQuery = "day",
    since: SinceQuery = None,
    until: UntilQuery = None,
    path: PathQuery = None,
) -> SchoolHistory:
    """The school's throughput tests per period, oldest first, with the range's summary."""
    start, end = _range(period, since, until)

    def read(session: Session) -> SchoolHistory | None:
        if session.get(School, school_id) is None or not sees_school(
            session=session, scope=viewer.scope, school_id=school_id
        ):
            return None
        r = ThroughputRollup
        query = (
            select(r)
            .where(r.school_id == school_id, r.period == period, r.start >= start, r.start < end)
            .order_by(r.start, r.path)
        )
        if path is not None:
            query = query.where(r.path == path)
        found = list(session.scalars(query))
        # The summary: of the one path asked for, else of the on-net and internet rows (hours)
        # or the days' circuit rows (the two merged, which are not listed themselves).
        wanted: set[str]
        if path is not None:
            wanted = {path}
        else:
            wanted = {CIRCUIT} if period == "day" else set(CIRCUIT_PATHS)
        summary = summarise(
            (row.school_id, row.tests, row.agent_limited, row.download_sketch)
            for row in found
            if row.path in wanted and row.tests
        ).get(school_id)
        found = [row for row in found if row.path != CIRCUIT]
        return SchoolHistory(
            school_id=school_id,
            period=period,
            since=start,
            until=end,
            rows=[
                ThroughputPeriod(
                    start=row.start,
                    path=row.path,
                    tests=row.tests,
                    errors=row.errors,
                    agent_limited_tests=row.agent_limited,
                    median_download_mbps=_mbps(row.download_median_bps),
                    p90_download_mbps=_mbps(row.download_p90_bps),
                    min_download_mbps=_mbps(row.download_min_bps),
                    max_download_mbps=_mbps(row.download_max_bps),
                    median_upload_mbps=_mbps(row.upload_median_bps),
                    p90_upload_mbps=_mbps(row.upload_p90_bps),
                    median_idle_latency_ms=row.idle_latency_median_ms,
                    median_loaded_latency_ms=row.loaded_latency_median_ms,
                )
                for row in found
            ],
            summary=None
            if summary is None
            else HistorySummary(
                tests=summary.tests,
                agent_limited_tests=summary.agent_limited_tests,
                median_download_mbps=summary.median_download_bps / 1e6,
                p90_download_mbps=summary.p90_download_bps / 1e6,
                relative_error=RELATIVE_ERROR,
            ),
        )

    history = await gate.run(read)
    if history is None:
        raise HTTPException(404, UNKNOWN_SCHOOL)
    return history


@router.get("/{school_id}/uplinks/history", responses=error_responses(401, 404, 422))
async def get_uplink_history(
    school_id: SchoolId,
    viewer: ViewerDep,
    gate: GateDep,
    period: PeriodQuery = "day",
    since: SinceQuery = None,
    until: UntilQuery = None,
) -> UplinkHistory:
    """The school's configured uplinks per period, oldest first (peaks as in readiness)."""
    start, end = _range(period, since, until)

    def read(session: Session) -> UplinkHistory | None:
        if session.get(School, school_id) is None or not sees_school(
            session=session, scope=viewer.scope, school_id=school_id
        ):
            return None
        u = UplinkRollup
        query = (
            select(u, Device.name)
            .join(Device, Device.id == u.device_id)
            .where(u.school_id == school_id, u.period == period, u.start >= start, u.start < end)
            .order_by(u.start, Device.name, u.ifindex, u.role)
        )
        rows = []
        for row, device in session.execute(query):
            speed = row.speed_mbps or None
            rows.append(
                UplinkPeriod(
                    start=row.start,
                    device=device,
                    ifindex=row.ifindex,
                    ifname=row.ifname,
                    role=row.role,
                    speed_mbps=speed,
                    rates=row.rates,
                    gaps=row.gaps,
                    p95_mbps=_mbps(row.p95_bps),
                    max_mbps=_mbps(row.max_bps),
                    p95_utilisation=None
                    if row.p95_bps is None or not speed
                    else row.p95_bps / (speed * 1e6),
                )
            )
        return UplinkHistory(school_id=school_id, period=period, since=start, until=end, rows=rows)

    history = await gate.run(read)
    if history is None:
        raise HTTPException(404, UNKNOWN_SCHOOL)
    return history
