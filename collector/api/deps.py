"""FastAPI dependencies: the store gate, and the calling agent.

Every dependency here is async and touches the database only through the gate, so no request
ever holds a pooled connection while it waits for a thread. Routes that take a body read it
themselves after these have run: the token is checked before a byte of the body is read.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from collector.api.errors import AGENT_REVOKED, BAD_TOKEN
from collector.api.gate import StoreGate
from collector.api.tokens import CallingAgent as CallingAgent  # re-exported for routes
from collector.api.tokens import TokenCache
from collector.store.agents import agent_for_token
from collector.store.queries import hash_token

_bearer = HTTPBearer(
    auto_error=False,
    description="The agent token (`readynet-agent enroll` exchanges a code for it).",
)
# Longer than any token we issue; anything longer is refused without a database lookup.
MAX_TOKEN_CHARS = 200


async def get_gate(request: Request) -> StoreGate:
    # Async on purpose: FastAPI runs a plain `def` dependency in a worker thread, a thread hop
    # per request that under a burst of a thousand posts starved the event loop.
    gate: StoreGate = request.app.state.gate
    return gate


GateDep = Annotated[StoreGate, Depends(get_gate)]


async def get_agent(
    request: Request,
    gate: GateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> CallingAgent:
    token = None if credentials is None else credentials.credentials
    agent = None
    if token and len(token) <= MAX_TOKEN_CHARS:
        agent = await _agent_for(token, gate, request.app.state.tokens)
    if agent is None:
        raise HTTPException(401, BAD_TOKEN, headers={"WWW-Authenticate": "Bearer"})
    if agent.revoked:
        raise HTTPException(
            401, AGENT_REVOKED, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
        )
    return agent


AgentDep = Annotated[CallingAgent, Depends(get_agent)]


async def _agent_for(token: str, gate: StoreGate, cache: TokenCache) -> CallingAgent | None:
    digest = hash_token(token)
    found, agent = cache.get(digest)
    if found:
        return agent

    def lookup(session: Session) -> CallingAgent | None:
        row = agent_for_token(session=session, token=token)
        if row is None:
            return None
        return CallingAgent(row.id, row.name, row.school_id, revoked=row.revoked_at is not None)

    # A burst from one agent (or a thousand requests on a cold start) asks the database once.
    return await cache.single_flight(digest, lambda: gate.run(lookup))
