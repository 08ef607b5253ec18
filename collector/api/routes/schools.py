"""School read-outs: the list and each school's readiness, for a signed-in user.

Both see only the schools of the user's scope; a school outside it answers 404, exactly as one
that does not exist, so ids of other districts' schools do not leak.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session

from collector.api.auth import ViewerDep
from collector.api.deps import GateDep
from collector.api.errors import UNKNOWN_SCHOOL, error_responses
from collector.readiness.evaluate import Readiness
from collector.readiness.report import school_readiness
from collector.store.models import School
from collector.store.people import sees_school, visible_schools

router = APIRouter(prefix="/api/v1/schools", tags=["schools"])
SchoolId = Annotated[int, Path(ge=1, le=2**31 - 1)]


class SchoolPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    students: int
    staff: int


@router.get("", responses=error_responses(401))
async def get_schools(viewer: ViewerDep, gate: GateDep) -> list[SchoolPublic]:
    """The schools of the user's scope, by id."""

    def read(session: Session) -> list[SchoolPublic]:
        query = select(School).where(visible_schools(viewer.scope)).order_by(School.id)
        return [SchoolPublic.model_validate(s) for s in session.scalars(query)]

    return await gate.run(read)


@router.get("/{school_id}/readiness", responses=error_responses(401, 404, 422))
async def get_readiness(
    school_id: SchoolId, request: Request, viewer: ViewerDep, gate: GateDep
) -> Readiness:
    """Required vs measured Mbps and a verdict for each target of the configured profile."""
    profile = request.app.state.target_profile
    days = request.app.state.settings.readiness_window_days

    def read(session: Session) -> Readiness | None:
        school = session.get(School, school_id)
        if school is None or not sees_school(
            session=session, scope=viewer.scope, school_id=school_id
        ):
            return None
        return school_readiness(session=session, school=school, profile=profile, days=days)

    readiness = await gate.run(read)
    if readiness is None:
        raise HTTPException(404, UNKNOWN_SCHOOL)
    return readiness
