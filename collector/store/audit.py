"""The audit log: every write to the inventory, people and agents, with who, when and what.

`record` adds an entry in the caller's session, so it commits (or rolls back) with the change it
describes. `details` holds the old and new values as JSON; never a secret (tokens, passwords,
codes): callers pass what is safe to show.

Example:
    >>> record(session, actor=principal.actor, action="update", object_type="school",
    ...        object_id=12, details={"students": [450, 480]})
    >>> session.commit()
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from collector.store.models import AuditEntry


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    object_type: str,
    object_id: int | str | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    session.add(
        AuditEntry(
            actor=actor[:300],
            action=action[:32],
            object_type=object_type[:32],
            object_id=None if object_id is None else str(object_id)[:64],
            details=json.dumps(dict(details or {}), sort_keys=True, default=str),
        )
    )


def cli_actor() -> str:
    """How the audit log names someone at the collector's command line."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def entries(
    *,
    session: Session,
    since: datetime | None = None,
    object_type: str | None = None,
    limit: int = 100,
) -> Sequence[AuditEntry]:
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if object_type is not None:
        query = query.where(AuditEntry.object_type == object_type)
    return session.scalars(query).all()
