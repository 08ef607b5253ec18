"""The inventory over HTTP: districts, schools, circuits and testing rooms (CRUD, CSV).

Reads take a viewer's token and see the scope's objects only; writes take an admin's. An id the
scope does not cover answers 404 like one that does not exist, so ids do not leak; a body that
names such an id answers 422 naming the field; a unique value taken, or a row still in use, 409.
Every write is in the audit log with its old and new values (`collector.store.inventory`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy.orm import Session

from collector.api.auth import NOT_ALLOWED, NOT_SIGNED_IN, AdminDep, ViewerDep
from collector.api.deps import GateDep
from collector.api.errors import ErrorBody, error_responses
from collector.api.limits import small_body
from collector.csv_import import MAX_CSV_BYTES
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
from collector.store import inventory as store
from collector.store.inventory_csv import ImportReport, export_schools, import_schools

router = APIRouter(prefix="/api/v1", tags=["inventory"])
NOT_CSV = "send the file as text/csv"
CSV_REFUSED = "CSV refused: nothing was imported"
T = TypeVar("T")
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error answers of an inventory route, described as they are meant here."""
    ours = {
        401: f"`{NOT_SIGNED_IN}`",
        403: f"`{NOT_ALLOWED}`: a viewer, or an admin whose scope does not allow this write",
        404: "no such object in the caller's scope, or a body's reference (`district_id: no "
        "district with id 7`) does not resolve within it",
        409: "a unique value (name, LEAID, NCESSCH) is taken, or the object is still in use",
        415: f"`{NOT_CSV}`, or the body is compressed",
    }
    documented = error_responses(*(s for s in statuses if s not in ours))
    for status in statuses:
        if status in ours:
            documented[status] = {"model": ErrorBody, "description": ours[status]}
    return documented


READ = _responses(401, 404, 422)
WRITE = _responses(400, 401, 403, 404, 409, 422)


class DistrictOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    state: str | None
    leaid: str | None


class SchoolOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    students: int
    staff: int
    district_id: int | None
    shared_exit: str | None
    ncessch: str | None
    guests: int | None
    grade_low: str | None
    grade_high: str | None


class CircuitOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    school_id: int | None
    district_id: int | None
    name: str
    kind: str
    down_mbps: float
    up_mbps: float
    provider: str | None


class ImportOut(BaseModel):
    """What an import stored (or, with `dry_run`, would have stored)."""

    encoding: str
    dry_run: bool
    rows: int
    created: int
    updated: int
    unchanged: int
    districts_created: int
    districts_updated: int


class RoomOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    school_id: int
    name: str
    test_takers: int | None


async def _run(gate: GateDep, fn: Callable[[Session], T]) -> T:
    """Run `fn` through the gate, answering the store's refusals with their status."""
    try:
        return await gate.run(fn)
    except store.Missing as exc:
        raise HTTPException(404, str(exc)) from None
    except store.NotAllowed:
        raise HTTPException(403, NOT_ALLOWED) from None
    except store.Taken as exc:
        raise HTTPException(409, str(exc)) from None
    except store.BadReference as exc:
        # 404 rather than 422: the body is valid as documented, what it names is not there.
        raise HTTPException(404, str(exc)) from None
    except ValidationError as exc:
        # A change that is valid alone but not with the school's other values (grade span).
        raise _invalid(
            [{"loc": ("body", *e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        ) from None


def _invalid(errors: list[dict[str, Any]]) -> RequestValidationError:
    # Answered by the app's handler like any bad body: 422, `errors` naming each field.
    return RequestValidationError([{"type": "value_error", **e} for e in errors])


# --- districts ---------------------------------------------------------------------------


@router.get("/districts", responses=READ)
async def get_districts(viewer: ViewerDep, gate: GateDep) -> list[DistrictOut]:
    """The districts of the caller's scope."""

    def read(session: Session) -> list[DistrictOut]:
        rows = store.list_districts(session=session, scope=viewer.scope)
        return [DistrictOut.model_validate(d) for d in rows]

    return await _run(gate, read)


@router.get("/districts/{district_id:int}", responses=READ)
async def get_district(district_id: Id, viewer: ViewerDep, gate: GateDep) -> DistrictOut:
    def read(session: Session) -> DistrictOut:
        district = store.visible_district(
            session=session, scope=viewer.scope, district_id=district_id
        )
        return DistrictOut.model_validate(district)

    return await _run(gate, read)


@router.post("/districts", status_code=201, responses=WRITE)
async def post_district(new: DistrictCreate, admin: AdminDep, gate: GateDep) -> DistrictOut:
    """Create a district: needs scope all, or the state the district is in."""

    def write(session: Session) -> DistrictOut:
        district = store.create_district(
            session=session, actor=admin.actor, scope=admin.scope, new=new
        )
        return DistrictOut.model_validate(district)

    return await _run(gate, write)


@router.patch("/districts/{district_id:int}", responses=WRITE)
async def patch_district(
    district_id: Id, change: DistrictUpdate, admin: AdminDep, gate: GateDep
) -> DistrictOut:
    def write(session: Session) -> DistrictOut:
        district = store.update_district(
            session=session,
            actor=admin.actor,
            scope=admin.scope,
            district_id=district_id,
            change=change,
        )
        return DistrictOut.model_validate(district)

    return await _run(gate, write)


@router.delete(
    "/districts/{district_id:int}", status_code=204, response_class=Response, responses=WRITE
)
async def delete_district(district_id: Id, admin: AdminDep, gate: GateDep) -> None:
    """Delete a district with its hub circuits; 409 while schools or users belong to it."""

    def write(session: Session) -> None:
        store.delete_district(
            session=session, actor=admin.actor, scope=admin.scope, district_id=district_id
        )

    await _run(gate, write)


# --- schools (the list is GET /api/v1/schools, collector/api/routes/schools.py) -----------

CSV_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"text/csv": {"schema": {"type": "string"}}},
        "description": "Schools as CSV: NCES Common Core of Data column names, see the README",
    }
}


@router.get(
    "/schools/export.csv",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
        **_responses(401),
    },
)
async def export_csv(viewer: ViewerDep, gate: GateDep) -> Response:
    """The caller's schools as CSV, in the columns the import reads: importing it changes
    nothing."""

    def read(session: Session) -> str:
        return export_schools(session=session, scope=viewer.scope)

    return Response(
        await _run(gate, read),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="schools.csv"'},
    )


@router.post(
    "/schools/import",
    response_model=ImportOut,
    openapi_extra=CSV_BODY,
    responses=_responses(401, 403, 413, 415, 422),
)
async def import_csv(
    request: Request,
    admin: AdminDep,
    gate: GateDep,
    dry_run: Annotated[bool, Query(description="check and count, store nothing")] = False,
) -> Any:
    """Create or update schools (and their districts) from CSV, all rows or none: 422 lists
    each bad cell by line and column."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "text/csv":
        raise HTTPException(415, NOT_CSV)
    if request.headers.get("content-encoding", "identity").lower() != "identity":
        raise HTTPException(415, NOT_CSV)
    data = await small_body(request, MAX_CSV_BYTES)

    def write(session: Session) -> ImportReport:
        return import_schools(
            session=session,
            actor=admin.actor,
            scope=admin.scope,
            data=data,
            source="api",
            dry_run=dry_run,
        )

    report = await _run(gate, write)
    if report.problems:
        errors = [
            {
                "loc": ([f"line {p.line}"] if p.line else []) + ([p.column] if p.column else []),
                "msg": p.message,
            }
            for p in report.problems
        ]
        if report.more_problems:
            errors.append({"loc": [], "msg": f"... and {report.more_problems} more problems"})
        return JSONResponse({"detail": CSV_REFUSED, "errors": errors}, status_code=422)
    return ImportOut.model_validate(report, from_attributes=True)


@router.get("/schools/{school_id:int}", responses=READ)
async def get_school(school_id: Id, viewer: ViewerDep, gate: GateDep) -> SchoolOut:
    """One school with every inventory field."""

    def read(session: Session) -> SchoolOut:
        school = store.visible_school(session=session, scope=viewer.scope, school_id=school_id)
        return SchoolOut.model_validate(school)

    return await _run(gate, read)


@router.post("/schools", status_code=201, responses=WRITE)
async def post_school(new: SchoolCreate, admin: AdminDep, gate: GateDep) -> SchoolOut:
    """Create a school in a district of the caller's scope (scope all: any, or none)."""

    def write(session: Session) -> SchoolOut:
        school = store.create_school(session=session, actor=admin.actor, scope=admin.scope, new=new)
        return SchoolOut.model_validate(school)

    return await _run(gate, write)


@router.patch("/schools/{school_id:int}", responses=WRITE)
async def patch_school(
    school_id: Id, change: SchoolUpdate, admin: AdminDep, gate: GateDep
) -> SchoolOut:
    """Change any of a school's fields; `null` clears an optional one."""

    def write(session: Session) -> SchoolOut:
        school = store.update_school(
            session=session,
            actor=admin.actor,
            scope=admin.scope,
            school_id=school_id,
            change=change,
        )
        return SchoolOut.model_validate(school)

    return await _run(gate, write)


@router.delete(
    "/schools/{school_id:int}", status_code=204, response_class=Response, responses=WRITE
)
async def delete_school(school_id: Id, admin: AdminDep, gate: GateDep) -> None:
    """Delete a school with its circuits and rooms; 409 while it has agents or measurements."""

    def write(session: Session) -> None:
        store.delete_school(
            session=session, actor=admin.actor, scope=admin.scope, school_id=school_id
        )

    await _run(gate, write)


# --- circuits ----------------------------------------------------------------------------


@router.get("/schools/{school_id:int}/circuits", responses=READ)
async def get_school_circuits(school_id: Id, viewer: ViewerDep, gate: GateDep) -> list[CircuitOut]:
    def read(session: Session) -> list[CircuitOut]:
        rows = store.circuits_of(session=session, scope=viewer.scope, school_id=school_id)
        return [CircuitOut.model_validate(c) for c in rows]

    return await _run(gate, read)


@router.get("/districts/{district_id:int}/circuits", responses=READ)
async def get_district_circuits(
    district_id: Id, viewer: ViewerDep, gate: GateDep
) -> list[CircuitOut]:
    """A district's hub circuits (its schools' own are under each school)."""

    def read(session: Session) -> list[CircuitOut]:
        rows = store.circuits_of(session=session, scope=viewer.scope, district_id=district_id)
        return [CircuitOut.model_validate(c) for c in rows]

    return await _run(gate, read)


@router.post("/circuits", status_code=201, responses=WRITE)
async def post_circuit(new: CircuitCreate, admin: AdminDep, gate: GateDep) -> CircuitOut:
    """A school's circuit (`school_id`) or a district hub's (`district_id`), not both."""

    def write(session: Session) -> CircuitOut:
        circuit = store.create_circuit(
            session=session, actor=admin.actor, scope=admin.scope, new=new
        )
        return CircuitOut.model_validate(circuit)

    return await _run(gate, write)


@router.patch("/circuits/{circuit_id:int}", responses=WRITE)
async def patch_circuit(
    circuit_id: Id, change: CircuitUpdate, admin: AdminDep, gate: GateDep
) -> CircuitOut:
    def write(session: Session) -> CircuitOut:
        circuit = store.update_circuit(
            session=session,
            actor=admin.actor,
            scope=admin.scope,
            circuit_id=circuit_id,
            change=change,
        )
        return CircuitOut.model_validate(circuit)

    return await _run(gate, write)


@router.delete(
    "/circuits/{circuit_id:int}", status_code=204, response_class=Response, responses=WRITE
)
async def delete_circuit(circuit_id: Id, admin: AdminDep, gate: GateDep) -> None:
    def write(session: Session) -> None:
        store.delete_circuit(
            session=session, actor=admin.actor, scope=admin.scope, circuit_id=circuit_id
        )

    await _run(gate, write)


# --- testing rooms -----------------------------------------------------------------------


@router.get("/schools/{school_id:int}/rooms", responses=READ)
async def get_rooms(school_id: Id, viewer: ViewerDep, gate: GateDep) -> list[RoomOut]:
    def read(session: Session) -> list[RoomOut]:
        rows = store.rooms_of(session=session, scope=viewer.scope, school_id=school_id)
        return [RoomOut.model_validate(r) for r in rows]

    return await _run(gate, read)


@router.post("/schools/{school_id:int}/rooms", status_code=201, responses=WRITE)
async def post_room(school_id: Id, new: RoomCreate, admin: AdminDep, gate: GateDep) -> RoomOut:
    """A testing room and how many students take tests in it at once."""

    def write(session: Session) -> RoomOut:
        room = store.create_room(
            session=session, actor=admin.actor, scope=admin.scope, school_id=school_id, new=new
        )
        return RoomOut.model_validate(room)

    return await _run(gate, write)


@router.patch("/rooms/{room_id:int}", responses=WRITE)
async def patch_room(room_id: Id, change: RoomUpdate, admin: AdminDep, gate: GateDep) -> RoomOut:
    def write(session: Session) -> RoomOut:
        room = store.update_room(
            session=session, actor=admin.actor, scope=admin.scope, room_id=room_id, change=change
        )
        return RoomOut.model_validate(room)

    return await _run(gate, write)


@router.delete("/rooms/{room_id:int}", status_code=204, response_class=Response, responses=WRITE)
async def delete_room(room_id: Id, admin: AdminDep, gate: GateDep) -> None:
    def write(session: Session) -> None:
        store.delete_room(session=session, actor=admin.actor, scope=admin.scope, room_id=room_id)

    await _run(gate, write)
