"""The per-district detail scrape's test series: each school's newest results, in base units.

The default scrape keeps a few series per school (readiness and its window's figures); these
are the many more a school's own panels need (eleven per path, five per latency destination,
three per classroom, two per agent), so they ride with the interface detail on
`/metrics?district=`, one district per scrape, read by `collector.metrics.newest_cache` from the
readiness window only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from collector.metrics.exposition import Exposition, labels
from collector.metrics.newest_cache import ScopeNewest
from collector.store.newest import NewestLatency, NewestTest

Row = TypeVar("Row")


@dataclass(frozen=True)
class _Gauge(Generic[Row]):
    """A gauge family whose value is read off each row; rows whose value is None are skipped."""

    name: str
    help_text: str
    value: Callable[[Row], float | None]


def _ms(value: float | None) -> float | None:
    return None if value is None else value / 1000


def _mbit(value: int | None) -> float | None:
    return None if value is None else value * 1_000_000


_TESTS: tuple[_Gauge[NewestTest], ...] = (
    _Gauge(
        "readynet_throughput_last_test_timestamp_seconds",
        "When the school's newest successful test over this path was taken, Unix time.",
        lambda t: t.measured_at.timestamp(),
    ),
    _Gauge(
        "readynet_throughput_download_bits_per_second",
        "Mean download of that test, after its warm-up.",
        lambda t: t.download_bps,
    ),
    _Gauge(
        "readynet_throughput_download_p90_bits_per_second",
        "90th percentile of that test's download samples.",
        lambda t: t.download_p90_bps,
    ),
    _Gauge(
        "readynet_throughput_upload_bits_per_second",
        "Mean upload of that test, after its warm-up.",
        lambda t: t.upload_bps,
    ),
    _Gauge(
        "readynet_throughput_upload_p90_bits_per_second",
        "90th percentile of that test's upload samples.",
        lambda t: t.upload_p90_bps,
    ),
    _Gauge(
        "readynet_throughput_idle_latency_seconds",
        "Round trip of that test before any load.",
        lambda t: _ms(t.latency_ms),
    ),
    _Gauge(
        "readynet_throughput_loaded_latency_seconds",
        "Round trip of that test while the link was loaded (bufferbloat shows here).",
        lambda t: _ms(t.loaded_latency_ms),
    ),
    _Gauge(
        "readynet_throughput_responsiveness_rpm",
        "Round trips per minute under load (RPM, IETF responsiveness) of that test.",
        lambda t: t.responsiveness_rpm,
    ),
    _Gauge(
        "readynet_throughput_agent_limited",
        "1 when that test came within reach of the agent's own link: a floor, not capacity.",
        lambda t: int(t.agent_limited),
    ),
    _Gauge(
        "readynet_throughput_agent_link_bits_per_second",
        "Link speed of the agent that ran that test.",
        lambda t: _mbit(t.agent_link_mbps),
    ),
    _Gauge(
        "readynet_throughput_background_bits_per_second",
        "Traffic already on the school's uplink when that test began (SNMP).",
        lambda t: t.background_bps,
    ),
)
_CLASSROOMS: tuple[_Gauge[NewestTest], ...] = (
    _Gauge(
        "readynet_classroom_last_test_timestamp_seconds",
        "When the room's newest successful classroom test was taken, Unix time.",
        lambda t: t.measured_at.timestamp(),
    ),
    _Gauge(
        "readynet_classroom_download_bits_per_second",
        "Mean download of that test: the room's whole path (device, Wi-Fi, LAN, WAN).",
        lambda t: t.download_bps,
    ),
    _Gauge(
        "readynet_classroom_upload_bits_per_second",
        "Mean upload of that test.",
        lambda t: t.upload_bps,
    ),
)
_LATENCIES: tuple[_Gauge[NewestLatency], ...] = (
    _Gauge(
        "readynet_latency_last_test_timestamp_seconds",
        "When the school's newest latency test of this destination was taken, Unix time.",
        lambda r: r.measured_at.timestamp(),
    ),
    _Gauge(
        "readynet_latency_rtt_p50_seconds",
        "Median round trip of that test's answered probes.",
        lambda r: _ms(r.rtt_p50_ms),
    ),
    _Gauge(
        "readynet_latency_rtt_p90_seconds",
        "90th percentile round trip of that test's answered probes.",
        lambda r: _ms(r.rtt_p90_ms),
    ),
    _Gauge(
        "readynet_latency_jitter_seconds",
        "Mean difference between consecutive round trips of that test.",
        lambda r: _ms(r.jitter_ms),
    ),
    _Gauge(
        "readynet_latency_loss_ratio",
        "Share of that test's probes without an answer in time, 0 to 1.",
        lambda r: r.loss_ratio,
    ),
)


def _render(out: Exposition, gauges: tuple[_Gauge[Row], ...], rows: list[tuple[str, Row]]) -> None:
    for gauge in gauges:
        family = out.family(gauge.name, "gauge", gauge.help_text)
        for label_set, row in rows:
            value = gauge.value(row)
            if value is not None:
                family.add(label_set, value)


def render_test_detail(out: Exposition, newest: ScopeNewest, since: datetime) -> None:
    """Newest tests, latency, classrooms and agent budgets of `newest`'s schools, in name order;
    what is older than `since` (the window start) is left out."""
    paths: list[tuple[str, NewestTest]] = []
    rooms: list[tuple[str, NewestTest]] = []
    latencies: list[tuple[str, NewestLatency]] = []
    budget = out.family(
        "readynet_agent_budget_bytes",
        "gauge",
        "The agent's daily data budget for tests, as its newest test reported it.",
    )
    used = out.family(
        "readynet_agent_budget_used_bytes",
        "gauge",
        "What the agent had used of that day's budget, that test included.",
    )
    for school_id, name in sorted(newest.names.items(), key=lambda item: item[1]):
        school = newest.schools.get(school_id)
        if school is None:
            continue
        for t in school.tests:
            if t.measured_at < since:
                continue
            if t.path == "classroom":
                rooms.append((labels(school=name, room=t.room or ""), t))
            else:
                paths.append((labels(school=name, path=t.path), t))
        for r in school.latencies:
            if r.measured_at >= since:
                latency = labels(school=name, destination=r.target, method=r.method)
                latencies.append((latency, r))
        for b in school.budgets:
            if b.measured_at >= since:
                agent = labels(agent=b.agent, school=name)
                budget.add(agent, b.budget_bytes)
                if b.used_bytes is not None:
                    used.add(agent, b.used_bytes)
    _render(out, _TESTS, paths)
    _render(out, _CLASSROOMS, rooms)
    _render(out, _LATENCIES, latencies)
