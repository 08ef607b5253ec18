"""FastAPI dependencies: a database session per request, and the calling agent."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from collector.api.errors import BAD_TOKEN
from collector.store.models import Agent
from collector.store.queries import agent_for_token

_bearer = HTTPBearer(auto_error=False)


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.session_factory() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_agent(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Agent:
    agent = (
        None
        if credentials is None
        else agent_for_token(session=session, token=credentials.credentials)
    )
    if agent is None:
        raise HTTPException(401, BAD_TOKEN, headers={"WWW-Authenticate": "Bearer"})
    return agent


AgentDep = Annotated[Agent, Depends(get_agent)]
