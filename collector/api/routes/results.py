"""POST /api/v1/results: agents deliver batches of measurements here.

The body is read and parsed only after the token has been checked, and parsed exactly once, by
the wire models themselves (pydantic's own JSON parser: strict, depth-limited, no lone
surrogates). The body schema is declared in `openapi_extra`, since FastAPI would otherwise read
the body before running the auth dependency.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from agent.wire import Receipt
from collector.api.deps import AgentDep
from collector.api.errors import AGENT_POSTS, error_responses
from collector.api.group_commit import GroupCommit, Parcel, Post
from collector.api.limits import uncompressed_body
from collector.api.post_rate import PostRate
from collector.api.transfers import too_many

router = APIRouter(prefix="/api/v1", tags=["results"])

BATCH_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Batch"}}},
    }
}


@router.post(
    "/results",
    response_model=Receipt,
    openapi_extra=BATCH_BODY,
    responses=error_responses(400, 401, 408, 413, 415, 422, 429, 503),
)
async def post_results(request: Request, agent: AgentDep) -> Any:
    """Store a batch, answering each id: `accepted` (stored now), `duplicates` (this agent
    stored it before: a retry) or `rejected` with the reason (an id another agent's result has;
    a poll of a device the settings held for this agent do not name). Idempotent.

    With `agent_posts_per_minute` set, an agent posts at most that many a minute (a burst of
    that many, then refilled evenly); beyond it, 429 with `Retry-After`, before the body is read.
    """
    rate: PostRate | None = request.app.state.agent_post_rate
    if rate is not None:
        wait_s = rate.take(agent.id)
        if wait_s > 0:
            raise too_many(AGENT_POSTS, PostRate.retry_after_s(wait_s))
    body = await uncompressed_body(request)
    post = Post(Parcel(agent.id, agent.school_id, body), request.is_disconnected)
    group_commit: GroupCommit = request.app.state.group_commit
    return await group_commit.answer(post)
