"""Reading stored results back: one kind at a time, filtered, in pages that stay fast.

Pages are keyset pages over (measured_at, id): the cursor is the last row's key, so page 500
costs what page 1 costs (no OFFSET), and rows arriving meanwhile never shift a page. Each kind
has its own flat row, the shape the CSV export writes as is.

Example:
    >>> page = read_results(session=session, query=ResultQuery(kind="throughput"), scope=scope)
    >>> page.rows[0]["download_bps"], page.next_cursor
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Select, and_, false, or_, select
from sqlalchemy.orm import Session

from collector.store.models import (
    Agent,
    Device,
    LatencyResult,
    Measurement,
    School,
    SnmpPollResult,
    ThroughputResult,
)
from collector.store.people import Scope, visible_schools

Kind = Literal["throughput", "latency", "snmp_poll"]
MAX_PAGE = 1000

_COMMON = (
    Measurement.id,
    Measurement.school_id,
    School.name.label("school"),
    Agent.name.label("agent"),
    Measurement.measured_at,
    Measurement.received_at,
    Measurement.error,
)
_BY_KIND: dict[str, tuple[Any, ...]] = {
    "throughput": (
        ThroughputResult.path,
        ThroughputResult.server,
        ThroughputResult.streams,
        ThroughputResult.download_bps,
        ThroughputResult.upload_bps,
        ThroughputResult.download_p90_bps,
        ThroughputResult.upload_p90_bps,
        ThroughputResult.latency_ms,
        ThroughputResult.loaded_latency_ms,
        ThroughputResult.responsiveness_rpm,
        ThroughputResult.download_bytes,
        ThroughputResult.upload_bytes,
        ThroughputResult.duration_s,
        ThroughputResult.agent_link_mbps,
        ThroughputResult.agent_wifi,
        ThroughputResult.agent_limited,
        ThroughputResult.background_bps,
        ThroughputResult.server_id,
        ThroughputResult.sponsor,
        ThroughputResult.distance_km,
        ThroughputResult.room,
    ),
    "latency": (
        LatencyResult.target,
        LatencyResult.method,
        LatencyResult.answered,
        LatencyResult.lost,
        LatencyResult.rtt_p50_ms,
        LatencyResult.rtt_p90_ms,
        LatencyResult.jitter_ms,
    ),
    "snmp_poll": (
        Device.name.label("device"),
        SnmpPollResult.address,
        SnmpPollResult.profile,
        SnmpPollResult.sys_object_id,
        SnmpPollResult.sys_uptime_ticks,
        SnmpPollResult.clients,
        SnmpPollResult.aps_up,
        SnmpPollResult.aps_total,
        SnmpPollResult.duration_s,
    ),
}


def columns(kind: Kind) -> list[str]:
    """The row's keys, in order: the CSV header."""
    return [c.key for c in (*_COMMON, *_BY_KIND[kind])]


class BadCursor(ValueError):
    """The cursor is not one this collector gave out."""


@dataclass(frozen=True)
class ResultQuery:
    kind: Kind
    school_id: int | None = None
    # Throughput tests only: onnet, internet or classroom.
    path: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100
    cursor: str | None = None


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    next_cursor: str | None


def read_results(*, session: Session, query: ResultQuery, scope: Scope) -> Page:
    """One page of `query`'s results within `scope`, oldest first."""
    limit = max(1, min(query.limit, MAX_PAGE))
    statement = _select(query, scope, after=_decoded(query.cursor)).limit(limit + 1)
    rows = [dict(row._mapping) for row in session.execute(statement)]
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if more else None
    cursor = None if last is None else _encoded(last["measured_at"], last["id"])
    return Page(rows=rows, next_cursor=cursor)


def _select(
    query: ResultQuery, scope: Scope, *, after: tuple[datetime, uuid.UUID] | None
) -> Select[Any]:
    statement = (
        select(*_COMMON, *_BY_KIND[query.kind])
        .join(School, School.id == Measurement.school_id)
        .outerjoin(Agent, Agent.id == Measurement.agent_id)
        .where(Measurement.kind == query.kind, visible_schools(scope))
        .order_by(Measurement.measured_at, Measurement.id)
    )
    if query.kind == "throughput":
        statement = statement.join(
            ThroughputResult, ThroughputResult.measurement_id == Measurement.id
        )
        if query.path is not None:
            statement = statement.where(ThroughputResult.path == query.path)
    else:
        if query.kind == "latency":
            statement = statement.join(
                LatencyResult, LatencyResult.measurement_id == Measurement.id
            )
        else:
            statement = statement.join(
                SnmpPollResult, SnmpPollResult.measurement_id == Measurement.id
            ).join(Device, Device.id == SnmpPollResult.device_id)
        if query.path is not None:
            # Only throughput tests have a path: asked for one, other kinds have none to show.
            statement = statement.where(false())
    if query.school_id is not None:
        statement = statement.where(Measurement.school_id == query.school_id)
    if query.since is not None:
        statement = statement.where(Measurement.measured_at >= query.since)
    if query.until is not None:
        statement = statement.where(Measurement.measured_at < query.until)
    if after is not None:
        at, last_id = after
        statement = statement.where(
            or_(
                Measurement.measured_at > at,
                and_(Measurement.measured_at == at, Measurement.id > last_id),
            )
        )
    return statement


def _encoded(at: datetime, last_id: uuid.UUID) -> str:
    raw = f"{at.isoformat()}|{last_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decoded(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, last_id = raw.split("|")
        parsed = datetime.fromisoformat(at)
        if parsed.tzinfo is None:
            raise ValueError("naive")
        return parsed, uuid.UUID(last_id)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadCursor("not a cursor from this collector: start again without one") from exc
