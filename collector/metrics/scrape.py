"""What one scrape of /metrics says: readiness from the board, the rest read from the store.

Two layouts, as Prometheus users scale: the default scrape carries school, agent and device
series, plus interface series within a budget (every interface of a small fleet; past the
budget, each device's busiest interfaces; `interfaces=none` drops them); a district scrape
(`?district=`) carries the full per-interface detail of that district's schools. Every read is
set-based, so the number of SQL statements per scrape does not grow with the fleet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from collector import __version__
from collector.api.gate import GateLoad
from collector.metrics.detail import render_test_detail
from collector.metrics.exposition import Exposition, labels, sample
from collector.metrics.newest_cache import NewestCache
from collector.readiness.board import BoardEntry, Snapshot
from collector.store.latest import (
    Scope,
    agent_states,
    count_latest_interfaces,
    device_states,
    latest_interfaces,
)

VERDICTS = ("meets", "below", "inconclusive")


@dataclass(frozen=True)
class ScrapeRequest:
    """`detail`: a district scrape of `scope`; otherwise the default scrape."""

    detail: bool
    scope: Scope
    interfaces: bool
    interface_budget: int


class ScrapeRenderer:
    """Renders scrapes; keeps each school's rendered lines while its board entry is unchanged.

    Board entries are immutable and replaced only when a school is recomputed, so a warm scrape
    re-renders only the schools that changed since the last one (at 10,000 schools the school
    series were half of the rendering time); district scrapes keep their schools' newest tests
    the same way (`NewestCache`). Used by one scrape at a time.
    """

    def __init__(self) -> None:
        self._schools: dict[int, _SchoolLines] = {}
        self._newest = NewestCache()

    def render(
        self, *, session: Session, request: ScrapeRequest, board: Snapshot, gate: GateLoad
    ) -> bytes:
        out = Exposition()
        if request.detail:
            _interfaces(out, session, request.scope, per_device=None)
            since = datetime.now(UTC) - timedelta(days=board.window_days)
            newest = self._newest.read(session=session, scope=request.scope, since=since)
            render_test_detail(out, newest, since)
            return out.render()
        out.family("readynet_build_info", "gauge", "The collector's version.").add(
            labels(version=__version__), 1
        )
        self._render_schools(out, board)
        _agents(out, session)
        _devices(out, session)
        _store(out, gate)
        if request.interfaces:
            _budgeted_interfaces(out, session, request.interface_budget)
        return out.render()

    def _render_schools(self, out: Exposition, board: Snapshot) -> None:
        out.family(
            "readynet_readiness_window_seconds", "gauge", "Length of the readiness window."
        ).add("", board.window_days * 86400)
        out.family(
            "readynet_readiness_computed_timestamp_seconds",
            "gauge",
            "When the readiness below was brought up to date, Unix time.",
        ).add("", board.computed_at.timestamp())
        cached = self._schools
        lines = []
        for school_id, entry in sorted(board.entries.items()):
            known = cached.get(school_id)
            if known is None or known.entry is not entry:
                known = cached[school_id] = _SchoolLines.of(school_id, entry)
            lines.append(known)
        for gone in cached.keys() - board.entries.keys():
            del cached[gone]
        for name, help_text in _SCHOOL_FAMILIES:
            out.family(name, "gauge", help_text).extend(getattr(s, name) for s in lines)


def render_scrape(
    *, session: Session, request: ScrapeRequest, board: Snapshot, gate: GateLoad
) -> bytes:
    """One scrape without the cache of a long-lived `ScrapeRenderer`."""
    return ScrapeRenderer().render(session=session, request=request, board=board, gate=gate)


_SCHOOL_FAMILIES = (
    ("readynet_school_info", "One per school, with its district."),
    ("readynet_school_users", "Students and staff the targets are divided by."),
    (
        "readynet_school_window_tests",
        "Successful throughput tests of the school inside the readiness window.",
    ),
    (
        "readynet_school_download_median_bits_per_second",
        "Median download of the school's tests inside the readiness window.",
    ),
    (
        "readynet_school_download_p90_bits_per_second",
        "90th percentile of the downloads of the school's tests inside the readiness window.",
    ),
    (
        "readynet_school_window_agent_limited_tests",
        "Tests of the window that came within reach of the agent's own link (floors).",
    ),
    ("readynet_school_required_bits_per_second", "Bandwidth the target asks for this school."),
    (
        "readynet_school_readiness",
        "1 for the school's current verdict against a target, 0 for the other verdicts.",
    ),
)


@dataclass(frozen=True)
class _SchoolLines:
    """One school's sample lines of each school family (named after the family)."""

    entry: BoardEntry
    readynet_school_info: str
    readynet_school_users: str
    readynet_school_window_tests: str
    readynet_school_download_median_bits_per_second: str
    readynet_school_download_p90_bits_per_second: str
    readynet_school_window_agent_limited_tests: str
    readynet_school_required_bits_per_second: str
    readynet_school_readiness: str

    @classmethod
    def of(cls, school_id: int, entry: BoardEntry) -> _SchoolLines:
        r = entry.readiness
        school = labels(school=r.school)
        info = labels(school=r.school, school_id=str(school_id), district=entry.district)
        measured = r.targets[0].measured_mbps if r.targets else None
        required, verdicts = [], []
        for t in r.targets:
            target = labels(school=r.school, profile=r.profile, target=t.target_id)
            required.append(
                sample("readynet_school_required_bits_per_second", target, t.required_mbps * 1e6)
            )
            for v in VERDICTS:
                verdicts.append(
                    sample(
                        "readynet_school_readiness",
                        target[:-1] + f',verdict="{v}"}}',
                        float(t.verdict == v),
                    )
                )
        return cls(
            entry,
            sample("readynet_school_info", info, 1),
            sample("readynet_school_users", school, r.users),
            sample("readynet_school_window_tests", school, r.tests),
            _optional("readynet_school_download_median_bits_per_second", school, measured, 1e6),
            _optional(
                "readynet_school_download_p90_bits_per_second", school, r.p90_download_mbps, 1e6
            ),
            sample("readynet_school_window_agent_limited_tests", school, r.agent_limited_tests),
            "".join(required),
            "".join(verdicts),
        )


def _optional(name: str, label_set: str, value: float | None, scale: float) -> str:
    """A sample of `value` times `scale` (to base units), or nothing for an unknown value."""
    return "" if value is None else sample(name, label_set, value * scale)


def _agents(out: Exposition, session: Session) -> None:
    states = agent_states(session=session)
    out.family("readynet_agents", "gauge", "Enrolled agents.").add("", len(states))
    enrolled = out.family(
        "readynet_agent_enrolled_timestamp_seconds", "gauge", "When the agent was enrolled."
    )
    seen = out.family(
        "readynet_agent_last_seen_timestamp_seconds",
        "gauge",
        "When the agent last delivered a batch, Unix time; 0 until it first does.",
    )
    heartbeat = out.family(
        "readynet_agent_last_heartbeat_timestamp_seconds",
        "gauge",
        "When the newest heartbeat arrived (every minute while the agent runs); 0 until its first.",
    )
    revoked = out.family("readynet_agent_revoked", "gauge", "1 when the agent's token is revoked.")
    pending = out.family(
        "readynet_agent_outbox_pending", "gauge", "Results waiting in the agent's outbox."
    )
    dead = out.family(
        "readynet_agent_dead_letters", "gauge", "Results the collector refused, kept by the agent."
    )
    lost = out.family(
        "readynet_agent_outbox_lost",
        "gauge",
        "Results the agent's outbox summarised or dropped to stay under its size cap, ever.",
    )
    offset = out.family(
        "readynet_agent_clock_offset_seconds",
        "gauge",
        "The agent's clock minus the collector's at its newest heartbeat.",
    )
    for a in states:
        agent = labels(agent=a.agent, school=a.school)
        enrolled.add(agent, a.enrolled_at.timestamp())
        seen.add(agent, 0 if a.last_seen_at is None else a.last_seen_at.timestamp())
        heartbeat.add(agent, 0 if a.heartbeat_at is None else a.heartbeat_at.timestamp())
        revoked.add(agent, int(a.revoked))
        if a.heartbeat_at is None:
            continue
        for family, value in (
            (pending, a.outbox_pending),
            (dead, a.dead_letters),
            (lost, a.outbox_lost),
            (offset, a.clock_offset_s),
        ):
            if value is not None:
                family.add(agent, value)


def _devices(out: Exposition, session: Session) -> None:
    up = out.family(
        "readynet_device_up", "gauge", "1 when the device's newest poll succeeded, else 0."
    )
    last = out.family(
        "readynet_device_last_poll_timestamp_seconds", "gauge", "When the newest poll was taken."
    )
    boot = out.family(
        "readynet_device_boot_time_seconds",
        "gauge",
        "When the device last booted (newest successful poll minus sysUpTime), Unix time.",
    )
    profile = out.family(
        "readynet_device_profile_info", "gauge", "The device profile that read the device."
    )
    clients = out.family(
        "readynet_wifi_clients", "gauge", "Wi-Fi clients the device reports (newest good poll)."
    )
    aps_up = out.family(
        "readynet_wifi_access_points_up", "gauge", "Access points up, as the controller says."
    )
    aps_total = out.family(
        "readynet_wifi_access_points", "gauge", "Access points the controller knows of."
    )
    for d in device_states(session=session, scope=Scope()):
        device = labels(school=d.school, device=d.device)
        up.add(device, int(d.up))
        if d.last_poll_at is not None:
            last.add(device, d.last_poll_at.timestamp())
        if d.boot_time is not None:
            boot.add(device, d.boot_time)
        if d.profile is not None:
            profile.add(labels(school=d.school, device=d.device, profile=d.profile), 1)
        for family, value in ((clients, d.clients), (aps_up, d.aps_up), (aps_total, d.aps_total)):
            if value is not None:
                family.add(device, value)


def _store(out: Exposition, gate: GateLoad) -> None:
    out.family(
        "readynet_store_workers", "gauge", "Database work allowed at once (db_workers)."
    ).add("", gate.workers)
    out.family("readynet_store_queue_running", "gauge", "Database work running now.").add(
        "", gate.running
    )
    out.family(
        "readynet_store_queue_waiting", "gauge", "Requests waiting for the database now."
    ).add("", gate.waiting)


def _budgeted_interfaces(out: Exposition, session: Session, budget: int) -> None:
    devices, interfaces = count_latest_interfaces(session=session, scope=Scope())
    per_device = None if interfaces <= budget else budget // max(devices, 1)
    shown = 0
    if per_device != 0:
        shown = _interfaces(out, session, Scope(), per_device=per_device)
    out.family(
        "readynet_metrics_interfaces_omitted",
        "gauge",
        "Interfaces left out of this scrape by the series budget; see ?district= for all.",
    ).add("", interfaces - shown)


def _interfaces(out: Exposition, session: Session, scope: Scope, *, per_device: int | None) -> int:
    speed = out.family(
        "readynet_interface_speed_bits_per_second", "gauge", "Interface speed (ifHighSpeed)."
    )
    rx = out.family(
        "readynet_interface_received_bytes_total",
        "counter",
        "Octets received (ifHCInOctets) at the newest successful poll.",
    )
    tx = out.family(
        "readynet_interface_transmitted_bytes_total",
        "counter",
        "Octets sent (ifHCOutOctets) at the newest successful poll.",
    )
    oper = out.family(
        "readynet_interface_oper_up", "gauge", "1 when ifOperStatus is up(1), else 0."
    )
    role = out.family(
        "readynet_interface_role_info",
        "gauge",
        "The school's configured uplinks: role internet or wan.",
    )
    rows = latest_interfaces(session=session, scope=scope, per_device=per_device)
    for i in rows:
        interface = labels(
            school=i.school, device=i.device, ifindex=str(i.ifindex), ifname=i.ifname
        )
        if i.oper_status is not None:
            oper.add(interface, int(i.oper_status == 1))
        if i.role is not None:
            role.add(
                labels(
                    school=i.school,
                    device=i.device,
                    ifindex=str(i.ifindex),
                    ifname=i.ifname,
                    role=i.role,
                ),
                1,
            )
        if i.speed_mbps is not None:
            speed.add(interface, i.speed_mbps * 1_000_000)
        if i.octets_in is not None:
            rx.add(interface, i.octets_in)
        if i.octets_out is not None:
            tx.add(interface, i.octets_out)
    return len(rows)
