"""POST /api/v1/results: agents deliver batches of measurements here."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request

from agent.wire import Batch, Receipt
from collector.api.deps import AgentDep, SessionDep
from collector.api.errors import BODY_TOO_LARGE, DUPLICATE_ID_IN_BATCH
from collector.store.queries import add_batch

router = APIRouter(prefix="/api/v1", tags=["results"])


def refuse_large_body(request: Request) -> None:
    """Refuse oversized posts before the body is read (judged from Content-Length)."""
    length = request.headers.get("content-length")
    limit: int = request.app.state.settings.max_batch_bytes
    if length is not None and length.isdigit() and int(length) > limit:
        raise HTTPException(413, BODY_TOO_LARGE)


@router.post("/results", response_model=Receipt, dependencies=[Depends(refuse_large_body)])
def post_results(batch: Batch, agent: AgentDep, session: SessionDep) -> Receipt:
    """Store a batch. Idempotent: ids already stored are listed under `duplicates`."""
    try:
        return add_batch(session=session, agent=agent, batch=batch)
    except ValueError as exc:
        raise HTTPException(422, DUPLICATE_ID_IN_BATCH) from exc
