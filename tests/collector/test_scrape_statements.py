"""A scrape costs a fixed number of SQL statements, whatever the number of schools."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from agent.wire import Batch, InterfaceCounters, LatencyTest, SnmpPoll, ThroughputTest
from collector.api.gate import GateLoad
from collector.metrics.scrape import ScrapeRenderer, ScrapeRequest
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
# Series per school of some families of each scrape, with the fleet below.
_DEFAULT = {
    "readynet_school_window_tests": 1,
    "readynet_school_window_agent_limited_tests": 1,
    "readynet_school_download_p90_bits_per_second": 1,
}
_DETAIL = {
    "readynet_throughput_download_bits_per_second": 2,
    "readynet_throughput_agent_limited": 2,
    "readynet_classroom_download_bits_per_second": 2,
    "readynet_latency_loss_ratio": 1,
    "readynet_agent_budget_bytes": 1,
    "readynet_interface_received_bytes_total": 40,
}


def _fleet(engine: Engine, schools: int) -> int:
    """`schools` schools of one district, each with 12 on-net and 2 internet tests, a latency
    test, two polled devices and a classroom test in each of two rooms."""
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
            tests = [
                ThroughputTest(
                    path=path,
                    server="x",
                    download_bps=1e8,
                    loaded_latency_ms=80.0,
                    latency_ms=5.0,
                    agent_limited=True,
                    budget_bytes=10**10,
                    budget_used_bytes=10**8,
                )
                for path in ["onnet"] * 12 + ["internet"] * 2
            ]
            latency = LatencyTest(target="127.0.0.1:443", method="tcp_connect", answered=9, lost=1)
            batch = Batch(measurements=[*tests, latency, *polls])
            add_batch(session=session, agent_id=agent.id, school_id=school.id, batch=batch)
            rooms = [
                ThroughputTest(path="classroom", server="x", room=room, download_bps=5e7)
                for room in ("Room 1", "Room 2")
            ]
            add_batch(
                session=session, agent_id=None, school_id=school.id, batch=Batch(measurements=rooms)
            )
        return district.id


def _report(engine: Engine, school_name: str) -> None:
    """One school's agent reports a faster on-net test."""
    with make_session_factory(engine)() as session:
        school = session.query(School).filter_by(name=school_name).one()
        test = ThroughputTest(path="onnet", server="x", download_bps=7.5e8)
        batch = Batch(measurements=[test])
        add_batch(session=session, agent_id=school.agents[0].id, school_id=school.id, batch=batch)


def _scrape_statements(database_url: str, schools: int) -> list[int]:
    """Statements of: a cold and a warm default scrape, then a cold district scrape, a warm
    one after a school reported, and another."""
    upgrade_to_head(database_url)
    engine = make_engine(database_url)
    try:
        district_id = _fleet(engine, schools)
        sessions = make_session_factory(engine)
        board = ReadinessBoard(load_profile("setda-2012"), days=30)
        renderer = ScrapeRenderer()
        default = ScrapeRequest(detail=False, scope=Scope(), interfaces=True, interface_budget=60)
        detail = ScrapeRequest(
            detail=True,
            scope=Scope(everything=False, district_id=district_id),
            interfaces=True,
            interface_budget=60,
        )
        counts = []
        for n, request in enumerate((default, default, detail, detail, detail)):
            if n == 3:
                _report(engine, "School 1")
            with sessions() as session, recorded_statements(engine) as statements:
                snapshot = board.refresh(session)
                body = renderer.render(session=session, request=request, board=snapshot, gate=IDLE)
            assert body.count(b"School ") >= schools
            for family, per_school in (_DETAIL if request.detail else _DEFAULT).items():
                assert body.count(family.encode() + b"{") == per_school * schools, family
            counts.append(len(statements))
            if n == 3:  # the reporting school's newest test, re-read
                newest = (
                    b'readynet_throughput_download_bits_per_second{school="School 1",path="onnet"}'
                )
                assert newest + b" 750000000.0\n" in body
        with sessions() as session:
            assert session.query(School).count() == schools
        return counts
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
    cold_detail, reread_detail, again_detail = small[2:]
    # A warm district scrape also asks which schools had news, and re-reads the newest tests of
    # those only (the reporting school, again within the commit margin's look-back).
    assert reread_detail == again_detail == cold_detail + 1
