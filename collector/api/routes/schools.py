"""School read-outs: the list and each school's readiness."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from collector.api.deps import GateDep
from collector.api.errors import UNKNOWN_SCHOOL, error_responses
from collector.readiness.evaluate import Readiness
from collector.readiness.report import school_readiness
from collector.store.models import School
from collector.store.queries import list_schools

router = APIRouter(prefix="/api/v1/schools", tags=["schools"])
SchoolId = Annotated[int, Path(ge=1, le=2**31 - 1)]


class SchoolPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    students: int
    staff: int


@router.get("")
async def get_schools(gate: GateDep) -> list[SchoolPublic]:
    def read(session: Session) -> list[SchoolPublic]:
        return [SchoolPublic.model_validate(s) for s in list_schools(session=session)]

    return await gate.run(read)


@router.get("/{school_id}/readiness", responses=error_responses(404, 422))
async def get_readiness(school_id: SchoolId, request: Request, gate: GateDep) -> Readiness:
    """Required vs measured Mbps and a verdict for each target of the configured profile."""
    profile = request.app.state.target_profile
    days = request.app.state.settings.readiness_window_days

    def read(session: Session) -> Readiness | None:
        school = session.get(School, school_id)
        if school is None:
            return None
        return school_readiness(session=session, school=school, profile=profile, days=days)

    readiness = await gate.run(read)
    if readiness is None:
        raise HTTPException(404, UNKNOWN_SCHOOL)
    return readiness
