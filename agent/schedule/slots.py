"""Test slots from the collector: schools behind one shared exit take turns.

Before a throughput test the agent asks `POST /api/v1/slots` for the seconds it needs. The
collector grants one slot at a time per shared exit (or per school, for a school with its own
exit); while another holds it, the answer is Busy with the seconds to wait. A slot ends when it
is released or when its time is up, whichever comes first.

`client` is the agent's collector client: base URL and bearer token already set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from agent.errors import CollectorRejected, CollectorUnavailable
from agent.redact import describe, redact

# Bounds the collector holds a request to; the same numbers as its OpenAPI schema.
MIN_SLOT_SECONDS = 1
MAX_SLOT_SECONDS = 3600
# When the collector says busy without saying for how long.
DEFAULT_RETRY_AFTER_S = 30.0


class _Grant(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    expires_in_s: int


@dataclass(frozen=True)
class Slot:
    """A granted slot: release it with `release(client, slot)` when the test is done.

    `expires_at` is on the agent's own clock, counted from when it asked (so never later than
    the collector's end of the slot, whatever the two clocks say).
    """

    id: str
    seconds: int
    expires_at: datetime


@dataclass(frozen=True)
class Busy:
    """Another test holds the exit: ask again after `retry_after_s` seconds."""

    retry_after_s: float


async def acquire(
    client: httpx.AsyncClient, seconds: int, *, secrets: Sequence[str] = ()
) -> Slot | Busy:
    """Ask for a slot of `seconds`; Slot or Busy.

    Raises CollectorUnavailable (network error, 5xx, an unreadable answer) or CollectorRejected
    (another 4xx, e.g. a bad token or `seconds` out of bounds).
    """
    if not MIN_SLOT_SECONDS <= seconds <= MAX_SLOT_SECONDS:
        raise ValueError(f"seconds must be {MIN_SLOT_SECONDS} to {MAX_SLOT_SECONDS}")
    asked_at = datetime.now(UTC)
    response = await _send(client, "POST", "/api/v1/slots", secrets, json={"seconds": seconds})
    if response.status_code == 409:
        return Busy(_retry_after_s(response))
    _raise_for_status(response, secrets)
    try:
        grant = _Grant.model_validate_json(response.content)
    except ValidationError as exc:
        raise CollectorUnavailable("collector sent an unreadable slot grant") from exc
    return Slot(grant.id, grant.expires_in_s, asked_at + timedelta(seconds=grant.expires_in_s))


async def release(client: httpx.AsyncClient, slot: Slot, *, secrets: Sequence[str] = ()) -> None:
    """Give the slot back early. A slot that has expired already is not an error."""
    response = await _send(client, "DELETE", f"/api/v1/slots/{slot.id}", secrets)
    if response.status_code == 404:
        return
    _raise_for_status(response, secrets)


async def _send(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    secrets: Sequence[str],
    json: object = None,
) -> httpx.Response:
    try:
        return await client.request(method, url, json=json)
    except httpx.HTTPError as exc:
        # h11 quotes a refused Authorization header whole, so never the raw exception.
        raise CollectorUnavailable(f"cannot reach the collector: {describe(exc, secrets)}") from exc


def _raise_for_status(response: httpx.Response, secrets: Sequence[str]) -> None:
    if response.status_code >= 500:
        raise CollectorUnavailable(f"collector answered HTTP {response.status_code}")
    if response.status_code >= 400:
        raise CollectorRejected(response.status_code, redact(_detail(response), secrets))


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("detail", body)) if isinstance(body, dict) else response.text[:200]


def _retry_after_s(response: httpx.Response) -> float:
    header = response.headers.get("retry-after", "")
    try:
        seconds = float(header)
    except ValueError:
        return DEFAULT_RETRY_AFTER_S
    return max(1.0, seconds) if math.isfinite(seconds) else DEFAULT_RETRY_AFTER_S
