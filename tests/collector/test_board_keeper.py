"""The readiness board is kept current in the background; scrapes only wait for the first one."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session

from collector.readiness.board import ReadinessBoard, Snapshot
from collector.readiness.keeper import BoardKeeper
from collector.readiness.targets import load_profile
from collector.store.db import make_engine, make_session_factory
from collector.store.migrate import upgrade_to_head
from collector.store.queries import create_school


async def test_keeper_computes_at_start_and_keeps_up(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'board.db'}"
    upgrade_to_head(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    with sessions() as session:
        create_school(session=session, name="Lincoln", students=450, staff=50)
    board = ReadinessBoard(load_profile("setda-2012"), days=30)
    keeper = BoardKeeper(board, sessions, interval_s=0.05)
    started = datetime.now(UTC)
    task = asyncio.create_task(keeper.run())
    try:
        # The first snapshot waits for the first computation instead of showing an empty board.
        first = await asyncio.wait_for(keeper.snapshot(), timeout=10)
        assert first.computed_at >= started
        assert [e.readiness.school for e in first.entries.values()] == ["Lincoln"]

        with sessions() as session:
            create_school(session=session, name="Roosevelt", students=300, staff=30)
        added_at = datetime.now(UTC)
        for _ in range(200):
            later = await keeper.snapshot()
            if later.computed_at > added_at:
                break
            await asyncio.sleep(0.02)
        assert sorted(e.readiness.school for e in later.entries.values()) == [
            "Lincoln",
            "Roosevelt",
        ]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert await keeper.close(timeout_s=10)
        engine.dispose()


class HeldBoard(ReadinessBoard):
    """A board whose refresh holds its connection until `release` is set."""

    def __init__(self) -> None:
        super().__init__(load_profile("setda-2012"), days=30)
        self.holding = threading.Event()
        self.release = threading.Event()
        self.refreshes = 0

    def refresh(self, session: Session, now: datetime | None = None) -> Snapshot:
        self.refreshes += 1
        session.connection()  # checked out from the pool, as a real refresh's first query does
        self.holding.set()
        self.release.wait(10)
        return super().refresh(session, now)


async def test_close_waits_for_a_refresh_the_cancel_abandoned(tmp_path: Path) -> None:
    """The engine may be disposed only once the refresh a shutdown abandoned is back.

    A connection checked out across `Engine.dispose()` returns to the discarded pool and stays
    open there; on PostgreSQL psycopg then warned (ResourceWarning) whenever the garbage collector
    found it, in whichever later test that was.
    """
    url = f"sqlite:///{tmp_path / 'board.db'}"
    upgrade_to_head(url)
    engine = make_engine(url)
    board = HeldBoard()
    keeper = BoardKeeper(board, make_session_factory(engine), interval_s=0.05)
    task = asyncio.create_task(keeper.run())
    try:
        assert await asyncio.to_thread(board.holding.wait, 10)
        # Cancelling does not wait for the refresh: a stuck database cannot hold up shutdown.
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=1)
        assert engine.pool.checkedout() == 1  # type: ignore[attr-defined]

        assert not await keeper.close(timeout_s=0.05)
        closing = asyncio.create_task(keeper.close(timeout_s=10))
        await asyncio.sleep(0.1)
        assert not closing.done()
        board.release.set()
        assert await closing
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        assert board.refreshes == 1
    finally:
        board.release.set()
        task.cancel()
        engine.dispose()
