"""Deliver the outbox to the collector in batches; remove only what the collector confirmed."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from agent import __version__
from agent.errors import CollectorRejected, CollectorUnavailable
from agent.outbox import Outbox
from agent.wire import Batch, Receipt


@dataclass(frozen=True)
class Delivery:
    accepted: int
    duplicates: int
    remaining: int


async def deliver(outbox: Outbox, *, client: httpx.AsyncClient, batch_size: int) -> Delivery:
    """Post pending results until the outbox is empty.

    Raises CollectorUnavailable (network error, 5xx: try again later) or CollectorRejected
    (4xx); in both cases the undelivered results stay in the outbox.
    """
    accepted = duplicates = 0
    while pending := outbox.pending(limit=batch_size):
        receipt = await post_batch(client, Batch(agent_version=__version__, measurements=pending))
        outbox.remove([*receipt.accepted, *receipt.duplicates])
        accepted += len(receipt.accepted)
        duplicates += len(receipt.duplicates)
        if not receipt.accepted and not receipt.duplicates:
            raise CollectorRejected(200, "the collector confirmed none of the batch")
    return Delivery(accepted=accepted, duplicates=duplicates, remaining=len(outbox))


async def post_batch(client: httpx.AsyncClient, batch: Batch) -> Receipt:
    try:
        response = await client.post(
            "/api/v1/results",
            content=batch.model_dump_json(),
            headers={"Content-Type": "application/json"},
        )
    except httpx.HTTPError as exc:
        raise CollectorUnavailable(f"cannot reach the collector: {exc!r}") from exc
    if response.status_code >= 500:
        raise CollectorUnavailable(f"collector answered HTTP {response.status_code}")
    if response.status_code >= 400:
        raise CollectorRejected(response.status_code, _detail(response))
    try:
        return Receipt.model_validate_json(response.content)
    except ValueError as exc:
        raise CollectorUnavailable(f"collector sent an unreadable receipt: {exc}") from exc


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text))
    except ValueError:
        return response.text[:200]
