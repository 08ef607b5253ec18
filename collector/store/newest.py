"""The newest tests of each school, for the per-district detail scrape of /metrics.

One statement each, whatever the number of schools: the tests of the schools asked for since a
start time (the readiness window) are numbered newest first within their group with
`row_number()` and the first of each group is kept. Reading only the window bounds the scan by
what a month holds, never the whole history, and a group with no test in the window drops out,
as a stale value should. Rows carry school ids: names are the caller's, read when rendered.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from collector.store.latest import Scope
from collector.store.models import Agent, LatencyResult, Measurement, School, ThroughputResult


@dataclass(frozen=True)
class NewestTest:
    """A school's newest successful throughput test over one path (and room, for classrooms)."""

    school_id: int
    path: str
    room: str | None
    measured_at: datetime
    download_bps: float
    download_p90_bps: float | None
    upload_bps: float | None
    upload_p90_bps: float | None
    latency_ms: float | None
    loaded_latency_ms: float | None
    responsiveness_rpm: float | None
    agent_limited: bool
    agent_link_mbps: int | None
    background_bps: float | None


@dataclass(frozen=True)
class NewestLatency:
    """A school's newest latency test of one target and method; failed ones too (all lost)."""

    school_id: int
    target: str
    method: str
    measured_at: datetime
    answered: int
    lost: int
    rtt_p50_ms: float | None
    rtt_p90_ms: float | None
    jitter_ms: float | None

    @property
    def loss_ratio(self) -> float | None:
        sent = self.answered + self.lost
        return self.lost / sent if sent else None


@dataclass(frozen=True)
class AgentBudget:
    """The data budget an agent's newest test reported, and what it had used of it."""

    agent: str
    school_id: int
    measured_at: datetime
    budget_bytes: int
    used_bytes: int | None


def _newest_first(*partition: Any) -> ColumnElement[int]:
    return (
        func.row_number()
        .over(partition_by=partition, order_by=(Measurement.measured_at.desc(), Measurement.id))
        .label("newest")
    )


def _first_of_each(
    inner: Select[*tuple[Any, ...]], scope: Scope, schools: Collection[int] | None, *order: str
) -> Select[Any]:
    """The first row of each group, of `schools` (every school of `scope` when None)."""
    if schools is None:
        inner = scope.narrow(inner)
    else:
        inner = inner.where(Measurement.school_id.in_(schools))
    ranked = inner.subquery()
    columns = [c for c in ranked.c if c.name != "newest"]
    return select(*columns).where(ranked.c.newest == 1).order_by(*(ranked.c[o] for o in order))


def newest_tests(
    *, session: Session, scope: Scope, schools: Collection[int] | None, since: datetime
) -> list[NewestTest]:
    """Each school's newest successful test per path, and per room for classroom tests."""
    t = ThroughputResult
    inner: Select[*tuple[Any, ...]] = (
        select(
            Measurement.school_id,
            t.path,
            t.room,
            Measurement.measured_at,
            t.download_bps,
            t.download_p90_bps,
            t.upload_bps,
            t.upload_p90_bps,
            t.latency_ms,
            t.loaded_latency_ms,
            t.responsiveness_rpm,
            t.agent_limited,
            t.agent_link_mbps,
            t.background_bps,
            _newest_first(Measurement.school_id, t.path, t.room),
        )
        .select_from(School)
        .join(Measurement, Measurement.school_id == School.id)
        .join(t, t.measurement_id == Measurement.id)
        .where(
            Measurement.kind == "throughput",
            Measurement.measured_at >= since,
            Measurement.error.is_(None),
            t.download_bps.is_not(None),
        )
    )
    query = _first_of_each(inner, scope, schools, "school_id", "path", "room")
    return [NewestTest(*row) for row in session.execute(query)]


def newest_latencies(
    *, session: Session, scope: Scope, schools: Collection[int] | None, since: datetime
) -> list[NewestLatency]:
    """Each school's newest latency test per target and method."""
    r = LatencyResult
    inner: Select[*tuple[Any, ...]] = (
        select(
            Measurement.school_id,
            r.target,
            r.method,
            Measurement.measured_at,
            r.answered,
            r.lost,
            r.rtt_p50_ms,
            r.rtt_p90_ms,
            r.jitter_ms,
            _newest_first(Measurement.school_id, r.target, r.method),
        )
        .select_from(School)
        .join(Measurement, Measurement.school_id == School.id)
        .join(r, r.measurement_id == Measurement.id)
        .where(Measurement.kind == "latency", Measurement.measured_at >= since)
    )
    query = _first_of_each(inner, scope, schools, "school_id", "target", "method")
    return [NewestLatency(*row) for row in session.execute(query)]


def agent_budgets(
    *, session: Session, scope: Scope, schools: Collection[int] | None, since: datetime
) -> list[AgentBudget]:
    """Each agent's data budget as its newest test that reported one (failed or not) said."""
    t = ThroughputResult
    inner: Select[*tuple[Any, ...]] = (
        select(
            Agent.name.label("agent"),
            Measurement.school_id,
            Measurement.measured_at,
            t.budget_bytes,
            t.budget_used_bytes,
            _newest_first(Measurement.agent_id),
        )
        .select_from(School)
        .join(Measurement, Measurement.school_id == School.id)
        .join(Agent, Agent.id == Measurement.agent_id)
        .join(t, t.measurement_id == Measurement.id)
        .where(
            Measurement.kind == "throughput",
            Measurement.measured_at >= since,
            t.budget_bytes.is_not(None),
        )
    )
    query = _first_of_each(inner, scope, schools, "agent")
    return [AgentBudget(*row) for row in session.execute(query)]


def scope_schools(*, session: Session, scope: Scope) -> dict[int, str]:
    """Names of the schools in `scope`, by id."""
    query = scope.narrow(select(School.id, School.name))
    return {row.id: row.name for row in session.execute(query)}


def schools_with_results_since(
    *, session: Session, scope: Scope, received_since: datetime
) -> set[int]:
    """Schools of `scope` that received a throughput or latency result after `received_since`."""
    query = scope.narrow(
        select(Measurement.school_id)
        .join(School, School.id == Measurement.school_id)
        .where(
            Measurement.kind.in_(("throughput", "latency")),
            Measurement.received_at > received_since,
        )
        .distinct()
    )
    return set(session.scalars(query))
