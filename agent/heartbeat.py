"""The agent's heartbeat, its remote-config check, and the status it keeps on disk.

Every `heartbeat_interval_s` (a minute) the daemon tells the collector it is alive: version,
uptime, outbox depth and dead letters, last successful test, poll and delivery, its own link
(the ceiling), and which remote config it runs. The answer carries the collector's time (the
agent's clock offset: results are time-stamped by the agent) and the ETag of the settings the
collector holds for it; when that differs from the one in use, the daemon fetches them.

What the daemon knows of itself is also written to `status.json` in the state directory, for
`readynet-agent status` and the install script, which run in other processes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from agent.control import (
    Ceiling,
    Heartbeat,
    HeartbeatReceipt,
    OutboxFigures,
    RemoteConfigDocument,
)
from agent.errors import CollectorRejected, CollectorUnavailable, TokenRefused
from agent.outbox import OutboxStatus
from agent.probes.ceiling import Ceiling as LinkCeiling
from agent.redact import describe, redact

STATUS_FILE = "status.json"
# An agent clock further off than this makes its results' times wrong: it is logged loudly.
CLOCK_WARNING_S = 60.0


@dataclass
class AgentStatus:
    """What `readynet-agent status` shows; times are ISO 8601 text (JSON as it is stored)."""

    version: str = ""
    started_at: str | None = None
    last_heartbeat_at: str | None = None
    last_heartbeat_error: str | None = None
    last_delivery_at: str | None = None
    last_test_at: str | None = None
    last_poll_at: str | None = None
    first_round_at: str | None = None
    clock_offset_s: float | None = None
    config_etag: str | None = None
    config_error: str | None = None


class StatusFile:
    """`status.json` in the state directory, replaced whole on every write."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / STATUS_FILE

    def load(self) -> AgentStatus:
        try:
            saved = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return AgentStatus()
        if not isinstance(saved, dict):
            return AgentStatus()
        known = {f.name for f in fields(AgentStatus)}
        return AgentStatus(**{k: v for k, v in saved.items() if k in known})

    def save(self, status: AgentStatus) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(asdict(status), out, indent=1)
        os.replace(partial, self.path)


def iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat(timespec="seconds")


def parsed(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def build_heartbeat(
    status: AgentStatus,
    outbox: OutboxStatus,
    ceiling: LinkCeiling | None,
    *,
    sent_at: datetime,
) -> Heartbeat:
    lost = sum(outbox.summarised.values()) + sum(outbox.dropped.values())
    started = parsed(status.started_at) or sent_at
    return Heartbeat(
        agent_version=status.version[:40],
        started_at=started,
        sent_at=sent_at,
        outbox=OutboxFigures(
            pending=outbox.pending,
            oldest_pending_at=outbox.oldest_pending,
            dead_letters=outbox.dead_letters,
            lost=lost + outbox.dead_letters_dropped,
        ),
        last_test_at=parsed(status.last_test_at),
        last_poll_at=parsed(status.last_poll_at),
        last_delivery_at=parsed(status.last_delivery_at),
        ceiling=None
        if ceiling is None
        else Ceiling(
            interface=(ceiling.interface or "")[:64] or None,
            speed_mbps=ceiling.link_mbps,
            wifi=ceiling.wifi,
        ),
        config_etag=status.config_etag,
        config_error=None if status.config_error is None else status.config_error[:4000],
    )


async def send_heartbeat(
    client: httpx.AsyncClient, beat: Heartbeat, *, secrets: Sequence[str] = ()
) -> HeartbeatReceipt:
    """POST the heartbeat. Raises CollectorUnavailable, TokenRefused or CollectorRejected."""
    response = await send(
        client,
        "POST",
        "/api/v1/heartbeat",
        secrets,
        content=beat.model_dump_json(),
        headers={"Content-Type": "application/json"},
    )
    raise_for_status(response, secrets)
    try:
        return HeartbeatReceipt.model_validate_json(response.content)
    except ValidationError:
        raise CollectorUnavailable("collector sent an unreadable heartbeat receipt") from None


async def fetch_config(
    client: httpx.AsyncClient, etag: str | None, *, secrets: Sequence[str] = ()
) -> RemoteConfigDocument | None:
    """The settings the collector holds for us, or None when unchanged since `etag` (304) or
    when it holds none (404)."""
    headers = {} if etag is None else {"If-None-Match": f'"{etag}"'}
    response = await send(client, "GET", "/api/v1/agent/config", secrets, headers=headers)
    if response.status_code in (304, 404):
        return None
    raise_for_status(response, secrets)
    try:
        return RemoteConfigDocument.model_validate_json(response.content)
    except ValidationError:
        raise CollectorUnavailable("collector sent an unreadable config document") from None


async def send(
    client: httpx.AsyncClient, method: str, url: str, secrets: Sequence[str], **kwargs: Any
) -> httpx.Response:
    try:
        return await client.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        # h11 quotes a refused Authorization header whole, so never the raw exception.
        raise CollectorUnavailable(f"cannot reach the collector: {describe(exc, secrets)}") from exc


def raise_for_status(response: httpx.Response, secrets: Sequence[str]) -> None:
    status = response.status_code
    if status >= 500 or status == 429:
        raise CollectorUnavailable(f"collector answered HTTP {status}")
    if status >= 400:
        detail = redact(_detail(response), secrets)
        raise TokenRefused(status, detail) if status == 401 else CollectorRejected(status, detail)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("detail", body))[:200] if isinstance(body, dict) else response.text[:200]
