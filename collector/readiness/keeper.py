"""Keeps the readiness board current in the background, so that scrapes only render it.

At 10,000 schools bringing the board up to date costs a second or more of database time
(schools with new tests, schools whose oldest test slid out of the window), which a scrape
cannot afford inside Prometheus's budget. So a task of the collector refreshes the board every
`interval_s`, on a database connection of its own, and a scrape renders the newest snapshot;
`readynet_readiness_computed_timestamp_seconds` says how old it is. Only the very first scrape
after start waits, for the first computation.

Stopping is two steps: cancel `run()`, which returns at once even mid-refresh (a refresh is
abandoned in its worker thread, so a slow or unreachable database cannot hold up shutdown), then
`close()`, which waits for an abandoned refresh to give its connection back and keeps any later
one from starting. Only then may the engine be disposed: a connection checked out across
`Engine.dispose()` comes back into the discarded pool and stays open there until garbage
collection.
"""

from __future__ import annotations

import logging
import math
import threading

import anyio
import anyio.to_thread
from sqlalchemy.orm import Session, sessionmaker

from collector.readiness.board import ReadinessBoard, Snapshot

logger = logging.getLogger(__name__)


class BoardKeeper:
    """Refreshes `board` every `interval_s` seconds until cancelled."""

    def __init__(
        self, board: ReadinessBoard, sessions: sessionmaker[Session], *, interval_s: float
    ) -> None:
        self._board = board
        self._sessions = sessions
        self._interval_s = interval_s
        self._computed = anyio.Event()
        # Held by a refresh for as long as it has a session; `close()` takes it to stop them.
        self._refreshing = threading.Lock()
        self._closed = False

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                await anyio.to_thread.run_sync(self._refresh, abandon_on_cancel=True)
                failures = 0
                self._computed.set()
            except Exception:
                failures += 1
                # Say it once per outage rather than every interval.
                if math.log2(failures).is_integer():
                    logger.exception("refreshing the readiness board failed (%d times)", failures)
            await anyio.sleep(self._interval_s)

    async def snapshot(self) -> Snapshot:
        """The newest snapshot; waits for the first computation after start."""
        await self._computed.wait()
        return self._board.snapshot

    async def close(self, *, timeout_s: float) -> bool:
        """After `run()` is cancelled: wait for a refresh it abandoned, and start no more.

        False if that refresh still holds its connection after `timeout_s`.
        """

        def close() -> bool:
            if not self._refreshing.acquire(timeout=timeout_s):
                return False
            self._closed = True
            self._refreshing.release()
            return True

        return await anyio.to_thread.run_sync(close)

    def _refresh(self) -> None:
        with self._refreshing:
            if self._closed:
                return
            with self._sessions() as session:
                self._board.refresh(session)
