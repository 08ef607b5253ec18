"""POST /api/v1/results: agents deliver batches of measurements here."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from agent.wire import Batch, Receipt
from collector.api.deps import AgentDep, SessionDep
from collector.api.errors import DUPLICATE_ID_IN_BATCH
from collector.store.queries import add_batch

router = APIRouter(prefix="/api/v1", tags=["results"])


@router.post("/results", response_model=Receipt)
def post_results(batch: Batch, agent: AgentDep, session: SessionDep) -> Receipt:
    """Store a batch. Idempotent: ids already stored are listed under `duplicates`."""
    try:
        return add_batch(session=session, agent=agent, batch=batch)
    except ValueError as exc:
        raise HTTPException(422, DUPLICATE_ID_IN_BATCH) from exc
