"""The newest state of every device and interface, for /metrics: one join each, no history scan.

Devices carry pointers to their newest poll and newest successful poll (kept at ingest), so
these reads cost what the fleet is, not what the history holds. A scope narrows them to one
district (or to the schools without one) for the per-district detail scrape.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from pydantic_core import from_json
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, aliased

from agent.wire import InterfaceCounters
from collector.store.models import (
    Agent,
    AgentHeartbeat,
    Device,
    PollInterfaces,
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
    """(devices with a successful poll that has interfaces, interfaces in those polls)."""
    query = (
        select(func.count(), func.coalesce(func.sum(PollInterfaces.interface_count), 0))
        .select_from(Device)
        .join(School, School.id == Device.school_id)
        .join(PollInterfaces, PollInterfaces.poll_id == Device.last_ok_poll_id)
    )
    devices, interfaces = session.execute(scope.narrow(query)).one()
    return int(devices), int(interfaces)


def latest_interfaces(
    *, session: Session, scope: Scope, per_device: int | None = None
) -> list[InterfaceState]:
    """Interfaces of each device's newest successful poll; with `per_device`, its busiest ones.

    The configured uplinks (interfaces with a role) come first; then "busiest" is most octets
    since boot, in and out together: on a school's router or switch that is nearly always the
    uplink, the interface capacity questions are about. One packed row a device is read (see
    PollInterfaces) and ranked here; the chosen interfaces keep the order the device gave.
    """
    query = (
        select(School.name, Device.name, PollInterfaces.rows)
        .join(School, School.id == Device.school_id)
        .join(PollInterfaces, PollInterfaces.poll_id == Device.last_ok_poll_id)
        .order_by(School.name, Device.name)
    )
    states = []
    for school, device, packed in session.execute(scope.narrow(query)):
        # Plain lists from the JSON, in InterfaceCounters' field order: a default scrape at
        # 10,000 schools ranks 20,000 devices' rows to keep one each. pydantic-core's parser
        # takes half the json module's time (7 against 15 us for 20 ports here).
        rows = from_json(packed)
        chosen = range(len(rows)) if per_device is None else sorted(_busiest(rows, per_device))
        for seq in chosen:
            # As `unpack_interfaces` reads a row, for the chosen ones only.
            i = InterfaceCounters(*rows[seq])
            states.append(
                InterfaceState(
                    school,
                    device,
                    i.ifindex,
                    i.name,
                    i.octets_in,
                    i.octets_out,
                    i.speed_mbps,
                    i.oper_status,
                    i.role,
                )
            )
    return states


# Where `_busiest` finds what it ranks by in a packed row.
_IN, _OUT, _ROLE = (InterfaceCounters._fields.index(f) for f in ("octets_in", "octets_out", "role"))


def _at(row: list[Any], position: int) -> Any:
    # A row stored before a field was appended is shorter: the field's default, None.
    return row[position] if position < len(row) else None


def _busiest(rows: list[list[Any]], count: int) -> list[int]:
    """Positions of the `count` busiest rows: configured uplinks first, then most octets in
    and out, ties in the device's order. Keys looked up in C: a Python key function per row
    was most of a default scrape's time at 10,000 schools (20,000 devices, one row each)."""
    totals = [(row[_IN] or 0) + (row[_OUT] or 0) for row in rows]
    uplinks = [seq for seq, row in enumerate(rows) if _at(row, _ROLE) is not None]
    ranked = heapq.nlargest(count, uplinks, key=totals.__getitem__)
    if len(ranked) < count:
        taken = set(uplinks)
        others = (seq for seq in range(len(rows)) if seq not in taken)
        ranked += heapq.nlargest(count - len(ranked), others, key=totals.__getitem__)
    return ranked


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
