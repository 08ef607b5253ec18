"""The newest state of every device and interface, for /metrics: one join each, no history scan.

Devices carry pointers to their newest poll and newest successful poll (kept at ingest), so
these reads cost what the fleet is, not what the history holds. A scope narrows them to one
district (or to the schools without one) for the per-district detail scrape.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Float, Select, case, cast, func, literal, select, true
from sqlalchemy.orm import Session, aliased

from collector.store.models import (
    Agent,
    AgentHeartbeat,
    Device,
    InterfaceSample,
    School,
    SnmpPollResult,
)

SelectT = TypeVar("SelectT", bound="Select[*tuple[Any, ...]]")


@dataclass(frozen=True)
class Scope:
    """Which schools: all of them, one district, or (district_id None) those without one."""

    everything: bool = True
    district_id: int | None = None

    def narrow(self, query: SelectT) -> SelectT:
        if self.everything:
            return query
        if self.district_id is None:
            return query.where(School.district_id.is_(None))
        return query.where(School.district_id == self.district_id)


@dataclass(frozen=True)
class DeviceState:
    school: str
    device: str
    up: bool
    last_poll_at: datetime | None
    boot_time: float | None
    profile: str | None = None
    clients: int | None = None
    aps_up: int | None = None
    aps_total: int | None = None


@dataclass(frozen=True)
class InterfaceState:
    school: str
    device: str
    ifindex: int
    ifname: str
    octets_in: int | None
    octets_out: int | None
    speed_mbps: int | None
    oper_status: int | None = None
    role: str | None = None


@dataclass(frozen=True)
class AgentState:
    agent: str
    school: str
    enrolled_at: datetime
    last_seen_at: datetime | None
    revoked: bool = False
    # From the newest heartbeat; None until the agent's first.
    heartbeat_at: datetime | None = None
    outbox_pending: int | None = None
    dead_letters: int | None = None
    outbox_lost: int | None = None
    clock_offset_s: float | None = None


def device_states(*, session: Session, scope: Scope) -> list[DeviceState]:
    ok_poll = aliased(SnmpPollResult)
    query = (
        select(
            School.name,
            Device.name,
            Device.last_poll_id,
            Device.last_ok_poll_id,
            Device.last_poll_at,
            ok_poll.ordered_at,
            ok_poll.sys_uptime_ticks,
            ok_poll.profile,
            ok_poll.clients,
            ok_poll.aps_up,
            ok_poll.aps_total,
        )
        .join(School, School.id == Device.school_id)
        .outerjoin(ok_poll, ok_poll.poll_id == Device.last_ok_poll_id)
        .where(Device.last_poll_id.is_not(None))
        .order_by(School.name, Device.name)
    )
    states = []
    for school, device, last, last_ok, last_at, ok_at, ticks, *wifi in session.execute(
        scope.narrow(query)
    ):
        boot = None if ok_at is None or ticks is None else ok_at.timestamp() - ticks / 100
        states.append(DeviceState(school, device, last == last_ok, last_at, boot, *wifi))
    return states


def count_latest_interfaces(*, session: Session, scope: Scope) -> tuple[int, int]:
    """(devices with a successful poll, interfaces in those polls)."""
    query = (
        select(func.count(func.distinct(Device.id)), func.count())
        .select_from(Device)
        .join(School, School.id == Device.school_id)
        .join(InterfaceSample, InterfaceSample.poll_id == Device.last_ok_poll_id)
    )
    devices, interfaces = session.execute(scope.narrow(query)).one()
    return int(devices), int(interfaces)


def latest_interfaces(
    *, session: Session, scope: Scope, per_device: int | None = None
) -> list[InterfaceState]:
    """Interfaces of each device's newest successful poll; with `per_device`, its busiest ones.

    The configured uplinks (interfaces with a role) come first; then "busiest" is most octets
    since boot, in and out together: on a school's router or switch that is nearly always the
    uplink, the interface capacity questions are about.
    """
    if per_device is not None and session.get_bind().dialect.name == "postgresql":
        query = _busiest_per_device(scope, per_device)
    else:
        query = _ranked(scope, per_device)
    return [InterfaceState(*row) for row in session.execute(query)]


def _octets() -> ColumnElement[float]:
    """In and out octets together, as unsigned (Counter64 columns hold the bit pattern)."""
    total: ColumnElement[float] = literal(0.0)
    for column in (InterfaceSample.octets_in, InterfaceSample.octets_out):
        value = cast(column, Float)
        total = total + func.coalesce(case((column < 0, value + 2.0**64), else_=value), 0)
    return total


def _busiest_first() -> tuple[Any, ...]:
    # The configured uplinks first (the capacity questions are about them), then most octets.
    has_role = case((InterfaceSample.role.is_(None), 1), else_=0)
    return (has_role, _octets().desc(), InterfaceSample.seq)


def _busiest_per_device(scope: Scope, per_device: int) -> Select[Any]:
    # PostgreSQL reads each device's top rows through the (poll_id, seq) key with LIMIT, instead
    # of ranking every interface of the fleet: at 10,000 schools that sort of 400,000 rows went
    # to disk and was most of a default scrape.
    busiest = (
        select(
            InterfaceSample.seq,
            InterfaceSample.ifindex,
            InterfaceSample.name,
            InterfaceSample.octets_in,
            InterfaceSample.octets_out,
            InterfaceSample.speed_mbps,
            InterfaceSample.oper_status,
            InterfaceSample.role,
        )
        .where(InterfaceSample.poll_id == Device.last_ok_poll_id)
        .order_by(*_busiest_first())
        .limit(per_device)
        .lateral("busiest")
    )
    query = (
        select(
            School.name,
            Device.name,
            busiest.c.ifindex,
            busiest.c.name,
            busiest.c.octets_in,
            busiest.c.octets_out,
            busiest.c.speed_mbps,
            busiest.c.oper_status,
            busiest.c.role,
        )
        .select_from(Device)
        .join(School, School.id == Device.school_id)
        .join(busiest, true())
        .order_by(School.name, Device.name, busiest.c.seq)
    )
    return scope.narrow(query)


def _ranked(scope: Scope, per_device: int | None) -> Select[Any]:
    rank = (
        func.row_number()
        .over(
            partition_by=InterfaceSample.poll_id,
            order_by=_busiest_first(),
        )
        .label("rank")
    )
    inner = scope.narrow(
        select(
            School.name.label("school"),
            Device.name.label("device"),
            InterfaceSample.seq,
            InterfaceSample.ifindex,
            InterfaceSample.name.label("ifname"),
            InterfaceSample.octets_in,
            InterfaceSample.octets_out,
            InterfaceSample.speed_mbps,
            InterfaceSample.oper_status,
            InterfaceSample.role,
            rank,
        )
        .join(School, School.id == Device.school_id)
        .join(InterfaceSample, InterfaceSample.poll_id == Device.last_ok_poll_id)
    ).subquery()
    query = select(
        inner.c.school,
        inner.c.device,
        inner.c.ifindex,
        inner.c.ifname,
        inner.c.octets_in,
        inner.c.octets_out,
        inner.c.speed_mbps,
        inner.c.oper_status,
        inner.c.role,
    ).order_by(inner.c.school, inner.c.device, inner.c.seq)
    if per_device is not None:
        query = query.where(inner.c.rank <= per_device)
    return query


def agent_states(*, session: Session) -> list[AgentState]:
    query = (
        select(
            Agent.name,
            School.name,
            Agent.created_at,
            Agent.last_seen_at,
            Agent.revoked_at.is_not(None),
            AgentHeartbeat.received_at,
            AgentHeartbeat.outbox_pending,
            AgentHeartbeat.dead_letters,
            AgentHeartbeat.outbox_lost,
            AgentHeartbeat.clock_offset_s,
        )
        .join(School, School.id == Agent.school_id)
        .outerjoin(AgentHeartbeat, AgentHeartbeat.agent_id == Agent.id)
        .order_by(Agent.name)
    )
    return [
        AgentState(
            agent=row[0],
            school=row[1],
            enrolled_at=row[2],
            last_seen_at=row[3],
            revoked=bool(row[4]),
            heartbeat_at=row[5],
            outbox_pending=row[6],
            dead_letters=row[7],
            outbox_lost=row[8],
            clock_offset_s=row[9],
        )
        for row in session.execute(query)
    ]
