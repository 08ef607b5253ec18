"""GET /metrics: computed from the database at scrape time, readable by Prometheus."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from agent.wire import Batch, InterfaceCounters, SnmpPoll, ThroughputTest
from tests.fixtures.collector import RunningCollector


def _samples(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = httpx.get(f"{url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def _labels(**labels: str) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


def test_metrics_follow_the_database(collector: RunningCollector) -> None:
    school_id = collector.add_school("Lincoln", students=900, staff=100)
    token = collector.enroll(school_id, name="pi-lincoln")
    assert _samples(collector.url)[("readynet_agents", frozenset())] == 1

    tests = [
        ThroughputTest(path="onnet", server="x", download_bps=mbps * 1e6)
        for mbps in range(100, 112)
    ]
    older = SnmpPoll(
        device="core",
        address="127.0.0.1:161",
        sys_uptime_ticks=1000,
        interfaces=[InterfaceCounters(ifindex=1, name="Gi0/1", octets_in=10, octets_out=20)],
    )
    newer = SnmpPoll(
        device="core",
        address="127.0.0.1:161",
        sys_uptime_ticks=7000,
        interfaces=[
            InterfaceCounters(
                ifindex=1, name="Gi0/1", octets_in=5000, octets_out=9000, speed_mbps=1000
            )
        ],
    )
    failed = SnmpPoll(device="core", address="127.0.0.1:161", error="timeout")
    batch = Batch(measurements=[*tests, older, newer, failed])
    response = httpx.post(
        f"{collector.url}/api/v1/results",
        content=batch.model_dump_json(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert response.status_code == 200

    samples = _samples(collector.url)
    school = {"school": "Lincoln"}
    assert samples[("readynet_school_users", _labels(**school))] == 1000
    assert samples[("readynet_school_throughput_tests_total", _labels(**school))] == 12
    assert samples[("readynet_school_download_median_bps", _labels(**school))] == 105.5e6
    target = {"school": "Lincoln", "profile": "setda-2012", "target": "internet-2014-15"}
    assert samples[("readynet_school_required_bps", _labels(**target))] == 100e6
    assert samples[("readynet_school_readiness", _labels(**target, verdict="meets"))] == 1
    assert samples[("readynet_school_readiness", _labels(**target, verdict="below"))] == 0
    target_2017 = {**target, "target": "internet-2017-18"}
    assert samples[("readynet_school_readiness", _labels(**target_2017, verdict="below"))] == 1
    iface = {"school": "Lincoln", "device": "core", "ifname": "Gi0/1"}
    # The newest successful poll wins; the failed one after it is ignored.
    assert samples[("readynet_interface_received_octets_total", _labels(**iface))] == 5000
    assert samples[("readynet_interface_transmitted_octets_total", _labels(**iface))] == 9000
    assert samples[("readynet_interface_speed_bps", _labels(**iface))] == 1e9
    assert (
        samples[("readynet_device_uptime_seconds", _labels(school="Lincoln", device="core"))] == 70
    )
    seen = samples[
        ("readynet_agent_last_seen_timestamp_seconds", _labels(agent="pi-lincoln", **school))
    ]
    assert seen > 1.7e9
