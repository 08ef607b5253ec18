"""Test slots, kept in the database: schools behind one shared exit run their throughput tests
one at a time, whichever collector replica or worker each agent reaches.

Two schools behind one district hub that test at the same moment each measure half the hub's
exit. An agent asks for a slot before its test; one row per *exit key* (the school's
`shared_exit`, or the school itself when it has none, so two agents of one school take turns
too) holds the slot; the primary key refuses a second holder, on every backend and across
processes, and the refused agent is told the seconds until the holder's slot ends. A slot ends
when its holder releases it or its time is up, whichever comes first, so an agent that dies
mid-test blocks its neighbours for at most the seconds it asked for. Expired rows are replaced
when the key is asked for again and swept with the others.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from collector.store.models import ExitSlot

# A fresh slot id colliding with a live one, or the holder's row vanishing between the refused
# insert and the look at it (it expired): try again, a few times at most.
_ATTEMPTS = 3


@dataclass(frozen=True)
class Grant:
    """A slot: its id (a secret of its holder), whose it is, and how long it lasts."""

    id: str
    key: str
    agent_id: int
    seconds: int


@dataclass(frozen=True)
class Held:
    """Another test holds the exit; it ends within `retry_after_s` seconds."""

    retry_after_s: int


def exit_key(*, school_id: int, shared_exit: str | None) -> str:
    """What tests take turns on: the shared exit's name, else the school."""
    return f"exit:{shared_exit}" if shared_exit else f"school:{school_id}"


def take_slot(
    *, session: Session, key: str, agent_id: int, seconds: int, now: datetime
) -> Grant | Held:
    for _ in range(_ATTEMPTS):
        # Expired slots go first: of this key (so it can be taken), and of any other.
        session.execute(delete(ExitSlot).where(ExitSlot.ends_at <= now))
        grant = Grant(id=secrets.token_hex(16), key=key, agent_id=agent_id, seconds=seconds)
        session.add(
            ExitSlot(
                exit_key=key,
                slot_id=grant.id,
                agent_id=agent_id,
                ends_at=now + timedelta(seconds=seconds),
            )
        )
        try:
            session.commit()
            return grant
        except IntegrityError:
            session.rollback()
        holder = session.get(ExitSlot, key)
        if holder is not None:
            left = (holder.ends_at - now).total_seconds()
            return Held(retry_after_s=max(1, math.ceil(left)))
    raise RuntimeError(f"could not take or find the slot of {key} after {_ATTEMPTS} tries")


def give_back(*, session: Session, slot_id: str, agent_id: int, now: datetime) -> bool:
    """End a slot early; False if there is no such live slot of this agent."""
    gone = session.execute(
        delete(ExitSlot).where(
            ExitSlot.slot_id == slot_id, ExitSlot.agent_id == agent_id, ExitSlot.ends_at > now
        )
    )
    session.commit()
    return bool(gone.rowcount)  # type: ignore[attr-defined]


def live_slots(*, session: Session, now: datetime) -> int:
    count = select(func.count()).select_from(ExitSlot).where(ExitSlot.ends_at > now)
    return session.scalar(count) or 0
