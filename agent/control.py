"""The agent's control messages: enrolment, heartbeat, token rotation, remote config.

Like `agent.wire` (the results), both halves import these models, which forbid unknown fields
and coerce nothing. Timestamps the agent's clock makes are taken as they are (`AwareDatetime`,
not the results' plausibility check): a heartbeat from an agent whose clock is an hour out is
exactly the one the collector must hear, to say so.

Example:
    >>> EnrolRequest(code="RN2A-...", hostname="pi-lincoln", agent_version="0.1.0")
    ... # doctest: +SKIP
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, Field

from agent.wire import AgentVersion, ByteCount, ErrorText, _fits, _Strict

Hostname = Annotated[str, _fits(255)]
TypedCode = Annotated[str, _fits(64, min_length=1)]
ETag = Annotated[str, _fits(64, min_length=1)]
InterfaceLabel = Annotated[str, _fits(64)]
# A century either way: beyond it the number says nothing more (and stays a finite float).
Offset = Annotated[float, Field(ge=-3.2e9, le=3.2e9, allow_inf_nan=False)]


class EnrolRequest(_Strict):
    """`POST /api/v1/enrol`: a one-time code, typed by a technician on the agent's box."""

    code: TypedCode
    hostname: Hostname = ""
    agent_version: AgentVersion = "0"


class EnrolAnswer(_Strict):
    """The agent's identity and its long-lived token, shown this once."""

    agent_id: int
    agent_name: str
    school_id: int
    school_name: str
    token: str


class RotatedToken(_Strict):
    """`POST /api/v1/agent/token`: the new token; the old one works until `old_valid_until`."""

    token: str
    old_valid_until: datetime


class Ceiling(_Strict):
    """What the agent's own link can carry: a test near it says little about the school."""

    interface: InterfaceLabel | None = None
    speed_mbps: Annotated[int, Field(ge=1, le=10_000_000)] | None = None
    wifi: bool | None = None


class OutboxFigures(_Strict):
    pending: ByteCount = 0
    oldest_pending_at: AwareDatetime | None = None
    dead_letters: ByteCount = 0
    # Results the outbox summarised or dropped to stay under its size cap.
    lost: ByteCount = 0


class Heartbeat(_Strict):
    """`POST /api/v1/heartbeat`, every minute: the agent is alive, and how it is doing."""

    agent_version: AgentVersion
    started_at: AwareDatetime
    sent_at: AwareDatetime
    outbox: OutboxFigures = Field(default_factory=OutboxFigures)
    last_test_at: AwareDatetime | None = None
    last_poll_at: AwareDatetime | None = None
    last_delivery_at: AwareDatetime | None = None
    ceiling: Ceiling | None = None
    # The remote config the agent runs with, and why it refused a newer one (if it did).
    config_etag: ETag | None = None
    config_error: ErrorText | None = None


class HeartbeatReceipt(_Strict):
    received_at: datetime
    # The agent's clock minus the collector's, from `sent_at` (off by the one-way delay only).
    clock_offset_s: float
    # The remote config the collector holds for this agent; None when it holds none.
    config_etag: str | None
    stale_after_s: float


class RemoteConfigDocument(_Strict):
    """`GET /api/v1/agent/config`: the settings the collector holds, and their ETag."""

    etag: str
    config: dict[str, Any]
