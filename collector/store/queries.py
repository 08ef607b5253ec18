"""Data functions: every read and write the API, CLI and metrics need, in one place."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from collector.inventory import AgentCreate, DistrictCreate, SchoolCreate
from collector.store.audit import record
from collector.store.models import (
    Agent,
    District,
    School,
)


class DuplicateName(ValueError):
    """A school or agent with that name exists already."""


class UnknownDistrict(LookupError):
    """No district has that id."""


class UnknownSchool(LookupError):
    """No school has the id an agent was to be enrolled for."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_school(
    *,
    session: Session,
    name: str,
    students: int,
    staff: int,
    district_id: int | None = None,
    shared_exit: str | None = None,
    actor: str | None = None,
) -> School:
    """A new school; with `actor`, recorded in the audit log in the same transaction."""
    # SchoolCreate holds the bounds (pydantic.ValidationError, a ValueError, names the field).
    new = SchoolCreate(
        name=name,
        students=students,
        staff=staff,
        district_id=district_id,
        shared_exit=shared_exit,
    )
    if new.district_id is not None and session.get(District, new.district_id) is None:
        raise UnknownDistrict(f"no district with id {new.district_id}")
    school = School(
        name=new.name,
        students=new.students,
        staff=new.staff,
        district_id=new.district_id,
        shared_exit=new.shared_exit,
    )
    session.add(school)
    try:
        if actor is not None:
            session.flush()
            _record_new(session, actor, "school", school.id, new.model_dump())
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise DuplicateName(f"a school named {new.name!r} exists already") from exc
    return school


def create_district(*, session: Session, name: str, actor: str | None = None) -> District:
    """A new district; with `actor`, recorded in the audit log in the same transaction."""
    new = DistrictCreate(name=name)
    district = District(name=new.name)
    session.add(district)
    try:
        if actor is not None:
            session.flush()
            _record_new(session, actor, "district", district.id, new.model_dump())
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise DuplicateName(f"a district named {new.name!r} exists already") from exc
    return district


def _record_new(
    session: Session, actor: str, object_type: str, object_id: int, values: dict[str, object]
) -> None:
    record(
        session,
        actor=actor,
        action="create",
        object_type=object_type,
        object_id=object_id,
        details={"new": values},
    )


def list_districts(*, session: Session) -> Sequence[District]:
    return session.scalars(select(District).order_by(District.id)).all()


def list_schools(*, session: Session) -> Sequence[School]:
    return session.scalars(select(School).order_by(School.id)).all()


def enroll_agent(*, session: Session, school_id: int, name: str) -> tuple[Agent, str]:
    """Create an agent for a school with its token at once (scripts and tests; people use an
    enrolment code, `collector.store.agents`); the token is shown only this once."""
    new = AgentCreate(school_id=school_id, name=name)
    if session.get(School, new.school_id) is None:
        raise UnknownSchool(f"no school with id {new.school_id}")
    token = secrets.token_urlsafe(32)
    agent = Agent(
        school_id=new.school_id,
        name=new.name,
        token_sha256=hash_token(token),
        enrolled_at=datetime.now(UTC),
    )
    session.add(agent)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise DuplicateName(f"an agent named {new.name!r} exists already") from exc
    return agent, token


def shared_exit_of(*, session: Session, school_id: int) -> str | None:
    """The shared exit a school is behind, or None when it has its own."""
    return session.scalar(select(School.shared_exit).where(School.id == school_id))
