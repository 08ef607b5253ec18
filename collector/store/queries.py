"""Data functions: every read and write the API, CLI and metrics need, in one place."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import and_, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from agent.wire import Batch, Receipt, SnmpPoll, ThroughputTest
from collector.store.models import (
    Agent,
    InterfaceSample,
    Measurement,
    School,
    SnmpPollResult,
    ThroughputResult,
)


class DuplicateName(ValueError):
    """A school or agent with that name exists already."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_school(*, session: Session, name: str, students: int, staff: int) -> School:
    if students < 0 or staff < 0:
        raise ValueError("students and staff must not be negative")
    school = School(name=name, students=students, staff=staff)
    session.add(school)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise DuplicateName(f"a school named {name!r} exists already") from exc
    return school


def list_schools(*, session: Session) -> Sequence[School]:
    return session.scalars(select(School).order_by(School.id)).all()


def enroll_agent(*, session: Session, school_id: int, name: str) -> tuple[Agent, str]:
    """Create an agent for a school; returns it with its token, which is shown only this once."""
    if session.get(School, school_id) is None:
        raise LookupError(f"no school with id {school_id}")
    token = secrets.token_urlsafe(32)
    agent = Agent(school_id=school_id, name=name, token_sha256=hash_token(token))
    session.add(agent)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise DuplicateName(f"an agent named {name!r} exists already") from exc
    return agent, token


def agent_for_token(*, session: Session, token: str) -> Agent | None:
    return session.scalar(select(Agent).where(Agent.token_sha256 == hash_token(token)))


def add_batch(*, session: Session, agent_id: int, school_id: int, batch: Batch) -> Receipt:
    """Store a batch once: measurements whose id is known already are reported as duplicates.

    An id repeated inside the batch is the same result sent twice: the first copy is stored and
    the others are answered as duplicates, exactly as if they had come in a later retry.
    """
    try:
        return _store_new(session=session, agent_id=agent_id, school_id=school_id, batch=batch)
    except IntegrityError:
        # The same ids arrived concurrently (a retry racing its original): the other request
        # stored them, so looking again reports them as duplicates.
        session.rollback()
        return _store_new(session=session, agent_id=agent_id, school_id=school_id, batch=batch)


def _store_new(*, session: Session, agent_id: int, school_id: int, batch: Batch) -> Receipt:
    ids = [m.id for m in batch.measurements]
    known = set(session.scalars(select(Measurement.id).where(Measurement.id.in_(set(ids)))))
    fresh: dict[uuid.UUID, ThroughputTest | SnmpPoll] = {}
    for m in batch.measurements:
        if m.id not in known:
            fresh.setdefault(m.id, m)
    session.add_all(
        Measurement(
            id=m.id,
            agent_id=agent_id,
            school_id=school_id,
            kind=m.kind,
            measured_at=m.measured_at,
            error=m.error,
        )
        for m in fresh.values()
    )
    # Parents first: the unit of work does not order tables it has no relationship() for.
    session.flush()
    for measurement in fresh.values():
        _add_details(session=session, measurement=measurement)
    session.execute(
        update(Agent)
        .where(Agent.id == agent_id)
        .values(last_seen_at=datetime.now(UTC), last_version=batch.agent_version)
    )
    session.commit()
    accepted = list(fresh)
    duplicates = ids.copy()
    for stored in accepted:
        duplicates.remove(stored)
    return Receipt(accepted=accepted, duplicates=duplicates)


def _add_details(*, session: Session, measurement: ThroughputTest | SnmpPoll) -> None:
    if isinstance(measurement, ThroughputTest):
        session.add(
            ThroughputResult(
                measurement_id=measurement.id,
                **measurement.model_dump(
                    include={
                        "path",
                        "server",
                        "streams",
                        "download_bps",
                        "upload_bps",
                        "latency_ms",
                        "download_bytes",
                        "upload_bytes",
                        "duration_s",
                    }
                ),
            )
        )
        return
    session.add(
        SnmpPollResult(
            measurement_id=measurement.id,
            device=measurement.device,
            address=measurement.address,
            sys_object_id=measurement.sys_object_id,
            sys_uptime_ticks=measurement.sys_uptime_ticks,
        )
    )
    session.add_all(
        InterfaceSample(measurement_id=measurement.id, **row.model_dump())
        for row in measurement.interfaces
    )


@dataclass(frozen=True)
class ThroughputRow:
    measured_at: datetime
    path: str
    download_bps: float | None
    upload_bps: float | None


def successful_throughput(*, session: Session, school_id: int) -> list[ThroughputRow]:
    """Every throughput test of a school that produced a download rate, oldest first."""
    rows = session.execute(
        select(
            Measurement.measured_at,
            ThroughputResult.path,
            ThroughputResult.download_bps,
            ThroughputResult.upload_bps,
        )
        .join(ThroughputResult, ThroughputResult.measurement_id == Measurement.id)
        .where(
            Measurement.school_id == school_id,
            Measurement.error.is_(None),
            ThroughputResult.download_bps.is_not(None),
        )
        .order_by(Measurement.measured_at)
    )
    return [ThroughputRow(*row) for row in rows]


@dataclass(frozen=True)
class InterfaceRow:
    school: str
    device: str
    ifname: str
    octets_in: int | None
    octets_out: int | None
    speed_mbps: int | None
    sys_uptime_ticks: int | None


def latest_interface_samples(*, session: Session) -> list[InterfaceRow]:
    """The newest successful poll of every (school, device), one row per interface."""
    newest = (
        select(
            Measurement.school_id,
            SnmpPollResult.device,
            func.max(Measurement.measured_at).label("measured_at"),
        )
        .join(SnmpPollResult, SnmpPollResult.measurement_id == Measurement.id)
        .where(Measurement.error.is_(None))
        .group_by(Measurement.school_id, SnmpPollResult.device)
        .subquery()
    )
    rows = session.execute(
        select(
            School.name,
            SnmpPollResult.device,
            InterfaceSample.name,
            InterfaceSample.octets_in,
            InterfaceSample.octets_out,
            InterfaceSample.speed_mbps,
            SnmpPollResult.sys_uptime_ticks,
        )
        .select_from(Measurement)
        .join(SnmpPollResult, SnmpPollResult.measurement_id == Measurement.id)
        .join(
            newest,
            and_(
                newest.c.school_id == Measurement.school_id,
                newest.c.device == SnmpPollResult.device,
                newest.c.measured_at == Measurement.measured_at,
            ),
        )
        .join(School, School.id == Measurement.school_id)
        .join(InterfaceSample, InterfaceSample.measurement_id == Measurement.id)
        .where(Measurement.error.is_(None))
        .order_by(School.name, SnmpPollResult.device, InterfaceSample.ifindex)
    )
    return [InterfaceRow(*row) for row in rows]
