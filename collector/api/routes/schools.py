"""School read-outs: the list and each school's readiness."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict

from collector.api.deps import SessionDep
from collector.api.errors import UNKNOWN_SCHOOL
from collector.readiness.evaluate import Readiness
from collector.readiness.report import school_readiness
from collector.store.models import School
from collector.store.queries import list_schools

router = APIRouter(prefix="/api/v1/schools", tags=["schools"])


class SchoolPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    students: int
    staff: int


@router.get("")
def get_schools(session: SessionDep) -> list[SchoolPublic]:
    return [SchoolPublic.model_validate(s) for s in list_schools(session=session)]


@router.get("/{school_id}/readiness")
def get_readiness(school_id: int, request: Request, session: SessionDep) -> Readiness:
    """Required vs measured Mbps and a verdict for each target of the configured profile."""
    school = session.get(School, school_id)
    if school is None:
        raise HTTPException(404, UNKNOWN_SCHOOL)
    readiness = school_readiness(
        session=session, school=school, profile=request.app.state.target_profile
    )
    return readiness
