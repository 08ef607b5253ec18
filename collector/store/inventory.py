"""Data functions for the inventory: districts, schools, circuits and testing rooms.

Every function takes the caller's `Scope` and audit `actor`: a write checks that the scope
covers what it touches, records who changed what (old and new values) with `audit.record` and
commits both together. Whatever a scope does not cover answers as if it did not exist
(`Missing`), so ids do not leak; a reference in a body that does not resolve is `BadReference`
naming the field; a unique value taken, or a row still in use, is `Taken`.

Example:
    >>> school = create_school(session=session, actor="cli:ops", scope=Scope.everything(),
    ...                        new=SchoolCreate(name="Lamar", students=450, staff=50))
    >>> update_school(session=session, actor="cli:ops", scope=Scope.everything(),
    ...               school_id=school.id, change=SchoolUpdate(guests=40))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session

from collector.inventory import (
    CircuitCreate,
    CircuitUpdate,
    DistrictCreate,
    DistrictUpdate,
    RoomCreate,
    RoomUpdate,
    SchoolCreate,
    SchoolUpdate,
)
from collector.store.audit import record
from collector.store.models import (
    Agent,
    AssessmentRoom,
    Base,
    Circuit,
    ClassroomCode,
    Device,
    District,
    Measurement,
    School,
    User,
)
from collector.store.people import Scope, visible_districts, visible_schools

SCHOOL_FIELDS = (
    "name",
    "students",
    "staff",
    "district_id",
    "shared_exit",
    "ncessch",
    "guests",
    "grade_low",
    "grade_high",
)
DISTRICT_FIELDS = ("name", "state", "leaid")
CIRCUIT_FIELDS = ("school_id", "district_id", "name", "kind", "down_mbps", "up_mbps", "provider")
ROOM_FIELDS = ("school_id", "name", "test_takers")


class Missing(LookupError):
    """The object in the path does not exist, or the caller's scope does not cover it."""


class BadReference(ValueError):
    """A field names something that does not exist (or is out of scope), or breaks a rule."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Taken(ValueError):
    """A unique value belongs to another row, or the row is still in use."""


class NotAllowed(PermissionError):
    """The caller sees the object but their scope does not let them change it this way."""


def values_of(row: Base, fields: Sequence[str]) -> dict[str, Any]:
    return {name: getattr(row, name) for name in fields}


# --- scope -------------------------------------------------------------------------------


def manages_district(scope: Scope, district: District) -> bool:
    """Whether an admin of `scope` may change `district` and place schools in it."""
    match scope.kind:
        case "all":
            return True
        case "state":
            return district.state == scope.state
        case "district":
            return district.id == scope.district_id
        case "school":
            return False


def may_create_district(scope: Scope, state: str | None) -> bool:
    return scope.kind == "all" or (scope.kind == "state" and state == scope.state)


def visible_school(*, session: Session, scope: Scope, school_id: int) -> School:
    school = session.scalar(select(School).where(School.id == school_id, visible_schools(scope)))
    if school is None:
        raise Missing("unknown school")
    return school


def visible_district(*, session: Session, scope: Scope, district_id: int) -> District:
    district = session.scalar(
        select(District).where(District.id == district_id, visible_districts(scope))
    )
    if district is None:
        raise Missing("unknown district")
    return district


def _placeable_district(
    session: Session, scope: Scope, district_id: int | None, *, current: int | None
) -> None:
    """Refuse putting a school in `district_id` unless the scope covers it (or it stays)."""
    if district_id == current and scope.kind == "school":
        return
    if district_id is None:
        if scope.kind != "all":
            raise NotAllowed("a school outside any district needs scope all")
        return
    district = session.scalar(
        select(District).where(District.id == district_id, visible_districts(scope))
    )
    if district is None:
        raise BadReference("district_id", f"no district with id {district_id}")
    if not manages_district(scope, district):
        raise NotAllowed(f"district {district_id} is outside what this user may change")


def _taken(
    session: Session,
    column: InstrumentedAttribute[Any],
    value: object,
    *,
    row_id: int | None,
    extra: ColumnElement[bool] | None = None,
) -> bool:
    if value is None:
        return False
    query = select(column.class_.id).where(column == value)
    if extra is not None:
        query = query.where(extra)
    if row_id is not None:
        query = query.where(column.class_.id != row_id)
    return session.scalar(query.limit(1)) is not None


def _commit(session: Session, what: str) -> None:
    try:
        session.commit()
    except IntegrityError as exc:
        # A concurrent write took the value between the check and the commit.
        session.rollback()
        raise Taken(f"{what} conflicts with another row (a unique value is taken)") from exc


def _changed(row: Base, changes: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Apply `changes` to `row`; the ones that changed something, as [old, new]."""
    diff = {}
    for name, new in changes.items():
        old = getattr(row, name)
        if old != new:
            setattr(row, name, new)
            diff[name] = [old, new]
    return diff


# --- districts ---------------------------------------------------------------------------


def list_districts(*, session: Session, scope: Scope) -> Sequence[District]:
    return session.scalars(
        select(District).where(visible_districts(scope)).order_by(District.id)
    ).all()


def _check_district_unique(
    session: Session, *, name: str | None, leaid: str | None, row_id: int | None
) -> None:
    if _taken(session, District.name, name, row_id=row_id):
        raise Taken(f"a district named {name!r} exists already")
    if _taken(session, District.leaid, leaid, row_id=row_id):
        raise Taken(f"a district with LEAID {leaid} exists already")


def create_district(*, session: Session, actor: str, scope: Scope, new: DistrictCreate) -> District:
    if not may_create_district(scope, new.state):
        raise NotAllowed("creating a district needs scope all, or the district's state")
    _check_district_unique(session, name=new.name, leaid=new.leaid, row_id=None)
    district = District(name=new.name, state=new.state, leaid=new.leaid)
    session.add(district)
    session.flush()
    record(
        session,
        actor=actor,
        action="create",
        object_type="district",
        object_id=district.id,
        details={"new": values_of(district, DISTRICT_FIELDS)},
    )
    _commit(session, "the district")
    return district


def update_district(
    *, session: Session, actor: str, scope: Scope, district_id: int, change: DistrictUpdate
) -> District:
    district = visible_district(session=session, scope=scope, district_id=district_id)
    if not manages_district(scope, district):
        raise NotAllowed(f"district {district_id} is outside what this user may change")
    changes = change.changes()
    if "state" in changes and not may_create_district(scope, changes["state"]):
        raise NotAllowed("moving a district to another state needs scope all")
    _check_district_unique(
        session, name=changes.get("name"), leaid=changes.get("leaid"), row_id=district_id
    )
    diff = _changed(district, changes)
    if diff:
        record(
            session,
            actor=actor,
            action="update",
            object_type="district",
            object_id=district_id,
            details=diff,
        )
        _commit(session, "the district")
    return district


def delete_district(*, session: Session, actor: str, scope: Scope, district_id: int) -> None:
    district = visible_district(session=session, scope=scope, district_id=district_id)
    if not manages_district(scope, district) or scope.kind == "district":
        raise NotAllowed("deleting a district needs scope all, or the district's state")
    schools = session.scalar(select(func.count()).where(School.district_id == district_id))
    if schools:
        raise Taken(f"district {district_id} still has {schools} school(s): move or delete them")
    users = session.scalar(select(func.count()).where(User.scope_district_id == district_id))
    if users:
        raise Taken(f"district {district_id} is the scope of {users} user(s)")
    circuits = _delete_circuits(session, Circuit.district_id == district_id)
    old = values_of(district, DISTRICT_FIELDS)
    session.delete(district)
    record(
        session,
        actor=actor,
        action="delete",
        object_type="district",
        object_id=district_id,
        details={"old": old, "circuits_deleted": circuits},
    )
    _commit(session, "the district")


# --- schools -----------------------------------------------------------------------------


def _check_school_unique(
    session: Session, *, name: str | None, ncessch: str | None, row_id: int | None
) -> None:
    if _taken(session, School.name, name, row_id=row_id):
        raise Taken(f"a school named {name!r} exists already")
    if _taken(session, School.ncessch, ncessch, row_id=row_id):
        raise Taken(f"a school with NCESSCH {ncessch} exists already")


def create_school(*, session: Session, actor: str, scope: Scope, new: SchoolCreate) -> School:
    if scope.kind == "school":
        raise NotAllowed("creating a school needs scope all, a state or a district")
    _placeable_district(session, scope, new.district_id, current=None)
    _check_school_unique(session, name=new.name, ncessch=new.ncessch, row_id=None)
    school = School(**new.model_dump())
    session.add(school)
    session.flush()
    record(
        session,
        actor=actor,
        action="create",
        object_type="school",
        object_id=school.id,
        details={"new": values_of(school, SCHOOL_FIELDS)},
    )
    _commit(session, "the school")
    return school


def update_school(
    *, session: Session, actor: str, scope: Scope, school_id: int, change: SchoolUpdate
) -> School:
    school = visible_school(session=session, scope=scope, school_id=school_id)
    changes = change.changes()
    if "district_id" in changes:
        _placeable_district(session, scope, changes["district_id"], current=school.district_id)
    _check_school_unique(
        session, name=changes.get("name"), ncessch=changes.get("ncessch"), row_id=school_id
    )
    merged = {**values_of(school, SCHOOL_FIELDS), **changes}
    # The whole school as it would be, through the same bounds and rules as a new one.
    SchoolCreate.model_validate(merged)
    diff = _changed(school, changes)
    if diff:
        record(
            session,
            actor=actor,
            action="update",
            object_type="school",
            object_id=school_id,
            details=diff,
        )
        _commit(session, "the school")
    return school


# What keeps a school from being deleted: its history and whatever points at it.
_SCHOOL_USERS: tuple[tuple[str, Any], ...] = (
    ("agent(s)", Agent.school_id),
    ("measurement(s)", Measurement.school_id),
    ("device(s)", Device.school_id),
    ("classroom code(s)", ClassroomCode.school_id),
    ("user(s) scoped to it", User.scope_school_id),
)


def delete_school(*, session: Session, actor: str, scope: Scope, school_id: int) -> None:
    school = visible_school(session=session, scope=scope, school_id=school_id)
    if scope.kind == "school":
        raise NotAllowed("deleting a school needs scope all, a state or a district")
    for what, column in _SCHOOL_USERS:
        if session.scalar(select(column).where(column == school_id).limit(1)) is not None:
            raise Taken(f"school {school_id} still has {what}: it stays for its history")
    circuits = _delete_circuits(session, Circuit.school_id == school_id)
    rooms = session.execute(
        delete(AssessmentRoom).where(AssessmentRoom.school_id == school_id)
    ).rowcount  # type: ignore[attr-defined]
    old = values_of(school, SCHOOL_FIELDS)
    session.delete(school)
    record(
        session,
        actor=actor,
        action="delete",
        object_type="school",
        object_id=school_id,
        details={"old": old, "circuits_deleted": circuits, "rooms_deleted": rooms},
    )
    _commit(session, "the school")


# --- circuits ----------------------------------------------------------------------------


def _delete_circuits(session: Session, owner: ColumnElement[bool]) -> list[dict[str, Any]]:
    circuits = session.scalars(select(Circuit).where(owner)).all()
    for circuit in circuits:
        session.delete(circuit)
    return [values_of(c, CIRCUIT_FIELDS) for c in circuits]


def circuits_of(
    *, session: Session, scope: Scope, school_id: int | None = None, district_id: int | None = None
) -> Sequence[Circuit]:
    if school_id is not None:
        visible_school(session=session, scope=scope, school_id=school_id)
        owner = Circuit.school_id == school_id
    else:
        assert district_id is not None
        visible_district(session=session, scope=scope, district_id=district_id)
        owner = Circuit.district_id == district_id
    return session.scalars(select(Circuit).where(owner).order_by(Circuit.id)).all()


def _circuit_owner_check(session: Session, scope: Scope, circuit: Circuit | CircuitCreate) -> None:
    """A school's circuit: the school is visible; a hub's: the scope manages the district."""
    if circuit.school_id is not None:
        if (
            session.scalar(
                select(School.id).where(School.id == circuit.school_id, visible_schools(scope))
            )
            is None
        ):
            raise BadReference("school_id", f"no school with id {circuit.school_id}")
        return
    district = session.scalar(
        select(District).where(District.id == circuit.district_id, visible_districts(scope))
    )
    if district is None:
        raise BadReference("district_id", f"no district with id {circuit.district_id}")
    if not manages_district(scope, district):
        raise NotAllowed(f"district {circuit.district_id} is outside what this user may change")


def _visible_circuit(session: Session, scope: Scope, circuit_id: int) -> Circuit:
    circuit = session.get(Circuit, circuit_id)
    if circuit is None:
        raise Missing("unknown circuit")
    seen = (
        select(School.id).where(School.id == circuit.school_id, visible_schools(scope))
        if circuit.school_id is not None
        else select(District.id).where(District.id == circuit.district_id, visible_districts(scope))
    )
    if session.scalar(seen) is None:
        raise Missing("unknown circuit")
    return circuit


def create_circuit(*, session: Session, actor: str, scope: Scope, new: CircuitCreate) -> Circuit:
    _circuit_owner_check(session, scope, new)
    circuit = Circuit(**new.model_dump())
    session.add(circuit)
    session.flush()
    record(
        session,
        actor=actor,
        action="create",
        object_type="circuit",
        object_id=circuit.id,
        details={"new": values_of(circuit, CIRCUIT_FIELDS)},
    )
    _commit(session, "the circuit")
    return circuit


def update_circuit(
    *, session: Session, actor: str, scope: Scope, circuit_id: int, change: CircuitUpdate
) -> Circuit:
    circuit = _visible_circuit(session, scope, circuit_id)
    _circuit_owner_check(session, scope, circuit)
    diff = _changed(circuit, change.changes())
    if diff:
        record(
            session,
            actor=actor,
            action="update",
            object_type="circuit",
            object_id=circuit_id,
            details=diff,
        )
        _commit(session, "the circuit")
    return circuit


def delete_circuit(*, session: Session, actor: str, scope: Scope, circuit_id: int) -> None:
    circuit = _visible_circuit(session, scope, circuit_id)
    _circuit_owner_check(session, scope, circuit)
    old = values_of(circuit, CIRCUIT_FIELDS)
    session.delete(circuit)
    record(
        session,
        actor=actor,
        action="delete",
        object_type="circuit",
        object_id=circuit_id,
        details={"old": old},
    )
    _commit(session, "the circuit")


# --- testing rooms -----------------------------------------------------------------------


def rooms_of(*, session: Session, scope: Scope, school_id: int) -> Sequence[AssessmentRoom]:
    visible_school(session=session, scope=scope, school_id=school_id)
    return session.scalars(
        select(AssessmentRoom)
        .where(AssessmentRoom.school_id == school_id)
        .order_by(AssessmentRoom.name)
    ).all()


def _visible_room(session: Session, scope: Scope, room_id: int) -> AssessmentRoom:
    room = session.scalar(
        select(AssessmentRoom)
        .join(School, School.id == AssessmentRoom.school_id)
        .where(AssessmentRoom.id == room_id, visible_schools(scope))
    )
    if room is None:
        raise Missing("unknown testing room")
    return room


def _check_room_unique(
    session: Session, school_id: int, name: str | None, row_id: int | None
) -> None:
    if _taken(
        session,
        AssessmentRoom.name,
        name,
        row_id=row_id,
        extra=AssessmentRoom.school_id == school_id,
    ):
        raise Taken(f"school {school_id} has a testing room named {name!r} already")


def create_room(
    *, session: Session, actor: str, scope: Scope, school_id: int, new: RoomCreate
) -> AssessmentRoom:
    visible_school(session=session, scope=scope, school_id=school_id)
    _check_room_unique(session, school_id, new.name, None)
    room = AssessmentRoom(school_id=school_id, **new.model_dump())
    session.add(room)
    session.flush()
    record(
        session,
        actor=actor,
        action="create",
        object_type="room",
        object_id=room.id,
        details={"new": values_of(room, ROOM_FIELDS)},
    )
    _commit(session, "the testing room")
    return room


def update_room(
    *, session: Session, actor: str, scope: Scope, room_id: int, change: RoomUpdate
) -> AssessmentRoom:
    room = _visible_room(session, scope, room_id)
    changes = change.changes()
    _check_room_unique(session, room.school_id, changes.get("name"), room_id)
    diff = _changed(room, changes)
    if diff:
        record(
            session,
            actor=actor,
            action="update",
            object_type="room",
            object_id=room_id,
            details=diff,
        )
        _commit(session, "the testing room")
    return room


def delete_room(*, session: Session, actor: str, scope: Scope, room_id: int) -> None:
    room = _visible_room(session, scope, room_id)
    old = values_of(room, ROOM_FIELDS)
    session.delete(room)
    record(
        session,
        actor=actor,
        action="delete",
        object_type="room",
        object_id=room_id,
        details={"old": old},
    )
    _commit(session, "the testing room")
