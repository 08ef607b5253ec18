"""Prometheus metrics computed from the database at scrape time (client_python's Collector).

Nothing is cached between scrapes, so a restarted collector or a second replica reports the
same numbers. Labels stay bounded: school, device, ifname, target — never a test id.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from collector.readiness.evaluate import Readiness
from collector.readiness.report import school_readiness
from collector.readiness.targets import TargetProfile
from collector.store.models import Agent, School
from collector.store.queries import latest_interface_samples, list_schools

VERDICTS = ("meets", "below", "inconclusive")


class StoreCollector(Collector):
    """Reads schools, agents, readiness and interface counters for every scrape."""

    def __init__(self, session_factory: sessionmaker[Session], profile: TargetProfile) -> None:
        self._session_factory = session_factory
        self._profile = profile

    def collect(self) -> Iterator[Metric]:
        with self._session_factory() as session:
            readiness = [
                school_readiness(session=session, school=school, profile=self._profile)
                for school in list_schools(session=session)
            ]
            yield from _school_metrics(readiness)
            yield from _agent_metrics(session)
            yield from _interface_metrics(session)


def _school_metrics(readiness: list[Readiness]) -> Iterator[Metric]:
    users = GaugeMetricFamily(
        "readynet_school_users", "Students and staff the targets are divided by.", labels=["school"]
    )
    tests = CounterMetricFamily(
        "readynet_school_throughput_tests",
        "Successful throughput tests stored for the school.",
        labels=["school"],
    )
    median = GaugeMetricFamily(
        "readynet_school_download_median_bps",
        "Median download rate of the school's throughput tests, bits per second.",
        labels=["school"],
    )
    required = GaugeMetricFamily(
        "readynet_school_required_bps",
        "Bandwidth the target asks for this school, bits per second.",
        labels=["school", "profile", "target"],
    )
    verdict = GaugeMetricFamily(
        "readynet_school_readiness",
        "1 for the school's current verdict against a target, 0 for the other verdicts.",
        labels=["school", "profile", "target", "verdict"],
    )
    for r in readiness:
        users.add_metric([r.school], r.users)
        tests.add_metric([r.school], r.tests)
        first = r.targets[0]
        if first.measured_mbps is not None:
            median.add_metric([r.school], first.measured_mbps * 1e6)
        for t in r.targets:
            required.add_metric([r.school, r.profile, t.target_id], t.required_mbps * 1e6)
            for v in VERDICTS:
                verdict.add_metric([r.school, r.profile, t.target_id, v], float(t.verdict == v))
    yield from (users, tests, median, required, verdict)


def _agent_metrics(session: Session) -> Iterator[Metric]:
    last_seen = GaugeMetricFamily(
        "readynet_agent_last_seen_timestamp_seconds",
        "When the agent last delivered a batch, Unix time.",
        labels=["agent", "school"],
    )
    rows = session.execute(
        select(Agent.name, School.name, Agent.last_seen_at).join(School).order_by(Agent.name)
    )
    for agent, school, seen in rows:
        if seen is not None:
            last_seen.add_metric([agent, school], seen.timestamp())
    yield last_seen
    count = session.scalar(select(func.count()).select_from(Agent)) or 0
    yield GaugeMetricFamily("readynet_agents", "Enrolled agents.", value=count)


def _interface_metrics(session: Session) -> Iterator[Metric]:
    labels = ["school", "device", "ifname"]
    speed = GaugeMetricFamily(
        "readynet_interface_speed_bps", "Interface speed (ifHighSpeed), bits/s.", labels=labels
    )
    rx = CounterMetricFamily(
        "readynet_interface_received_octets",
        "Octets received (ifHCInOctets) at the newest poll.",
        labels=labels,
    )
    tx = CounterMetricFamily(
        "readynet_interface_transmitted_octets",
        "Octets sent (ifHCOutOctets) at the newest poll.",
        labels=labels,
    )
    uptime = GaugeMetricFamily(
        "readynet_device_uptime_seconds",
        "Device sysUpTime at the newest poll.",
        labels=["school", "device"],
    )
    seen_devices: set[tuple[str, str]] = set()
    for row in latest_interface_samples(session=session):
        key = [row.school, row.device, row.ifname]
        if row.speed_mbps is not None:
            speed.add_metric(key, row.speed_mbps * 1e6)
        if row.octets_in is not None:
            rx.add_metric(key, row.octets_in)
        if row.octets_out is not None:
            tx.add_metric(key, row.octets_out)
        if row.sys_uptime_ticks is not None and (row.school, row.device) not in seen_devices:
            seen_devices.add((row.school, row.device))
            uptime.add_metric([row.school, row.device], row.sys_uptime_ticks / 100)
    yield from (speed, rx, tx, uptime)
