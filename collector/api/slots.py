"""Test slots: schools behind one shared exit run their throughput tests one at a time.

Two schools behind one district hub that test at the same moment each measure half the hub's
exit. An agent asks for a slot before its test; the board grants one slot at a time per *exit
key* (the school's `shared_exit`, or the school itself when it has none, so two agents of one
school take turns too) and refuses the others with the seconds until the holder's slot ends.
A slot ends when its holder releases it or its time is up, whichever comes first, so an agent
that dies mid-test blocks its neighbours for at most the seconds it asked for.

The board lives in memory, in this collector process: a restart forgets every slot (agents
holding one just finish their test; at worst two tests overlap once), and several collector
processes behind one load balancer would each keep their own board. It holds one entry per
exit key at most, and expired entries are swept whenever a slot is asked for.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Grant:
    """A slot: its id (a secret of its holder), whose it is, and when it ends."""

    id: str
    key: str
    agent_id: int
    seconds: int
    ends_at: float  # on the board's monotonic clock


@dataclass(frozen=True)
class Held:
    """Another test holds the exit; it ends within `retry_after_s` seconds."""

    retry_after_s: int


def exit_key(*, school_id: int, shared_exit: str | None) -> str:
    """What tests take turns on: the shared exit's name, else the school."""
    return f"exit:{shared_exit}" if shared_exit else f"school:{school_id}"


class SlotBoard:
    """One slot at a time per exit key. Async-safe as used: every call runs on the event loop."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._by_key: dict[str, Grant] = {}
        self._by_id: dict[str, Grant] = {}

    def take(self, *, key: str, agent_id: int, seconds: int) -> Grant | Held:
        now = self._clock()
        self._sweep(now)
        holder = self._by_key.get(key)
        if holder is not None:
            return Held(retry_after_s=max(1, math.ceil(holder.ends_at - now)))
        grant = Grant(
            id=secrets.token_hex(16),
            key=key,
            agent_id=agent_id,
            seconds=seconds,
            ends_at=now + seconds,
        )
        self._by_key[key] = self._by_id[grant.id] = grant
        return grant

    def give_back(self, *, slot_id: str, agent_id: int) -> bool:
        """End a slot early; False if there is no such live slot of this agent."""
        grant = self._by_id.get(slot_id)
        if grant is None or grant.agent_id != agent_id or grant.ends_at <= self._clock():
            return False
        self._drop(grant)
        return True

    def __len__(self) -> int:
        return len(self._by_id)

    def _sweep(self, now: float) -> None:
        for grant in [g for g in self._by_id.values() if g.ends_at <= now]:
            self._drop(grant)

    def _drop(self, grant: Grant) -> None:
        del self._by_id[grant.id]
        del self._by_key[grant.key]
