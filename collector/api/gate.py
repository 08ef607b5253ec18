"""The one way into the database from a request: a bounded, first-come-first-served queue.

Why: the store is synchronous SQLAlchemy (shared with the CLI, migrations and the metrics
collector), so each request's database work runs in a worker thread. Left unbounded, requests
that hold pool connections wait for threads while threads wait for connections, and the
collector stops dead at about 60 concurrent requests. Here at most `workers` units of work run
at once, each taking one pooled connection, and the pool is sized above that, so neither can
starve the other. Everything beyond waits on an anyio `CapacityLimiter` in the event loop, which
costs a few hundred bytes per waiting request and keeps `/healthz` answering.

Example:
    >>> gate = StoreGate(session_factory, workers=8)
    >>> school = await gate.run(lambda session: session.get(School, 1))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import anyio
import anyio.to_thread
from sqlalchemy.orm import Session, sessionmaker

T = TypeVar("T")


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
        self._limiter = anyio.CapacityLimiter(workers)
        self.workers = workers

    async def run(self, fn: Callable[[Session], T]) -> T:
        return await anyio.to_thread.run_sync(self._in_session, fn, limiter=self._limiter)

    def _in_session(self, fn: Callable[[Session], T]) -> T:
        with self._session_factory() as session:
            return fn(session)

    def load(self) -> GateLoad:
        stats = self._limiter.statistics()
        return GateLoad(
            running=stats.borrowed_tokens, waiting=stats.tasks_waiting, workers=self.workers
        )
