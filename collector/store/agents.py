"""Data functions for an agent's life: enrolment codes, tokens, heartbeats, status, config.

An agent is created by `agent enroll` with no token and a one-time code. The technician types
the code on the agent's box; the agent exchanges it (`exchange_code`) for its long-lived token.
Only SHA-256 digests of codes and tokens are stored. Revoking keeps the agent and its history;
its token then answers 401 until the agent is enrolled again with a fresh code. An agent rotates
its own token (`rotate_token`); the old one keeps working until the new one is first used or a
grace period ends, so a crash between the collector's answer and the agent's write of the new
token does not lock the agent out.

Example:
    >>> agent, code = issue_enrolment_code(session=session, school_id=1)
    >>> answer = exchange_code(session=session, typed=code, hostname="pi-lincoln")
    >>> answer.token  # shown once
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from agent.control import EnrolAnswer, Heartbeat
from collector.classroom_codes import new_code, normalise
from collector.inventory import AgentCreate
from collector.store.models import (
    Agent,
    AgentConfig,
    AgentHeartbeat,
    EnrolmentCode,
    School,
)
from collector.store.queries import DuplicateName, UnknownSchool, hash_token

# 16 symbols of 30 (78 bits): typed once by a technician, unguessable at any request rate.
ENROLMENT_CODE_SYMBOLS = 16
DEFAULT_CODE_VALIDITY = timedelta(days=7)
# How long a rotated-out token still works when the new one is not used.
ROTATION_GRACE = timedelta(hours=1)
_ATTEMPTS = 3

AgentState = Literal["ok", "stale", "never_seen", "revoked"]


class UnknownAgent(LookupError):
    """No agent has that name."""


class EnrolmentRefused(Exception):
    """The code cannot be exchanged; the message says why, without repeating the code."""


@dataclass(frozen=True)
class AgentStatus:
    """One agent as `agent list` and `GET /api/v1/agents` show it."""

    id: int
    name: str
    school_id: int
    school_name: str
    status: AgentState
    enrolled: bool
    hostname: str | None
    created_at: datetime
    revoked_at: datetime | None
    heartbeat: AgentHeartbeat | None
    seconds_since_heartbeat: float | None


def issue_enrolment_code(
    *,
    session: Session,
    school_id: int | None = None,
    name: str | None = None,
    agent_name: str | None = None,
    valid_for: timedelta = DEFAULT_CODE_VALIDITY,
    now: datetime | None = None,
) -> tuple[Agent, str]:
    """A one-time code for a new agent of `school_id` (named `name`, or one is made up), or for
    re-enrolling the existing agent `agent_name` (e.g. after its token was revoked)."""
    now = now or datetime.now(UTC)
    if agent_name is not None:
        agent = session.scalar(select(Agent).where(Agent.name == agent_name))
        if agent is None:
            raise UnknownAgent(f"no agent named {agent_name!r}")
    else:
        if school_id is None or session.get(School, school_id) is None:
            raise UnknownSchool(f"no school with id {school_id}")
        agent = _new_agent(session, school_id, name)
    for attempt in range(_ATTEMPTS):
        code = new_code(ENROLMENT_CODE_SYMBOLS)
        session.add(
            EnrolmentCode(
                code_sha256=hash_token(code),
                agent_id=agent.id,
                created_at=now,
                expires_at=now + valid_for,
            )
        )
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            if attempt == _ATTEMPTS - 1:
                raise
            continue
        return agent, code
    raise AssertionError("unreachable")


def _new_agent(session: Session, school_id: int, name: str | None) -> Agent:
    if name is not None:
        new = AgentCreate(school_id=school_id, name=name)
        agent = Agent(school_id=new.school_id, name=new.name)
        session.add(agent)
        try:
            session.flush()
        except IntegrityError as exc:
            session.rollback()
            raise DuplicateName(f"an agent named {new.name!r} exists already") from exc
        return agent
    count = session.scalar(select(func.count()).where(Agent.school_id == school_id)) or 0
    for n in range(count + 1, count + 1000):
        candidate = f"school-{school_id}-agent-{n}"
        if session.scalar(select(Agent.id).where(Agent.name == candidate)) is None:
            agent = Agent(school_id=school_id, name=candidate)
            session.add(agent)
            session.flush()
            return agent
    raise DuplicateName(f"no free agent name for school {school_id}: give one with --name")


def exchange_code(
    *,
    session: Session,
    typed: str,
    hostname: str = "",
    version: str | None = None,
    now: datetime | None = None,
) -> EnrolAnswer:
    """The agent's token for a valid code; the code is used up. Raises EnrolmentRefused."""
    now = now or datetime.now(UTC)
    code = normalise(typed, ENROLMENT_CODE_SYMBOLS)
    if code is None:
        raise EnrolmentRefused(
            f"not an enrolment code: {ENROLMENT_CODE_SYMBOLS} symbols in groups of 4 "
            "(from `readynet-collector agent enroll`)"
        )
    row = session.scalar(select(EnrolmentCode).where(EnrolmentCode.code_sha256 == hash_token(code)))
    if row is None:
        raise EnrolmentRefused("unknown enrolment code")
    if row.used_at is not None:
        raise EnrolmentRefused(
            f"enrolment code already used at {row.used_at:%Y-%m-%d %H:%M} UTC: ask for a new one"
        )
    if row.expires_at <= now:
        raise EnrolmentRefused(
            f"enrolment code expired at {row.expires_at:%Y-%m-%d %H:%M} UTC: ask for a new one"
        )
    agent = session.get_one(Agent, row.agent_id)
    token = secrets.token_urlsafe(32)
    row.used_at = now
    agent.token_sha256 = hash_token(token)
    agent.previous_token_sha256 = None
    agent.previous_token_until = None
    agent.revoked_at = None
    agent.enrolled_at = now
    agent.hostname = hostname[:255] or None
    if version:
        agent.last_version = version[:40]
    session.commit()
    return EnrolAnswer(
        agent_id=agent.id,
        agent_name=agent.name,
        school_id=agent.school_id,
        school_name=agent.school.name,
        token=token,
    )


def agent_for_token(*, session: Session, token: str, now: datetime | None = None) -> Agent | None:
    """The agent whose current token, or rotated-out token still in its grace period, this is.

    The first use of a rotated-in token ends the old one's grace at once.
    """
    now = now or datetime.now(UTC)
    digest = hash_token(token)
    agent = session.scalar(
        select(Agent).where(
            or_(Agent.token_sha256 == digest, Agent.previous_token_sha256 == digest)
        )
    )
    if agent is None:
        return None
    if agent.token_sha256 == digest:
        if agent.previous_token_sha256 is not None:
            agent.previous_token_sha256 = None
            agent.previous_token_until = None
            session.commit()
        return agent
    if agent.previous_token_until is not None and agent.previous_token_until > now:
        return agent
    return None


def rotate_token(
    *, session: Session, agent_id: int, now: datetime | None = None
) -> tuple[str, datetime]:
    """A new token for the agent; the current one works for ROTATION_GRACE or until it is used."""
    now = now or datetime.now(UTC)
    agent = session.get_one(Agent, agent_id)
    token = secrets.token_urlsafe(32)
    until = now + ROTATION_GRACE
    agent.previous_token_sha256 = agent.token_sha256
    agent.previous_token_until = until
    agent.token_sha256 = hash_token(token)
    session.commit()
    return token, until


def revoke_agent(*, session: Session, name: str, now: datetime | None = None) -> tuple[Agent, bool]:
    """Revoke the agent's token(s); returns it and whether it was active until now."""
    agent = session.scalar(select(Agent).where(Agent.name == name))
    if agent is None:
        raise UnknownAgent(f"no agent named {name!r}")
    if agent.revoked_at is not None:
        return agent, False
    agent.revoked_at = now or datetime.now(UTC)
    agent.previous_token_sha256 = None
    agent.previous_token_until = None
    # Its unused codes go too: a revoked agent comes back only through a code issued after.
    for code in session.scalars(
        select(EnrolmentCode).where(
            EnrolmentCode.agent_id == agent.id, EnrolmentCode.used_at.is_(None)
        )
    ):
        code.expires_at = agent.revoked_at
    session.commit()
    return agent, True


def record_heartbeat(
    *, session: Session, agent_id: int, beat: Heartbeat, received_at: datetime
) -> None:
    """Keep the agent's newest heartbeat (one row per agent, replaced each time)."""
    outbox = beat.outbox
    ceiling = beat.ceiling
    values: dict[str, Any] = {
        "received_at": received_at,
        "version": beat.agent_version,
        "started_at": beat.started_at,
        "outbox_pending": outbox.pending,
        "outbox_oldest_at": outbox.oldest_pending_at,
        "dead_letters": outbox.dead_letters,
        "outbox_lost": outbox.lost,
        "last_test_at": beat.last_test_at,
        "last_poll_at": beat.last_poll_at,
        "last_delivery_at": beat.last_delivery_at,
        "ceiling_mbps": None if ceiling is None else ceiling.speed_mbps,
        "ceiling_wifi": None if ceiling is None else ceiling.wifi,
        "ceiling_interface": None if ceiling is None else ceiling.interface,
        "clock_offset_s": (beat.sent_at - received_at).total_seconds(),
        "config_etag": beat.config_etag,
        "config_error": None if beat.config_error is None else beat.config_error[:500],
    }
    row = session.get(AgentHeartbeat, agent_id)
    if row is None:
        session.add(AgentHeartbeat(agent_id=agent_id, **values))
    else:
        for key, value in values.items():
            setattr(row, key, value)
    agent = session.get_one(Agent, agent_id)
    agent.last_seen_at = received_at
    agent.last_version = beat.agent_version
    session.commit()


def agent_statuses(
    *,
    session: Session,
    stale_after: timedelta,
    now: datetime | None = None,
    school_id: int | None = None,
) -> list[AgentStatus]:
    """Every agent (of one school) with what its heartbeats say, in name order."""
    now = now or datetime.now(UTC)
    query = (
        select(Agent, School.name, AgentHeartbeat)
        .join(School, School.id == Agent.school_id)
        .outerjoin(AgentHeartbeat, AgentHeartbeat.agent_id == Agent.id)
        .order_by(Agent.name)
    )
    if school_id is not None:
        query = query.where(Agent.school_id == school_id)
    statuses = []
    for agent, school_name, beat in session.execute(query):
        since = None if beat is None else (now - beat.received_at).total_seconds()
        state: AgentState
        if agent.revoked_at is not None:
            state = "revoked"
        elif beat is None:
            state = "never_seen"
        elif since is not None and since > stale_after.total_seconds():
            state = "stale"
        else:
            state = "ok"
        statuses.append(
            AgentStatus(
                id=agent.id,
                name=agent.name,
                school_id=agent.school_id,
                school_name=school_name,
                status=state,
                enrolled=agent.token_sha256 is not None,
                hostname=agent.hostname,
                created_at=agent.created_at,
                revoked_at=agent.revoked_at,
                heartbeat=beat,
                seconds_since_heartbeat=since,
            )
        )
    return statuses


def set_agent_config(*, session: Session, name: str, config: dict[str, Any]) -> str:
    """Hold `config` (already validated) for the agent; returns its ETag."""
    agent = session.scalar(select(Agent).where(Agent.name == name))
    if agent is None:
        raise UnknownAgent(f"no agent named {name!r}")
    document = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    etag = hashlib.sha256(document.encode()).hexdigest()[:32]
    row = session.get(AgentConfig, agent.id)
    if row is None:
        session.add(AgentConfig(agent_id=agent.id, document=document, etag=etag))
    else:
        row.document, row.etag, row.updated_at = document, etag, datetime.now(UTC)
    session.commit()
    return etag


def clear_agent_config(*, session: Session, name: str) -> bool:
    """Stop holding settings for the agent (it goes back to its own file); whether it had any."""
    agent = session.scalar(select(Agent).where(Agent.name == name))
    if agent is None:
        raise UnknownAgent(f"no agent named {name!r}")
    row = session.get(AgentConfig, agent.id)
    if row is None:
        return False
    session.delete(row)
    session.commit()
    return True


def agent_config(*, session: Session, agent_id: int) -> AgentConfig | None:
    return session.get(AgentConfig, agent_id)


def agent_config_by_name(*, session: Session, name: str) -> AgentConfig | None:
    agent = session.scalar(select(Agent).where(Agent.name == name))
    if agent is None:
        raise UnknownAgent(f"no agent named {name!r}")
    return session.get(AgentConfig, agent.id)
