"""A scrape costs a fixed number of SQL statements, whatever the number of schools."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from agent.wire import Batch, InterfaceCounters, SnmpPoll, ThroughputTest
from collector.api.gate import GateLoad
from collector.metrics.scrape import ScrapeRequest, render_scrape
from collector.readiness.board import ReadinessBoard
from collector.readiness.targets import load_profile
from collector.store.db import make_engine, make_session_factory, recorded_statements
from collector.store.ingest import add_batch
from collector.store.latest import Scope
from collector.store.migrate import upgrade_to_head
from collector.store.models import District, School
from collector.store.queries import create_school, enroll_agent
from tests.fixtures.collector import throwaway_postgres

IDLE = GateLoad(running=0, waiting=0, workers=8)


def _fleet(engine: Engine, schools: int) -> int:
    """`schools` schools of one district, each with 12 tests and two polled devices."""
    sessions = make_session_factory(engine)
    with sessions() as session:
        district = District(name="D")
        session.add(district)
        session.commit()
        for n in range(schools):
            school = create_school(session=session, name=f"School {n}", students=400, staff=40)
            school.district_id = district.id
            agent, _ = enroll_agent(session=session, school_id=school.id, name=f"pi-{n}")
            polls = [
                SnmpPoll(
                    device=device,
                    address="127.0.0.1:161",
                    sys_uptime_ticks=100,
                    interfaces=[
                        InterfaceCounters(ifindex=i, name=f"if{i}", octets_in=i) for i in range(20)
                    ],
                )
                for device in ("core", "ap")
            ]
            tests = [ThroughputTest(path="onnet", server="x", download_bps=1e8) for _ in range(12)]
            batch = Batch(measurements=[*tests, *polls])
            add_batch(session=session, agent_id=agent.id, school_id=school.id, batch=batch)
        return district.id


def _scrape_statements(database_url: str, schools: int) -> tuple[int, int, int]:
    upgrade_to_head(database_url)
    engine = make_engine(database_url)
    try:
        district_id = _fleet(engine, schools)
        sessions = make_session_factory(engine)
        board = ReadinessBoard(load_profile("setda-2012"), days=30)
        default = ScrapeRequest(detail=False, scope=Scope(), interfaces=True, interface_budget=60)
        detail = ScrapeRequest(
            detail=True,
            scope=Scope(everything=False, district_id=district_id),
            interfaces=True,
            interface_budget=60,
        )
        counts = []
        for request in (default, default, detail):  # first and later refreshes, then detail
            with sessions() as session, recorded_statements(engine) as statements:
                snapshot = board.refresh(session)
                body = render_scrape(session=session, request=request, board=snapshot, gate=IDLE)
            assert body.count(b"School ") >= schools
            counts.append(len(statements))
        with sessions() as session:
            assert session.query(School).count() == schools
        return counts[0], counts[1], counts[2]
    finally:
        engine.dispose()


def test_statements_per_scrape_do_not_grow_with_schools(database_url: str, tmp_path: Path) -> None:
    small = _scrape_statements(database_url, 3)
    if database_url.startswith("sqlite"):
        large = _scrape_statements(f"sqlite:///{tmp_path / 'large.db'}", 30)
    else:
        with throwaway_postgres() as other:
            large = _scrape_statements(other, 30)
    assert large == small
