"""Storing a batch: validated once (by the wire models), written with bulk Core inserts.

Per batch this is a fixed handful of statements whatever its size: one lookup of known ids, one
executemany per table, one upsert and one lookup of devices, and two conditional updates that
move each device's newest-poll pointers forward. The ORM unit of work is not used here: at tens
of thousands of interface rows a second it cost more CPU than the database did.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, Update, bindparam, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from agent.wire import (
    AnyMeasurement,
    Batch,
    LatencyTest,
    Receipt,
    Rejection,
    SnmpPoll,
    ThroughputTest,
)
from collector.store.bulk import insert_rows, reserve_ids
from collector.store.interface_rows import pack_interfaces, uplink_positions
from collector.store.models import (
    AccessPointSample,
    Agent,
    AgentConfig,
    Device,
    InterfaceSample,
    LatencyResult,
    Measurement,
    PollInterfaces,
    SnmpPollResult,
    SsidSample,
    ThroughputResult,
    UtcDateTime,
)
from collector.store.poll_rates import PreviousPolls, store_interface_rates

# Core tables of the models: bulk statements skip the ORM's per-object bookkeeping.
_measurements = cast(Table, Measurement.__table__)
_tests = cast(Table, ThroughputResult.__table__)
_devices = cast(Table, Device.__table__)
_polls = cast(Table, SnmpPollResult.__table__)
_samples = cast(Table, InterfaceSample.__table__)
_packed = cast(Table, PollInterfaces.__table__)
_latencies = cast(Table, LatencyResult.__table__)
_aps = cast(Table, AccessPointSample.__table__)
_ssids = cast(Table, SsidSample.__table__)
_configs = cast(Table, AgentConfig.__table__)


def add_batch(*, session: Session, agent_id: int | None, school_id: int, batch: Batch) -> Receipt:
    """Store a batch once: measurements whose id is known already are reported as duplicates.

    `agent_id` is None for a classroom test (a browser with the school's classroom code): its
    measurements are stored without an agent, and no agent's last-seen time moves.

    An id repeated inside the batch is the same result sent twice: the first copy is stored and
    the others are answered as duplicates, exactly as if they had come in a later retry.
    """
    delivery = Delivery(agent_id, school_id, batch)
    for attempt in range(_ATTEMPTS):
        touches = _Touches()
        try:
            receipt = _store_new(session, delivery, touches)
            touches.apply(session.connection())
            session.commit()
            return receipt
        except IntegrityError:
            # The same ids arrived concurrently (a retry racing its original, or several): the
            # other request stored them, so looking again reports them as duplicates. Each try
            # sees everything committed before it, so a few tries settle any race.
            session.rollback()
            if attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


# Concurrent batches sharing ids: each retry finds more of them stored (see add_batch).
_ATTEMPTS = 5


@dataclass(frozen=True)
class Delivery:
    """One agent's batch (or a classroom's, with no agent), as `add_batches` takes them."""

    agent_id: int | None
    school_id: int
    batch: Batch


def add_batches(*, session: Session, deliveries: Sequence[Delivery]) -> list[Receipt]:
    """Store several batches in one transaction (group commit); one receipt each, in order.

    Under load the commit and the per-statement setup are most of a small batch's cost, so the
    batches waiting at one moment are written together. Should the group collide with a
    concurrent request (the same ids, or a device created at the same instant), it is rolled
    back and each batch is stored on its own, as `add_batch` would.
    """
    touches = _Touches()
    try:
        receipts = [_store_new(session, d, touches) for d in deliveries]
        touches.apply(session.connection())
        session.commit()
        return receipts
    except IntegrityError:
        session.rollback()
    return [
        add_batch(session=session, agent_id=d.agent_id, school_id=d.school_id, batch=d.batch)
        for d in deliveries
    ]


@dataclass
class _Touches:
    """Rows that every batch updates: its agent's last-seen time, its devices' newest polls.

    Recorded while the rows are inserted and written last, in id order, so that concurrent
    transactions take these row locks in one order (no deadlock) and hold them only until
    their commit, not through all their inserts.
    """

    agents: dict[int, tuple[datetime, str]] = field(default_factory=dict)
    newest: dict[int, tuple[datetime, int]] = field(default_factory=dict)
    newest_ok: dict[int, tuple[datetime, int]] = field(default_factory=dict)
    # Each device's newest counters so far in this transaction, for the next poll's rates.
    previous: PreviousPolls = field(default_factory=PreviousPolls)

    def device_polled(self, device_id: int, at: datetime, poll_id: int, *, ok: bool) -> None:
        for best in (self.newest, self.newest_ok) if ok else (self.newest,):
            if device_id not in best or at >= best[device_id][0]:
                best[device_id] = (at, poll_id)

    def apply(self, connection: Connection) -> None:
        for best, id_column in ((self.newest, "last_poll_id"), (self.newest_ok, "last_ok_poll_id")):
            if best:
                connection.execute(
                    _ADVANCE[id_column],
                    [
                        {"device": device, "poll": poll, "at": at}
                        for device, (at, poll) in sorted(best.items())
                    ],
                )
        for agent_id, (seen, version) in sorted(self.agents.items()):
            connection.execute(
                update(Agent)
                .where(Agent.id == agent_id)
                .values(last_seen_at=seen, last_version=version)
            )


def _advance(id_column: str, at_column: str) -> Update:
    """Move a device's pointer to a poll, unless it already points at a newer one."""
    at = _devices.c[at_column]
    return (
        update(_devices)
        .where(
            _devices.c.id == bindparam("device"),
            or_(at.is_(None), at <= bindparam("at", type_=UtcDateTime())),
        )
        .values({id_column: bindparam("poll"), at_column: bindparam("at")})
    )


_ADVANCE = {
    "last_poll_id": _advance("last_poll_id", "last_poll_at"),
    "last_ok_poll_id": _advance("last_ok_poll_id", "last_ok_at"),
}


def _store_new(session: Session, delivery: Delivery, touches: _Touches) -> Receipt:
    """Write what is new in the batch into the open transaction; the caller commits.

    Each id is answered: accepted (stored now), a duplicate (this sender stored it before), or
    rejected with the reason: an id another agent (or another school's classroom) stored is
    never called a duplicate, which would tell the caller that it exists; a poll of a device
    the settings the collector holds for this agent do not name is refused.
    """
    agent_id, school_id, batch = delivery.agent_id, delivery.school_id, delivery.batch
    ids = [m.id for m in batch.measurements]
    connection = session.connection()
    # Core, not an ORM select: the ORM's per-statement setup showed up in every batch's cost.
    known = {
        row.id: (row.agent_id, row.school_id)
        for row in connection.execute(
            select(_measurements.c.id, _measurements.c.agent_id, _measurements.c.school_id).where(
                _measurements.c.id.in_(ids)
            )
        )
    }
    devices = _held_devices(connection, agent_id) if batch_has_polls(batch) else None
    fresh: dict[uuid.UUID, AnyMeasurement] = {}
    duplicates: list[uuid.UUID] = []
    rejected: list[Rejection] = []
    for m in batch.measurements:
        owner = known.get(m.id)
        if owner is not None:
            if owner == (agent_id, school_id):
                duplicates.append(m.id)
            else:
                rejected.append(Rejection(id=m.id, reason=FOREIGN_ID))
        elif m.id in fresh:
            duplicates.append(m.id)  # the same result twice in one batch
        elif devices is not None and isinstance(m, SnmpPoll) and m.device not in devices:
            rejected.append(Rejection(id=m.id, reason=_unknown_device(m.device)))
        else:
            fresh[m.id] = m
    now = datetime.now(UTC)
    if fresh:
        _insert_measurements(connection, agent_id, school_id, fresh.values(), now, touches)
    if agent_id is not None:
        touches.agents[agent_id] = (now, batch.agent_version)
    return Receipt(accepted=list(fresh), duplicates=duplicates, rejected=rejected)


FOREIGN_ID = "this id belongs to a result another agent or school sent: mint a new id"


def _unknown_device(name: str) -> str:
    return (
        f"unknown device {name[:64]!r}: the settings the collector holds for this agent "
        "do not name it (readynet-collector agent config show)"
    )


def batch_has_polls(batch: Batch) -> bool:
    return any(isinstance(m, SnmpPoll) for m in batch.measurements)


def _held_devices(connection: Connection, agent_id: int | None) -> set[str] | None:
    """The device names of the settings the collector holds for the agent, if they name any."""
    if agent_id is None:
        return None
    document = connection.scalar(select(_configs.c.document).where(_configs.c.agent_id == agent_id))
    if document is None:
        return None
    devices = json.loads(document).get("devices")
    if not isinstance(devices, list):
        return None
    return {d["name"] for d in devices if isinstance(d, dict) and isinstance(d.get("name"), str)}


def _insert_measurements(
    connection: Connection,
    agent_id: int | None,
    school_id: int,
    fresh: Iterable[AnyMeasurement],
    now: datetime,
    touches: _Touches,
) -> None:
    tests: list[ThroughputTest] = []
    polls: list[SnmpPoll] = []
    latencies: list[LatencyTest] = []
    rows = []
    for m in fresh:
        if isinstance(m, ThroughputTest):
            tests.append(m)
        elif isinstance(m, SnmpPoll):
            polls.append(m)
        else:
            latencies.append(m)
        rows.append((m.id, agent_id, school_id, m.kind, m.measured_at, now, m.error))
    insert_rows(connection, _measurements, _MEASUREMENT_COLUMNS, rows)
    if tests:
        insert_rows(connection, _tests, _TEST_COLUMNS, [_test_row(t) for t in tests])
    if latencies:
        insert_rows(connection, _latencies, _LATENCY_COLUMNS, [_latency_row(t) for t in latencies])
    if polls:
        _insert_polls(connection, school_id, polls, now, touches)


_MEASUREMENT_COLUMNS = (
    "id",
    "agent_id",
    "school_id",
    "kind",
    "measured_at",
    "received_at",
    "error",
)
_TEST_COLUMNS = (
    "measurement_id",
    "path",
    "server",
    "streams",
    "download_bps",
    "upload_bps",
    "latency_ms",
    "download_bytes",
    "upload_bytes",
    "duration_s",
    "download_p90_bps",
    "upload_p90_bps",
    "loaded_latency_ms",
    "responsiveness_rpm",
    "agent_link_mbps",
    "agent_wifi",
    "agent_limited",
    "background_bps",
    "budget_bytes",
    "budget_used_bytes",
    "server_id",
    "sponsor",
    "distance_km",
    "raw",
    "room",
)
_LATENCY_COLUMNS = (
    "measurement_id",
    "target",
    "method",
    "answered",
    "lost",
    "rtt_p50_ms",
    "rtt_p90_ms",
    "jitter_ms",
)
_SAMPLE_COLUMNS = (
    "poll_id",
    "seq",
    "ifindex",
    "name",
    "octets_in",
    "octets_out",
    "counter_bits",
    "speed_mbps",
    "alias",
    "if_type",
    "admin_status",
    "oper_status",
    "role",
)
_PACKED_COLUMNS = ("poll_id", "interface_count", "rows")
_AP_COLUMNS = ("poll_id", "seq", "key", "name", "clients", "up")
_SSID_COLUMNS = ("poll_id", "seq", "name", "clients")


def _test_row(t: ThroughputTest) -> tuple[Any, ...]:
    return (
        t.id,
        t.path,
        t.server,
        t.streams,
        t.download_bps,
        t.upload_bps,
        t.latency_ms,
        t.download_bytes,
        t.upload_bytes,
        t.duration_s,
        t.download_p90_bps,
        t.upload_p90_bps,
        t.loaded_latency_ms,
        t.responsiveness_rpm,
        t.agent_link_mbps,
        t.agent_wifi,
        t.agent_limited,
        t.background_bps,
        t.budget_bytes,
        t.budget_used_bytes,
        t.server_id,
        t.sponsor,
        t.distance_km,
        t.raw,
        t.room,
    )


def _latency_row(t: LatencyTest) -> tuple[Any, ...]:
    return (t.id, t.target, t.method, t.answered, t.lost, t.rtt_p50_ms, t.rtt_p90_ms, t.jitter_ms)


def _insert_polls(
    connection: Connection,
    school_id: int,
    polls: Sequence[SnmpPoll],
    now: datetime,
    touches: _Touches,
) -> None:
    device_ids = _device_ids(connection, school_id, {p.device for p in polls})
    # A clock running ahead counts as "now": it cannot make its poll the newest for long.
    ordered_at = {p.id: min(p.measured_at, now) for p in polls}
    rows = [
        {
            "measurement_id": p.id,
            "device_id": device_ids[p.device],
            "address": p.address,
            "sys_object_id": p.sys_object_id,
            "sys_uptime_ticks": p.sys_uptime_ticks,
            "ordered_at": ordered_at[p.id],
            "profile": p.profile,
            "clients": p.clients,
            "aps_up": p.aps_up,
            "aps_total": p.aps_total,
            "duration_s": p.duration_s,
        }
        for p in polls
    ]
    poll_ids = _insert_poll_rows(connection, rows)
    packed = [
        (poll_ids[p.id], len(p.interfaces), pack_interfaces(p.interfaces))
        for p in polls
        if p.interfaces
    ]
    insert_rows(connection, _packed, _PACKED_COLUMNS, packed)
    # Uplinks also as rows of their own: the rate maths and the readiness peaks read them.
    uplinks = [
        (
            poll_id,
            seq,
            i.ifindex,
            i.name,
            i.octets_in,
            i.octets_out,
            i.counter_bits or 0,
            i.speed_mbps,
            i.alias,
            i.if_type,
            i.admin_status,
            i.oper_status,
            i.role,
        )
        for p in polls
        for poll_id in (poll_ids[p.id],)
        for seq in uplink_positions(p.interfaces)
        for i in (p.interfaces[seq],)
    ]
    insert_rows(connection, _samples, _SAMPLE_COLUMNS, uplinks)
    aps = [
        (poll_ids[p.id], seq, a.key, a.name, a.clients, a.up)
        for p in polls
        for seq, a in enumerate(p.aps)
    ]
    if aps:
        insert_rows(connection, _aps, _AP_COLUMNS, aps)
    ssids = [
        (poll_ids[p.id], seq, s.name, s.clients) for p in polls for seq, s in enumerate(p.ssids)
    ]
    if ssids:
        insert_rows(connection, _ssids, _SSID_COLUMNS, ssids)
    store_interface_rates(
        connection,
        [(device_ids[p.device], poll_ids[p.id], ordered_at[p.id], p) for p in polls],
        touches.previous,
    )
    for p in polls:
        touches.device_polled(
            device_ids[p.device], ordered_at[p.id], poll_ids[p.id], ok=p.error is None
        )


def _insert_poll_rows(connection: Connection, rows: list[dict[str, Any]]) -> dict[uuid.UUID, int]:
    """Insert polls; returns each one's new poll_id by measurement id.

    The keys are taken first and the rows written in one executemany: an INSERT ... RETURNING
    that must answer in parameter order went row by row on SQLite. There the transaction holds
    the database's one write lock already (its measurements are written first), so the next
    keys after the largest are this transaction's alone, as SQLite's own rowids would be.
    """
    if connection.dialect.name == "postgresql":
        keys = reserve_ids(connection, _polls, "poll_id", len(rows))
    else:
        largest = connection.scalar(select(func.max(_polls.c.poll_id))) or 0
        keys = list(range(largest + 1, largest + 1 + len(rows)))
    for row, key in zip(rows, keys, strict=True):
        row["poll_id"] = key
    insert_rows(connection, _polls, list(rows[0]), [tuple(row.values()) for row in rows])
    return {row["measurement_id"]: row["poll_id"] for row in rows}


def _device_ids(connection: Connection, school_id: int, names: set[str]) -> dict[str, int]:
    """Ids of the school's devices by name, creating the ones seen for the first time."""
    rows = [{"school_id": school_id, "name": name} for name in sorted(names)]
    upsert = (postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert)(
        _devices
    )
    # Two batches may introduce the same device at once: the loser's insert does nothing.
    connection.execute(upsert.on_conflict_do_nothing(), rows)
    found = connection.execute(
        select(_devices.c.name, _devices.c.id).where(
            _devices.c.school_id == school_id, _devices.c.name.in_(names)
        )
    )
    return {row[0]: row[1] for row in found}
