"""Who may read and change what: the people's side of the API (agents have `deps.AgentDep`).

Every read endpoint takes `ViewerDep` (a user's API token, `Authorization: Bearer rnu_...`),
every inventory write `AdminDep`. A user sees only the schools of their scope
(`collector.store.people.visible_schools`); an agent's token is not a user's and reads nothing.
`/healthz` alone stays open; `/metrics` takes a viewer token (Prometheus `authorization` in
`scrape_configs`).

Example:
    @router.get("/schools")
    async def get_schools(viewer: ViewerDep, gate: GateDep) -> list[SchoolPublic]: ...
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from collector.api.deps import MAX_TOKEN_CHARS, GateDep
from collector.store.people import Principal, principal_for_token

# Fixed texts clients branch on (collector/api/errors.py has the rest).
NOT_SIGNED_IN = "a user's API token is needed (readynet-collector token create)"
NOT_ALLOWED = "this user's role or scope does not allow it"

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="UserToken",
    description="A user's API token from `readynet-collector token create` (rnu_...).",
)


async def get_principal(
    gate: GateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    token = None if credentials is None else credentials.credentials
    principal = None
    if token and len(token) <= MAX_TOKEN_CHARS:

        def lookup(session: Session) -> Principal | None:
            return principal_for_token(session=session, token=token)

        principal = await gate.run(lookup)
    if principal is None:
        raise HTTPException(401, NOT_SIGNED_IN, headers={"WWW-Authenticate": "Bearer"})
    return principal


ViewerDep = Annotated[Principal, Depends(get_principal)]


async def get_admin(principal: ViewerDep) -> Principal:
    if not principal.is_admin:
        raise HTTPException(403, NOT_ALLOWED)
    return principal


AdminDep = Annotated[Principal, Depends(get_admin)]
