"""GET /metrics and its service discovery: what Prometheus sees, on both databases.

Each case here was a way the metrics lied: duplicate series for two interfaces sharing an
ifName, a future-dated poll pinning stale counters, a dead device showing its last good values,
an enrolled agent with no series, and readiness that remembered every test ever stored.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from agent.control import Heartbeat, OutboxFigures
from agent.wire import (
    AccessPoint,
    Batch,
    InterfaceCounters,
    LatencyTest,
    Measurement,
    SnmpPoll,
    Ssid,
    ThroughputTest,
)
from collector.metrics.detail import render_test_detail
from collector.metrics.exposition import Exposition
from collector.metrics.newest_cache import SchoolNewest, ScopeNewest
from collector.store.classroom import issue_classroom_code
from collector.store.latest import _busiest
from collector.store.models import District, School
from collector.store.newest import AgentBudget, NewestTest
from tests.fixtures.collector import RunningCollector, run_collector
from tests.fixtures.metrics import fresh_samples


def _labels(**labels: str) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


def _post(collector: RunningCollector, token: str, *measurements: Measurement) -> None:
    response = httpx.post(
        f"{collector.url}/api/v1/results",
        content=Batch(measurements=list(measurements)).model_dump_json(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text


def _poll(octets_in: int, *, at: datetime | None = None, **changes: object) -> SnmpPoll:
    interface = InterfaceCounters(
        ifindex=1, name="Gi0/1", octets_in=octets_in, octets_out=9000, speed_mbps=1000
    )
    return SnmpPoll(
        device="core",
        address="127.0.0.1:161",
        sys_uptime_ticks=7000,
        interfaces=[interface],
        measured_at=at or datetime.now(UTC),
        **changes,  # type: ignore[arg-type]
    )


def test_metrics_follow_the_database(collector_any_db: RunningCollector) -> None:
    collector = collector_any_db
    school_id = collector.add_school("Lincoln", students=900, staff=100)
    token = collector.enroll(school_id, name="pi-lincoln")
    assert fresh_samples(collector)[("readynet_agents", frozenset())] == 1

    tests = [
        ThroughputTest(path="onnet", server="x", download_bps=mbps * 1e6)
        for mbps in range(100, 112)
    ]
    _post(collector, token, *tests, _poll(10), _poll(5000))
    samples = fresh_samples(collector)
    school = {"school": "Lincoln"}
    assert samples[("readynet_school_users", _labels(**school))] == 1000
    assert samples[("readynet_school_window_tests", _labels(**school))] == 12
    assert samples[("readynet_school_download_median_bits_per_second", _labels(**school))] == (
        105.5e6
    )
    info = _labels(school="Lincoln", school_id=str(school_id), district="")
    assert samples[("readynet_school_info", info)] == 1
    target = {"school": "Lincoln", "profile": "setda-2012", "target": "internet-2014-15"}
    assert samples[("readynet_school_required_bits_per_second", _labels(**target))] == 100e6
    assert samples[("readynet_school_readiness", _labels(**target, verdict="meets"))] == 1
    assert samples[("readynet_school_readiness", _labels(**target, verdict="below"))] == 0
    target_2017 = {**target, "target": "internet-2017-18"}
    assert samples[("readynet_school_readiness", _labels(**target_2017, verdict="below"))] == 1
    iface = {"school": "Lincoln", "device": "core", "ifindex": "1", "ifname": "Gi0/1"}
    assert samples[("readynet_interface_received_bytes_total", _labels(**iface))] == 5000
    assert samples[("readynet_interface_transmitted_bytes_total", _labels(**iface))] == 9000
    assert samples[("readynet_interface_speed_bits_per_second", _labels(**iface))] == 1e9
    device = _labels(school="Lincoln", device="core")
    assert samples[("readynet_device_up", device)] == 1
    boot = samples[("readynet_device_boot_time_seconds", device)]
    assert abs(boot - (datetime.now(UTC).timestamp() - 70)) < 30
    seen = samples[
        ("readynet_agent_last_seen_timestamp_seconds", _labels(agent="pi-lincoln", **school))
    ]
    assert seen > 1.7e9
    assert samples[("readynet_readiness_window_seconds", frozenset())] == 30 * 86400
    assert any(name == "readynet_build_info" for name, _ in samples)


def test_a_device_whose_polls_fail_is_down_and_keeps_no_fresh_values(
    collector_any_db: RunningCollector,
) -> None:
    collector = collector_any_db
    token = collector.enroll(collector.add_school("Lincoln"))
    _post(collector, token, _poll(5000))
    before = fresh_samples(collector)
    device = _labels(school="Lincoln", device="core")
    assert before[("readynet_device_up", device)] == 1
    _post(collector, token, SnmpPoll(device="core", address="127.0.0.1:161", error="timeout"))
    after = fresh_samples(collector)
    assert after[("readynet_device_up", device)] == 0
    last_poll = ("readynet_device_last_poll_timestamp_seconds", device)
    assert after[last_poll] > before[last_poll]


def test_interfaces_sharing_an_ifname_are_separate_series(collector: RunningCollector) -> None:
    """A HiveOS AP reports `wifi1.1` at ifIndex 20 and 21."""
    token = collector.enroll(collector.add_school("Lincoln"))
    poll = SnmpPoll(
        device="ap",
        address="127.0.0.1:161",
        interfaces=[
            InterfaceCounters(ifindex=20, name="wifi1.1", octets_in=111),
            InterfaceCounters(ifindex=21, name="wifi1.1", octets_in=222),
        ],
    )
    _post(collector, token, poll)
    samples = fresh_samples(collector)
    values = {
        dict(labels)["ifindex"]: value
        for (name, labels), value in samples.items()
        if name == "readynet_interface_received_bytes_total"
    }
    assert values == {"20": 111, "21": 222}


def test_wifi_totals_profiles_roles_and_link_status(collector_any_db: RunningCollector) -> None:
    collector = collector_any_db
    token = collector.enroll(collector.add_school("Lincoln"))
    controller = SnmpPoll(
        device="wlc",
        address="127.0.0.1:161",
        profile="cisco_wlc",
        clients=23,
        aps_up=4,
        aps_total=5,
        aps=[AccessPoint(key="00:11:22:33:44:55", name="ap1", clients=23, up=True)],
        ssids=[Ssid(name="students", clients=23)],
    )
    router = SnmpPoll(
        device="core",
        address="127.0.0.1:161",
        profile="cisco_ios",
        interfaces=[
            InterfaceCounters(ifindex=1, name="Gi0/1", octets_in=5, oper_status=1, role="internet"),
            InterfaceCounters(ifindex=2, name="Gi0/2", octets_in=1, oper_status=2),
        ],
    )
    _post(collector, token, controller, router)
    samples = fresh_samples(collector)
    wlc = _labels(school="Lincoln", device="wlc")
    assert samples[("readynet_wifi_clients", wlc)] == 23
    assert samples[("readynet_wifi_access_points_up", wlc)] == 4
    assert samples[("readynet_wifi_access_points", wlc)] == 5
    info = _labels(school="Lincoln", device="wlc", profile="cisco_wlc")
    assert samples[("readynet_device_profile_info", info)] == 1
    assert ("readynet_wifi_clients", _labels(school="Lincoln", device="core")) not in samples
    up = {"school": "Lincoln", "device": "core", "ifindex": "1", "ifname": "Gi0/1"}
    down = {**up, "ifindex": "2", "ifname": "Gi0/2"}
    assert samples[("readynet_interface_oper_up", _labels(**up))] == 1
    assert samples[("readynet_interface_oper_up", _labels(**down))] == 0
    assert samples[("readynet_interface_role_info", _labels(**up, role="internet"))] == 1
    roles = [labels for name, labels in samples if name == "readynet_interface_role_info"]
    assert len(roles) == 1


def test_a_clock_running_ahead_cannot_pin_the_newest_poll(
    collector_any_db: RunningCollector,
) -> None:
    """Before: the poll with the latest measured_at won, so one fast clock froze the counters."""
    collector = collector_any_db
    token = collector.enroll(collector.add_school("Lincoln"))
    ahead = datetime.now(UTC) + timedelta(minutes=9)
    _post(collector, token, _poll(100, at=ahead))
    _post(collector, token, _poll(200))
    iface = _labels(school="Lincoln", device="core", ifindex="1", ifname="Gi0/1")
    assert fresh_samples(collector)[("readynet_interface_received_bytes_total", iface)] == 200


def test_every_enrolled_agent_has_series_from_enrolment_on(collector: RunningCollector) -> None:
    collector.enroll(collector.add_school("Lincoln"), name="pi-new")
    samples = fresh_samples(collector)
    agent = _labels(agent="pi-new", school="Lincoln")
    assert samples[("readynet_agent_last_seen_timestamp_seconds", agent)] == 0
    assert samples[("readynet_agent_enrolled_timestamp_seconds", agent)] > 1.7e9
    assert samples[("readynet_agent_last_heartbeat_timestamp_seconds", agent)] == 0
    assert samples[("readynet_agent_revoked", agent)] == 0
    assert ("readynet_agent_outbox_pending", agent) not in samples


def test_heartbeats_become_agent_series(collector: RunningCollector) -> None:
    token = collector.enroll(collector.add_school("Lincoln"), name="pi-1")
    beat = Heartbeat(
        agent_version="0.1.0",
        started_at=datetime.now(UTC) - timedelta(hours=2),
        sent_at=datetime.now(UTC) - timedelta(seconds=90),
        outbox=OutboxFigures(pending=42, dead_letters=3, lost=7),
    )
    answer = httpx.post(
        f"{collector.url}/api/v1/heartbeat",
        content=beat.model_dump_json(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert answer.status_code == 200, answer.text
    samples = fresh_samples(collector)
    agent = _labels(agent="pi-1", school="Lincoln")
    assert samples[("readynet_agent_last_heartbeat_timestamp_seconds", agent)] > 1.7e9
    assert samples[("readynet_agent_outbox_pending", agent)] == 42
    assert samples[("readynet_agent_dead_letters", agent)] == 3
    assert samples[("readynet_agent_outbox_lost", agent)] == 7
    assert -91 < samples[("readynet_agent_clock_offset_seconds", agent)] < -89


def test_readiness_counts_only_the_window(collector_any_db: RunningCollector) -> None:
    """A school whose circuit was upgraded is judged on the new circuit, not on months ago."""
    collector = collector_any_db
    school_id = collector.add_school("Lincoln", students=450, staff=50)  # needs 50/500 Mbps
    token = collector.enroll(school_id)
    old = datetime.now(UTC) - timedelta(days=40)
    _post(
        collector,
        token,
        *[
            ThroughputTest(path="onnet", server="x", download_bps=10e6, measured_at=old)
            for _ in range(30)
        ],
    )
    readiness = httpx.get(
        f"{collector.url}/api/v1/schools/{school_id}/readiness", headers=collector.reader
    ).json()
    assert (readiness["tests"], readiness["window_days"]) == (0, 30)
    _post(
        collector,
        token,
        *[ThroughputTest(path="onnet", server="x", download_bps=600e6) for _ in range(10)],
    )
    readiness = httpx.get(
        f"{collector.url}/api/v1/schools/{school_id}/readiness", headers=collector.reader
    ).json()
    assert readiness["tests"] == 10
    assert [t["verdict"] for t in readiness["targets"]] == ["meets", "meets"]
    school = _labels(school="Lincoln")
    assert fresh_samples(collector)[("readynet_school_window_tests", school)] == 10


def test_interface_detail_is_scraped_per_district(database_url: str) -> None:
    with run_collector(database_url, metrics_interface_budget=2) as collector:
        north = collector.add_school("North Elementary")
        south = collector.add_school("South Elementary")
        with collector.sessions() as session:
            district = District(name="Springfield USD")
            session.add(district)
            session.flush()
            session.get_one(School, north).district_id = district.id
            session.commit()
            district_id = district.id
        for school in (north, south):
            poll = SnmpPoll(
                device="core",
                address="127.0.0.1:161",
                interfaces=[
                    # Stored as the bit pattern -1: still the busiest, not the idlest.
                    InterfaceCounters(ifindex=1, name="uplink", octets_in=2**64 - 1),
                    InterfaceCounters(ifindex=2, name="access", octets_in=10),
                ],
            )
            _post(collector, collector.enroll(school), poll)

        # The default scrape keeps to the budget: one interface per device, the busiest.
        default = fresh_samples(collector)
        shown = {
            (dict(labels)["school"], dict(labels)["ifname"])
            for name, labels in default
            if name == "readynet_interface_received_bytes_total"
        }
        assert shown == {("North Elementary", "uplink"), ("South Elementary", "uplink")}
        assert default[("readynet_metrics_interfaces_omitted", frozenset())] == 2

        detail = fresh_samples(collector, district=str(district_id))
        assert {dict(labels)["school"] for _, labels in detail} == {"North Elementary"}
        assert len([n for n, _ in detail if n == "readynet_interface_received_bytes_total"]) == 2
        orphans = fresh_samples(collector, district="none")
        assert {dict(labels)["school"] for _, labels in orphans} == {"South Elementary"}
        assert not any(
            name.startswith("readynet_interface_")
            for name, _ in fresh_samples(collector, interfaces="none")
        )
        assert (
            httpx.get(
                f"{collector.url}/metrics", params={"district": "999"}, headers=collector.reader
            ).status_code
            == 404
        )

        targets = httpx.get(
            f"{collector.url}/api/v1/metrics/targets", headers=collector.reader
        ).json()
        host = f"127.0.0.1:{collector.server.port}"
        assert targets == [
            {
                "targets": [host],
                "labels": {
                    "__metrics_path__": "/metrics",
                    "__param_district": str(district_id),
                    "district": "Springfield USD",
                },
            },
            {
                "targets": [host],
                "labels": {
                    "__metrics_path__": "/metrics",
                    "__param_district": "none",
                    "district": "",
                },
            },
        ]


def test_each_family_is_written_in_one_piece(collector: RunningCollector) -> None:
    """The text format wants a family's HELP, TYPE and samples together, not interleaved."""
    token = collector.enroll(collector.add_school("Lincoln"))
    _post(collector, token, _poll(5000), SnmpPoll(device="ap", address="127.0.0.1:162"))
    text = httpx.get(f"{collector.url}/metrics", headers=collector.reader).text
    families = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
    names = [line.split("{")[0].split()[0] for line in text.splitlines() if line[:1] != "#"]
    order = list(dict.fromkeys(names))
    assert len(families) == len(set(families))
    # Every sample name appears in one run: no family resumes after another started.
    runs = [n for i, n in enumerate(names) if i == 0 or names[i - 1] != n]
    assert runs == order


def test_richer_tests_in_base_units(collector_any_db: RunningCollector) -> None:
    """The default scrape: a few window figures per school; ?district=: the newest tests."""
    collector = collector_any_db
    school_id = collector.add_school("Lincoln", students=450, staff=50)
    token = collector.enroll(school_id, name="pi-lincoln")
    now = datetime.now(UTC).replace(microsecond=0)
    onnet = [
        ThroughputTest(
            path="onnet",
            server="x",
            download_bps=(90 + n) * 1e6,
            download_p90_bps=(95 + n) * 1e6,
            upload_bps=40e6,
            upload_p90_bps=45e6,
            latency_ms=5.0,
            loaded_latency_ms=100.0 + 10 * n,
            responsiveness_rpm=60_000 / (100.0 + 10 * n),
            agent_link_mbps=100,
            agent_wifi=False,
            agent_limited=n % 2 == 0,
            background_bps=3e6,
            budget_bytes=12 * 10**9,
            budget_used_bytes=(n + 1) * 10**8,
            measured_at=now - timedelta(hours=10 - n),
        )
        for n in range(10)
    ]
    internet = ThroughputTest(
        path="internet",
        server="speedtest.example:8080",
        download_bps=80e6,
        upload_bps=20e6,
        latency_ms=18.0,
        server_id="4711",
        sponsor="Example ISP",
        distance_km=12.5,
        measured_at=now - timedelta(minutes=30),
    )
    failed_later = ThroughputTest(
        path="onnet",
        server="x",
        error="collector down",
        budget_bytes=12 * 10**9,
        budget_used_bytes=2 * 10**9,
    )
    latency = LatencyTest(
        target="127.0.0.1:8080",
        method="tcp_connect",
        answered=18,
        lost=2,
        rtt_p50_ms=4.0,
        rtt_p90_ms=9.0,
        jitter_ms=1.5,
        measured_at=now - timedelta(minutes=5),
    )
    all_lost = LatencyTest(target="10.9.9.9:443", method="http", lost=20, error="all lost")
    _post(collector, token, *onnet, internet, failed_later, latency, all_lost)
    classroom = ThroughputTest(
        path="classroom", server="x", room="Room 12", download_bps=30e6, upload_bps=10e6
    )
    with collector.sessions() as session:
        code = issue_classroom_code(session=session, school_id=school_id).code
    response = httpx.post(
        f"{collector.url}/api/v1/classroom/results",
        content=classroom.model_dump_json(),
        headers={"X-Classroom-Code": code, "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text

    default = fresh_samples(collector)
    school = _labels(school="Lincoln")
    assert default[("readynet_school_window_tests", school)] == 11  # no classroom test
    # 90 to 99 Mbit/s on-net and 80 internet.
    assert default[("readynet_school_download_median_bits_per_second", school)] == 94e6
    assert default[("readynet_school_download_p90_bits_per_second", school)] == pytest.approx(98e6)
    assert default[("readynet_school_window_agent_limited_tests", school)] == 5
    assert not any(n.startswith(("readynet_throughput_", "readynet_latency_")) for n, _ in default)

    detail = fresh_samples(collector, district="none")
    onnet_newest = _labels(school="Lincoln", path="onnet")
    expected = {
        "readynet_throughput_last_test_timestamp_seconds": (now - timedelta(hours=1)).timestamp(),
        "readynet_throughput_download_bits_per_second": 99e6,
        "readynet_throughput_download_p90_bits_per_second": 104e6,
        "readynet_throughput_upload_bits_per_second": 40e6,
        "readynet_throughput_upload_p90_bits_per_second": 45e6,
        "readynet_throughput_idle_latency_seconds": 0.005,
        "readynet_throughput_loaded_latency_seconds": 0.19,
        "readynet_throughput_responsiveness_rpm": 60_000 / 190,
        "readynet_throughput_agent_limited": 0,
        "readynet_throughput_agent_link_bits_per_second": 100e6,
        "readynet_throughput_background_bits_per_second": 3e6,
    }
    for name, value in expected.items():
        assert detail[(name, onnet_newest)] == pytest.approx(value), name
    internet_newest = _labels(school="Lincoln", path="internet")
    assert detail[("readynet_throughput_download_bits_per_second", internet_newest)] == 80e6
    assert detail[("readynet_throughput_idle_latency_seconds", internet_newest)] == 0.018
    assert ("readynet_throughput_loaded_latency_seconds", internet_newest) not in detail
    room = _labels(school="Lincoln", room="Room 12")
    assert detail[("readynet_classroom_download_bits_per_second", room)] == 30e6
    assert detail[("readynet_classroom_upload_bits_per_second", room)] == 10e6
    assert detail[("readynet_classroom_last_test_timestamp_seconds", room)] > now.timestamp() - 60
    target = _labels(school="Lincoln", destination="127.0.0.1:8080", method="tcp_connect")
    assert detail[("readynet_latency_rtt_p50_seconds", target)] == 0.004
    assert detail[("readynet_latency_rtt_p90_seconds", target)] == 0.009
    assert detail[("readynet_latency_jitter_seconds", target)] == 0.0015
    assert detail[("readynet_latency_loss_ratio", target)] == 0.1
    assert (
        detail[("readynet_latency_last_test_timestamp_seconds", target)]
        == (now - timedelta(minutes=5)).timestamp()
    )
    unreachable = _labels(school="Lincoln", destination="10.9.9.9:443", method="http")
    assert detail[("readynet_latency_loss_ratio", unreachable)] == 1
    assert ("readynet_latency_rtt_p50_seconds", unreachable) not in detail
    agent = _labels(agent="pi-lincoln", school="Lincoln")
    assert detail[("readynet_agent_budget_bytes", agent)] == 12e9
    assert detail[("readynet_agent_budget_used_bytes", agent)] == 2e9  # the failed test's


def test_district_scrapes_follow_new_results_names_and_moves(
    collector_any_db: RunningCollector,
) -> None:
    """The district scrape keeps each school's newest tests between scrapes: news, a rename
    and a move to another district must all show at the next scrape."""
    collector = collector_any_db
    school_id = collector.add_school("Lincoln")
    token = collector.enroll(school_id)
    older = datetime.now(UTC) - timedelta(days=2)
    _post(
        collector,
        token,
        ThroughputTest(path="onnet", server="x", download_bps=1e8, measured_at=older),
    )
    onnet = (
        "readynet_throughput_download_bits_per_second",
        _labels(school="Lincoln", path="onnet"),
    )
    assert fresh_samples(collector, district="none")[onnet] == 1e8

    _post(collector, token, ThroughputTest(path="onnet", server="x", download_bps=2e8))
    _post(collector, token, LatencyTest(target="127.0.0.1:80", method="http", answered=4, lost=1))
    after = fresh_samples(collector, district="none")
    assert after[onnet] == 2e8
    loss = (
        "readynet_latency_loss_ratio",
        _labels(school="Lincoln", destination="127.0.0.1:80", method="http"),
    )
    assert after[loss] == 0.2

    with collector.sessions() as session:
        session.get_one(School, school_id).name = "Lincoln Elementary"
        session.commit()
    renamed = fresh_samples(collector, district="none")
    assert onnet not in renamed
    assert renamed[(onnet[0], _labels(school="Lincoln Elementary", path="onnet"))] == 2e8

    with collector.sessions() as session:
        district = District(name="Springfield USD")
        session.add(district)
        session.flush()
        session.get_one(School, school_id).district_id = district.id
        session.commit()
        district_id = district.id
    assert not any(
        name.startswith("readynet_throughput_")
        for name, _ in fresh_samples(collector, district="none")
    )
    moved = fresh_samples(collector, district=str(district_id))
    assert moved[(onnet[0], _labels(school="Lincoln Elementary", path="onnet"))] == 2e8


def test_the_detail_leaves_out_what_left_the_window() -> None:
    """A kept newest test older than the window start means none of its group is left in it."""
    now = datetime.now(UTC)

    def test_at(at: datetime, path: str) -> NewestTest:
        return NewestTest(
            1, path, None, at, 1e8, None, None, None, None, None, None, False, None, None
        )

    newest = ScopeNewest(
        names={1: "Lincoln"},
        schools={
            1: SchoolNewest(
                tests=(test_at(now - timedelta(days=31), "internet"), test_at(now, "onnet")),
                budgets=(AgentBudget("pi", 1, now - timedelta(days=31), 10**10, 10**9),),
            )
        },
    )
    out = Exposition()
    render_test_detail(out, newest, now - timedelta(days=30))
    text = out.render().decode()
    assert 'readynet_throughput_download_bits_per_second{school="Lincoln",path="onnet"}' in text
    assert "internet" not in text
    assert "readynet_agent_budget_bytes{" not in text


def test_the_busiest_interfaces_are_uplinks_first_then_most_octets_ties_in_order() -> None:
    def row(octets_in: int | None, octets_out: int | None, role: str | None = None) -> list[Any]:
        return [1, "x", octets_in, octets_out, 64, 1000, None, 6, 1, 1, role]

    rows = [
        row(5, 5),  # 0: 10
        row(None, None),  # 1: no counters, 0
        row(1, 0, "wan"),  # 2: an uplink, 1
        row(2**64 - 1, 0),  # 3: the largest Counter64
        row(10, 0),  # 4: 10, ties with 0
        row(0, 3, "internet"),  # 5: an uplink, 3
    ]
    assert _busiest(rows, 6) == [5, 2, 3, 0, 4, 1]
    assert _busiest(rows, 1) == [5]
    assert _busiest(rows, 4) == [5, 2, 3, 0]
    assert _busiest(rows, 10) == [5, 2, 3, 0, 4, 1]
    # A row stored before `role` was appended reads as no role.
    assert _busiest([[1, "a", 1, 1], [2, "b", 5, 5]], 1) == [1]
