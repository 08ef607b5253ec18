"""Test slots: `POST /api/v1/slots` asks for a turn on the school's exit, `DELETE` gives it back.

Schools behind one shared exit (`schools.shared_exit`) get one slot at a time, and so do the
agents of one school; the slots are rows in the database (`collector.store.slots`), so every
replica and worker of the collector sees the same ones.
The body is read after the token has been checked, and is tiny: anything over
`MAX_BODY_BYTES` is refused unread.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request, Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from sqlalchemy.orm import Session

from collector.api.deps import AgentDep, GateDep
from collector.api.errors import (
    SLOT_BUSY,
    UNKNOWN_SLOT,
    error_responses,
    payload_error,
)
from collector.api.limits import small_body
from collector.store import slots
from collector.store.queries import shared_exit_of

router = APIRouter(prefix="/api/v1/slots", tags=["slots"])
MAX_BODY_BYTES = 1024
# A slot longer than an hour is a stuck test, not a throughput test.
MIN_SLOT_SECONDS = 1
MAX_SLOT_SECONDS = 3600
SlotId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="the id a grant gave")]


def _whole_number(value: object) -> object:
    # As everywhere on the wire: 30.0 is an integer (JSON Schema says so), 30.5 and "30" are not.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class SlotRequest(BaseModel):
    """How long the test needs the exit, in seconds."""

    model_config = ConfigDict(extra="forbid", strict=True)

    seconds: Annotated[
        int, Field(ge=MIN_SLOT_SECONDS, le=MAX_SLOT_SECONDS), BeforeValidator(_whole_number)
    ]


class SlotGrant(BaseModel):
    """A granted slot: `DELETE /api/v1/slots/{id}` releases it, or it ends by itself.

    The end is given in seconds from now, not as a time of day: agent clocks drift.
    """

    id: str
    expires_in_s: int


_RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds until the slot that holds the exit ends",
        "schema": {"type": "integer", "minimum": 1},
    }
}
_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": SlotRequest.model_json_schema()}},
    }
}


@router.post(
    "",
    status_code=201,
    response_model=SlotGrant,
    openapi_extra=_BODY,
    responses={
        **error_responses(400, 401, 413, 422),
        409: {**error_responses(409)[409], "headers": _RETRY_AFTER},
    },
)
async def take_slot(request: Request, agent: AgentDep, gate: GateDep) -> Any:
    """A slot of `seconds` on the school's exit, or 409 while another test holds it."""
    body = await small_body(request, MAX_BODY_BYTES)
    try:
        wanted = SlotRequest.model_validate_json(body)
    except ValidationError as exc:
        return payload_error(exc)

    def take(session: Session) -> slots.Grant | slots.Held:
        shared_exit = shared_exit_of(session=session, school_id=agent.school_id)
        return slots.take_slot(
            session=session,
            key=slots.exit_key(school_id=agent.school_id, shared_exit=shared_exit),
            agent_id=agent.id,
            seconds=wanted.seconds,
            now=datetime.now(UTC),
        )

    outcome = await gate.run(take)
    if isinstance(outcome, slots.Held):
        raise HTTPException(409, SLOT_BUSY, headers={"Retry-After": str(outcome.retry_after_s)})
    return SlotGrant(id=outcome.id, expires_in_s=outcome.seconds)


@router.delete("/{slot_id}", status_code=204, responses=error_responses(401, 404, 422))
async def release_slot(agent: AgentDep, gate: GateDep, slot_id: SlotId) -> Response:
    """End the caller's slot early. An unknown, expired or someone else's slot is 404."""

    def release(session: Session) -> bool:
        return slots.give_back(
            session=session, slot_id=slot_id, agent_id=agent.id, now=datetime.now(UTC)
        )

    if not await gate.run(release):
        raise HTTPException(404, UNKNOWN_SLOT)
    return Response(status_code=204)
