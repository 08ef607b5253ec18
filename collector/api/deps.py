"""FastAPI dependencies: the store gate, and the calling agent.

Every dependency here is async and touches the database only through the gate, so no request
ever holds a pooled connection while it waits for a thread. Routes that take a body read it
themselves after these have run: the token is checked before a byte of the body is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from collector.api.errors import BAD_TOKEN
from collector.api.gate import StoreGate
from collector.store.queries import agent_for_token

_bearer = HTTPBearer(auto_error=False, description="The agent token from `agent enroll`.")
# Longer than any token we issue; anything longer is refused without a database lookup.
MAX_TOKEN_CHARS = 200


@dataclass(frozen=True)
class CallingAgent:
    """Who is calling: plain values, safe to pass between threads (no ORM session attached)."""

    id: int
    name: str
    school_id: int


def get_gate(request: Request) -> StoreGate:
    gate: StoreGate = request.app.state.gate
    return gate


GateDep = Annotated[StoreGate, Depends(get_gate)]


async def get_agent(
    gate: GateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> CallingAgent:
    token = None if credentials is None else credentials.credentials
    agent = None
    if token and len(token) <= MAX_TOKEN_CHARS:

        def lookup(session: Session) -> CallingAgent | None:
            found = agent_for_token(session=session, token=token)
            return None if found is None else CallingAgent(found.id, found.name, found.school_id)

        agent = await gate.run(lookup)
    if agent is None:
        raise HTTPException(401, BAD_TOKEN, headers={"WWW-Authenticate": "Bearer"})
    return agent


AgentDep = Annotated[CallingAgent, Depends(get_agent)]
