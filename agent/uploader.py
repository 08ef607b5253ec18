"""Deliver the outbox to the collector in batches; remove only what the collector confirmed.

Error messages never carry the `secrets` the caller names (the token the client sends, at the
least): an httpx error may quote the Authorization header whole. See `agent.redact`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from agent import __version__
from agent.errors import CollectorRejected, CollectorUnavailable
from agent.outbox import Outbox
from agent.redact import describe, redact, scrub
from agent.wire import Batch, Receipt


@dataclass(frozen=True)
class Delivery:
    accepted: int
    duplicates: int
    remaining: int


async def deliver(
    outbox: Outbox, *, client: httpx.AsyncClient, batch_size: int, secrets: Sequence[str] = ()
) -> Delivery:
    """Post pending results until the outbox is empty.

    Raises CollectorUnavailable (network error, 5xx: try again later) or CollectorRejected
    (4xx); in both cases the undelivered results stay in the outbox.
    """
    accepted = duplicates = 0
    while pending := outbox.pending(limit=batch_size):
        # An older agent queued errors as libraries worded them, a quoted token included:
        # mask them on the way out, or the collector's database keeps the token for good.
        measurements = [scrub(measurement, secrets) for measurement in pending]
        batch = Batch(agent_version=__version__, measurements=measurements)
        receipt = await post_batch(client, batch, secrets=secrets)
        outbox.remove([*receipt.accepted, *receipt.duplicates])
        accepted += len(receipt.accepted)
        duplicates += len(receipt.duplicates)
        if not receipt.accepted and not receipt.duplicates:
            raise CollectorRejected(200, "the collector confirmed none of the batch")
    return Delivery(accepted=accepted, duplicates=duplicates, remaining=len(outbox))


async def post_batch(
    client: httpx.AsyncClient, batch: Batch, *, secrets: Sequence[str] = ()
) -> Receipt:
    try:
        response = await client.post(
            "/api/v1/results",
            content=batch.model_dump_json(),
            headers={"Content-Type": "application/json"},
        )
    except httpx.HTTPError as exc:
        # h11 quotes a refused header whole ("Bearer <token> "), so never the raw exception.
        raise CollectorUnavailable(f"cannot reach the collector: {describe(exc, secrets)}") from exc
    if response.status_code >= 500:
        raise CollectorUnavailable(f"collector answered HTTP {response.status_code}")
    if response.status_code >= 400:
        # A proxy in between may echo the request, headers and all.
        raise CollectorRejected(response.status_code, redact(_detail(response), secrets))
    try:
        return Receipt.model_validate_json(response.content)
    except ValueError as exc:
        reason = redact(str(exc), secrets)
        raise CollectorUnavailable(f"collector sent an unreadable receipt: {reason}") from exc


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    # Some proxies answer with JSON that is not our {"detail": ...} object.
    return str(body.get("detail", body)) if isinstance(body, dict) else response.text[:200]
