"""The readiness board is kept current in the background; scrapes only wait for the first one."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from collector.readiness.board import ReadinessBoard
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
        engine.dispose()
