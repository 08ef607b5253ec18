"""The one way into the database from a request: a bounded, first-come-first-served queue.

Why: the store is synchronous SQLAlchemy (shared with the CLI, migrations and the metrics
scrape), so each request's database work runs in a worker thread. Left unbounded, requests that
hold pool connections wait for threads while threads wait for connections, and the collector
stopped dead at about 60 concurrent requests. Here at most `workers` units of work run at once,
each taking one pooled connection, and the pool is sized above that, so neither can starve the
other. Everything beyond waits in arrival order on an anyio `CapacityLimiter` in the event loop,
which costs a few hundred bytes per waiting request and keeps `/healthz` answering.

A request does all of its database work, parsing included, in one turn, so that under a burst
the first requests to arrive finish first instead of all of them advancing a step at a time.
A request whose client has gone by its turn is skipped.

Example:
    >>> gate = StoreGate(session_factory, workers=8)
    >>> school = await gate.run(lambda session: session.get(School, 1))
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import anyio
import anyio.to_thread
from sqlalchemy.orm import Session, sessionmaker

T = TypeVar("T")


class ClientGone(Exception):
    """The client disconnected while its request waited for the store: the work was skipped."""


@dataclass(frozen=True)
class GateLoad:
    """What the gate is doing right now, for /metrics."""

    running: int
    waiting: int
    workers: int


class StoreGate:
    """Runs `fn(session)` in a worker thread, at most `workers` at a time, in arrival order."""

    def __init__(self, session_factory: sessionmaker[Session], *, workers: int) -> None:
        self._session_factory = session_factory
        self._turns = anyio.CapacityLimiter(workers)
        # The threads a turn runs on; never the bound itself (that is `_turns`).
        self._threads = anyio.CapacityLimiter(workers)
        self.workers = workers

    async def run(
        self,
        fn: Callable[[Session], T],
        *,
        gone: Callable[[], Awaitable[bool]] | None = None,
    ) -> T:
        """Run `fn` on its turn; raises ClientGone instead if `gone()` is true by then."""
        async with self._turns:
            if gone is not None and await gone():
                raise ClientGone
            return await self.in_thread(fn)

    async def run_turn(self, work: Callable[[], Awaitable[T]]) -> T:
        """Hold one turn while `work` runs; `work` calls `in_thread` for its database work."""
        async with self._turns:
            return await work()

    async def in_thread(self, fn: Callable[[Session], T]) -> T:
        """Run `fn(session)` in a worker thread. Only for callers holding a turn."""
        return await anyio.to_thread.run_sync(self._in_session, fn, limiter=self._threads)

    def _in_session(self, fn: Callable[[Session], T]) -> T:
        with self._session_factory() as session:
            return fn(session)

    def load(self) -> GateLoad:
        stats = self._turns.statistics()
        return GateLoad(
            running=stats.borrowed_tokens, waiting=stats.tasks_waiting, workers=self.workers
        )
