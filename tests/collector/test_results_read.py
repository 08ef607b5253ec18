"""Reading results back, on both databases: keyset pages, filters, scope, CSV export."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import httpx

from agent.wire import Batch, InterfaceCounters, LatencyTest, SnmpPoll, ThroughputTest
from collector.store.models import District, School
from collector.store.people import Scope
from tests.fixtures.collector import RunningCollector

START = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)


def _seed(collector: RunningCollector) -> tuple[int, int, int]:
    """Lincoln (district A): 7 on-net and 3 internet tests, 2 latency tests, a poll;
    Adams (district B): 2 on-net tests."""
    lincoln = collector.add_school("Lincoln")
    adams = collector.add_school("Adams")
    with collector.sessions() as session:
        a, b = District(name="A", state="TX"), District(name="B", state="TX")
        session.add_all([a, b])
        session.flush()
        session.get_one(School, lincoln).district_id = a.id
        session.get_one(School, adams).district_id = b.id
        session.commit()
        district_a = a.id
    tests = [
        ThroughputTest(
            path="onnet" if i < 7 else "internet",
            server="x",
            download_bps=100e6 + i,
            upload_bps=50e6,
            # Two tests at the same instant: the id breaks the tie between pages.
            measured_at=START + timedelta(hours=i if i != 3 else 2),
        )
        for i in range(10)
    ]
    latency = [
        LatencyTest(target="127.0.0.1:1", method="http", answered=10, lost=i, measured_at=START)
        for i in range(2)
    ]
    poll = SnmpPoll(
        device="core",
        address="127.0.0.1:161",
        interfaces=[InterfaceCounters(ifindex=1, name="ge-0/0/0", octets_in=1, octets_out=2)],
        measured_at=START,
    )
    for school, batch in (
        (lincoln, Batch(measurements=[*tests, *latency, poll])),
        (
            adams,
            Batch(
                measurements=[
                    ThroughputTest(path="onnet", server="x", download_bps=1e6, measured_at=START)
                    for _ in range(2)
                ]
            ),
        ),
    ):
        token = collector.enroll(school)
        answer = httpx.post(
            f"{collector.url}/api/v1/results",
            content=batch.model_dump_json(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        assert answer.status_code == 200, answer.text
    return lincoln, adams, district_a


def _get(collector: RunningCollector, token: str, url: str, **params: object) -> httpx.Response:
    return httpx.get(
        f"{collector.url}{url}", params=params, headers={"Authorization": f"Bearer {token}"}
    )


def test_pages_filters_and_scope(collector_any_db: RunningCollector) -> None:
    collector = collector_any_db
    lincoln, adams, district_a = _seed(collector)
    admin = collector.user_token("admin")

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, object] = {"kind": "throughput", "limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = _get(collector, admin, "/api/v1/results", **params)
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["rows"]) <= 3
        seen += [row["id"] for row in body["rows"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 12
    times = [
        row["measured_at"]
        for row in _get(collector, admin, "/api/v1/results", kind="throughput").json()["rows"]
    ]
    assert times == sorted(times)

    onnet = _get(
        collector, admin, "/api/v1/results", kind="throughput", school_id=lincoln, path="onnet"
    ).json()["rows"]
    assert len(onnet) == 7 and {r["school"] for r in onnet} == {"Lincoln"}
    assert onnet[0]["download_bps"] == 100e6 and onnet[0]["path"] == "onnet"
    window = _get(
        collector,
        admin,
        "/api/v1/results",
        kind="throughput",
        school_id=lincoln,
        since=(START + timedelta(hours=2)).isoformat(),
        until=(START + timedelta(hours=5)).isoformat(),
    ).json()["rows"]
    # Hours 2 and 2 (two tests at one instant) and 4; 5 is the exclusive end.
    assert len(window) == 3, [(r["measured_at"], r["download_bps"]) for r in window]
    latency = _get(collector, admin, "/api/v1/results", kind="latency").json()["rows"]
    assert sorted(r["lost"] for r in latency) == [0, 1]
    [poll] = _get(collector, admin, "/api/v1/results", kind="snmp_poll").json()["rows"]
    assert poll["device"] == "core" and poll["address"] == "127.0.0.1:161"

    # A viewer of district A sees Lincoln only; Adams is an empty page, as if unknown.
    viewer = collector.user_token("viewer", Scope.district(district_a))
    rows = _get(collector, viewer, "/api/v1/results", kind="throughput").json()["rows"]
    assert {r["school"] for r in rows} == {"Lincoln"}
    assert (
        _get(collector, viewer, "/api/v1/results", kind="throughput", school_id=adams).json()[
            "rows"
        ]
        == []
    )


def test_csv_export(collector: RunningCollector) -> None:
    lincoln, _, _ = _seed(collector)
    admin = collector.user_token("admin")
    answer = _get(collector, admin, "/api/v1/results.csv", kind="throughput", school_id=lincoln)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert len(rows) == 10
    assert rows[0]["school"] == "Lincoln" and float(rows[0]["download_bps"]) == 100e6
    assert rows[0]["error"] == ""


def test_refusals(collector: RunningCollector) -> None:
    admin = collector.user_token("admin")
    agent = collector.enroll(collector.add_school())
    assert _get(collector, admin, "/api/v1/results", kind="nope").status_code == 422
    other = _get(collector, admin, "/api/v1/results", kind="latency", path="onnet")
    assert other.status_code == 200 and other.json()["rows"] == []  # only tests have a path
    bad = _get(collector, admin, "/api/v1/results", kind="latency", cursor="garbage!")
    assert bad.status_code == 422 and "not a cursor" in bad.text
    assert (
        httpx.get(f"{collector.url}/api/v1/results", params={"kind": "snmp_poll"}).status_code
        == 401
    )
    assert _get(collector, agent, "/api/v1/results", kind="snmp_poll").status_code == 401
    assert _get(collector, agent, "/api/v1/results.csv", kind="snmp_poll").status_code == 401
