"""Agent tokens, checked without a database round trip for agents seen in the last minute.

Under a burst, a thousand requests each looking their token up in the database would queue a
thousand lookups ahead of any real work. Known tokens are answered from memory for `ttl_s` (so a
token revoked from the command line stops working within that time);
unknown ones are remembered briefly too, so a flood of bad tokens costs one lookup per token and
few seconds, not one per request. Only SHA-256 digests are kept, never tokens.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

KNOWN_TTL_S = 60.0
UNKNOWN_TTL_S = 5.0
MAX_ENTRIES = 100_000


@dataclass(frozen=True)
class CallingAgent:
    """Who is calling: plain values, safe to pass between threads (no ORM session attached)."""

    id: int
    name: str
    school_id: int
    # A revoked agent is remembered as such, to be told so (401) rather than "unknown token".
    revoked: bool = False


class TokenCache:
    """A bounded, expiring map from token digest to agent (or None for "no such agent")."""

    def __init__(self, *, ttl_s: float = KNOWN_TTL_S, max_entries: int = MAX_ENTRIES) -> None:
        self._ttl_s = ttl_s
        self._entries: OrderedDict[str, tuple[float, CallingAgent | None]] = OrderedDict()
        self._max_entries = max_entries
        self._in_flight: dict[str, asyncio.Future[CallingAgent | None]] = {}

    async def single_flight(
        self, digest: str, lookup: Callable[[], Awaitable[CallingAgent | None]]
    ) -> CallingAgent | None:
        """Run `lookup` once for concurrent callers asking about the same digest; cache it.

        The lookup runs as its own task, so a caller that goes away does not cancel it for the
        others waiting on it.
        """
        task = self._in_flight.get(digest)
        if task is None:
            task = asyncio.ensure_future(lookup())
            self._in_flight[digest] = task
            task.add_done_callback(lambda done: self._settled(digest, done))
        return await asyncio.shield(task)

    def _settled(self, digest: str, task: asyncio.Future[CallingAgent | None]) -> None:
        del self._in_flight[digest]
        if not task.cancelled() and task.exception() is None:
            self.put(digest, task.result())

    def get(self, digest: str) -> tuple[bool, CallingAgent | None]:
        """(found, agent): `found` is False when the database must be asked."""
        entry = self._entries.get(digest)
        if entry is None or entry[0] < time.monotonic():
            self._entries.pop(digest, None)
            return False, None
        return True, entry[1]

    def put(self, digest: str, agent: CallingAgent | None) -> None:
        ttl = self._ttl_s if agent is not None else min(self._ttl_s, UNKNOWN_TTL_S)
        self._entries[digest] = (time.monotonic() + ttl, agent)
        self._entries.move_to_end(digest)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def forget_agent(self, agent_id: int) -> None:
        """Drop every entry of one agent, e.g. after its token was revoked or rotated."""
        for digest in [d for d, (_, a) in self._entries.items() if a and a.id == agent_id]:
            del self._entries[digest]
