"""An agent's life over HTTP: enrolment, heartbeats, token rotation, remote config, the list.

- `POST /api/v1/enrol`: a one-time code (from `readynet-collector agent enroll`) for the agent's
  token. The only agent route without a token; a code is 78 random bits and used once.
- `POST /api/v1/heartbeat`: every minute; the answer carries the collector's time (the agent's
  clock offset) and the ETag of the settings the collector holds for the agent.
- `POST /api/v1/agent/token`: a new token for the caller; the old one keeps working until the
  new one is first used, or for an hour.
- `GET /api/v1/agent/config`: those settings, with `If-None-Match` (304 when unchanged).
- `GET /api/v1/agents`: every agent's status (ok, stale, never_seen, revoked) for district IT:
  a user's token or session, and only the agents of the schools of the user's scope.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from agent.control import (
    EnrolAnswer,
    EnrolRequest,
    Heartbeat,
    HeartbeatReceipt,
    RemoteConfigDocument,
    RotatedToken,
)
from collector.api.auth import ViewerDep
from collector.api.deps import AgentDep, GateDep
from collector.api.errors import ENROLMENT_REFUSED, error_responses, payload_error
from collector.api.limits import small_body
from collector.settings import CollectorSettings
from collector.store import agents as store
from collector.store.models import School
from collector.store.people import visible_schools

router = APIRouter(prefix="/api/v1", tags=["agents"])
MAX_BODY_BYTES = 8 * 1024
NO_CONFIG = "the collector holds no settings for this agent"


def _body(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


def _settings(request: Request) -> CollectorSettings:
    settings: CollectorSettings = request.app.state.settings
    return settings


@router.post(
    "/enrol",
    status_code=201,
    response_model=EnrolAnswer,
    openapi_extra=_body(EnrolRequest),
    responses=error_responses(400, 403, 413, 422),
)
async def enrol(request: Request, gate: GateDep) -> Any:
    """Exchange a one-time enrolment code for the agent's token (shown this once)."""
    try:
        wanted = EnrolRequest.model_validate_json(await small_body(request, MAX_BODY_BYTES))
    except ValidationError as exc:
        return payload_error(exc)

    def exchange(session: Session) -> EnrolAnswer | str:
        try:
            return store.exchange_code(
                session=session,
                typed=wanted.code,
                hostname=wanted.hostname,
                version=wanted.agent_version,
            )
        except store.EnrolmentRefused as exc:
            return str(exc)

    answer = await gate.run(exchange)
    if isinstance(answer, str):
        return JSONResponse(
            {"detail": ENROLMENT_REFUSED, "errors": [{"loc": ["code"], "msg": answer}]},
            status_code=403,
        )
    return JSONResponse(answer.model_dump(mode="json"), status_code=201)


@router.post(
    "/heartbeat",
    response_model=HeartbeatReceipt,
    openapi_extra=_body(Heartbeat),
    responses=error_responses(400, 401, 413, 422),
)
async def heartbeat(request: Request, agent: AgentDep, gate: GateDep) -> Any:
    """Record the agent's heartbeat; answer with the time here and the config's ETag."""
    try:
        beat = Heartbeat.model_validate_json(await small_body(request, MAX_BODY_BYTES))
    except ValidationError as exc:
        return payload_error(exc)
    received_at = datetime.now(UTC)

    def record(session: Session) -> str | None:
        store.record_heartbeat(
            session=session, agent_id=agent.id, beat=beat, received_at=received_at
        )
        held = store.agent_config(session=session, agent_id=agent.id)
        return None if held is None else held.etag

    etag = await gate.run(record)
    return HeartbeatReceipt(
        received_at=received_at,
        clock_offset_s=(beat.sent_at - received_at).total_seconds(),
        config_etag=etag,
        stale_after_s=_settings(request).agent_stale_after_s,
    )


@router.post("/agent/token", response_model=RotatedToken, responses=error_responses(401))
async def rotate_token(request: Request, agent: AgentDep, gate: GateDep) -> Any:
    """A new token for the calling agent (shown this once)."""

    def rotate(session: Session) -> tuple[str, datetime]:
        return store.rotate_token(session=session, agent_id=agent.id)

    token, until = await gate.run(rotate)
    request.app.state.tokens.forget_agent(agent.id)
    return RotatedToken(token=token, old_valid_until=until)


@router.get(
    "/agent/config",
    response_model=RemoteConfigDocument,
    responses={
        **error_responses(401, 404),
        304: {"description": "unchanged since the ETag given in If-None-Match"},
    },
)
async def agent_config(request: Request, agent: AgentDep, gate: GateDep) -> Any:
    """The settings the collector holds for the calling agent (schedule, devices, uplink)."""

    def read(session: Session) -> tuple[str, str] | None:
        held = store.agent_config(session=session, agent_id=agent.id)
        return None if held is None else (held.etag, held.document)

    held = await gate.run(read)
    if held is None:
        raise HTTPException(404, NO_CONFIG)
    etag, document = held
    quoted = f'"{etag}"'
    if quoted in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers={"ETag": quoted})
    body = RemoteConfigDocument(etag=etag, config=json.loads(document))
    return JSONResponse(body.model_dump(mode="json"), headers={"ETag": quoted})


class AgentOut(BaseModel):
    """One agent as district IT sees it."""

    name: str
    school_id: int
    school_name: str
    status: store.AgentState
    enrolled: bool
    hostname: str | None
    created_at: datetime
    revoked_at: datetime | None
    last_heartbeat_at: datetime | None
    seconds_since_heartbeat: float | None
    version: str | None
    started_at: datetime | None
    outbox_pending: int | None
    outbox_oldest_at: datetime | None
    dead_letters: int | None
    outbox_lost: int | None
    last_test_at: datetime | None
    last_poll_at: datetime | None
    last_delivery_at: datetime | None
    ceiling_mbps: int | None
    ceiling_wifi: bool | None
    clock_offset_s: float | None
    config_etag: str | None
    config_error: str | None


def agent_out(status: store.AgentStatus) -> AgentOut:
    beat = status.heartbeat
    return AgentOut(
        name=status.name,
        school_id=status.school_id,
        school_name=status.school_name,
        status=status.status,
        enrolled=status.enrolled,
        hostname=status.hostname,
        created_at=status.created_at,
        revoked_at=status.revoked_at,
        last_heartbeat_at=None if beat is None else beat.received_at,
        seconds_since_heartbeat=status.seconds_since_heartbeat,
        version=None if beat is None else beat.version,
        started_at=None if beat is None else beat.started_at,
        outbox_pending=None if beat is None else beat.outbox_pending,
        outbox_oldest_at=None if beat is None else beat.outbox_oldest_at,
        dead_letters=None if beat is None else beat.dead_letters,
        outbox_lost=None if beat is None else beat.outbox_lost,
        last_test_at=None if beat is None else beat.last_test_at,
        last_poll_at=None if beat is None else beat.last_poll_at,
        last_delivery_at=None if beat is None else beat.last_delivery_at,
        ceiling_mbps=None if beat is None else beat.ceiling_mbps,
        ceiling_wifi=None if beat is None else beat.ceiling_wifi,
        clock_offset_s=None if beat is None else beat.clock_offset_s,
        config_etag=None if beat is None else beat.config_etag,
        config_error=None if beat is None else beat.config_error,
    )


@router.get("/agents", response_model=list[AgentOut], responses=error_responses(401, 422))
async def list_agents(
    request: Request,
    viewer: ViewerDep,
    gate: GateDep,
    school_id: int | None = Query(default=None, ge=1, le=2**31 - 1),
) -> Any:
    """Every agent of the user's scope with its status: `stale` after `agent_stale_after_s`
    without a heartbeat, `never_seen` from enrolment until the first one, `revoked` once its
    token is revoked."""
    stale_after = timedelta(seconds=_settings(request).agent_stale_after_s)

    def read(session: Session) -> list[AgentOut]:
        statuses = store.agent_statuses(
            session=session, stale_after=stale_after, school_id=school_id
        )
        if viewer.scope.kind != "all":
            seen = set(session.scalars(select(School.id).where(visible_schools(viewer.scope))))
            statuses = [s for s in statuses if s.school_id in seen]
        return [agent_out(s) for s in statuses]

    return await gate.run(read)
