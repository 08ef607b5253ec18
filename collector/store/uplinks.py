"""Peak figures of a school's configured uplinks and Wi-Fi, over the readiness window.

The uplinks are the interfaces the agent's config gives a role (internet, WAN); their 5-minute
rates are `interface_rates`. Circuits are sized for peak use (SETDA BI III), and ESH advises
buying 30-40 % above the peak: the 95th percentile of the busier direction is the peak here, so
that one backup window does not set it, and the suggestion adds 35 %.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from collector.store.latest import SelectT
from collector.store.models import (
    AccessPointSample,
    Device,
    InterfaceRate,
    InterfaceSample,
    SnmpPollResult,
)

PEAK_PERCENTILE = 0.95
HEADROOM = 1.35


@dataclass(frozen=True)
class UplinkPeak:
    role: str
    device: str
    ifname: str
    speed_mbps: int | None
    rates: int
    # Intervals without a rate (restarts, counter resets, ...): explained gaps, not zeros.
    gaps: int
    p95_in_mbps: float | None
    p95_out_mbps: float | None
    max_mbps: float | None
    p95_utilisation: float | None
    suggested_mbps: float | None


@dataclass(frozen=True)
class WifiPeak:
    device: str
    polls: int
    max_clients: int
    p95_clients: int
    aps_up: int | None
    aps_total: int | None
    busiest_ap: str | None
    busiest_ap_clients: int | None


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile: a value that was really measured, never an interpolation."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(round(fraction * len(ordered), 9)))
    return ordered[min(rank, len(ordered)) - 1]


def uplink_peaks(*, session: Session, school_id: int, start: datetime) -> list[UplinkPeak]:
    query = (
        select(
            InterfaceSample.role,
            Device.name,
            InterfaceSample.name,
            InterfaceSample.speed_mbps,
            InterfaceRate.in_bps,
            InterfaceRate.out_bps,
            InterfaceRate.no_rate,
        )
        .join(
            InterfaceSample,
            and_(
                InterfaceSample.poll_id == InterfaceRate.poll_id,
                InterfaceSample.seq == InterfaceRate.seq,
            ),
        )
        .join(SnmpPollResult, SnmpPollResult.poll_id == InterfaceRate.poll_id)
    )
    query = (
        _in_window(query, school_id, start)
        .where(InterfaceSample.role.is_not(None))
        .order_by(SnmpPollResult.ordered_at)
    )
    grouped: dict[tuple[str, str, str], list[tuple[int | None, float | None, float | None]]]
    grouped = defaultdict(list)
    for role, device, ifname, speed, in_bps, out_bps, no_rate in session.execute(query):
        if no_rate == "first_sample":
            continue  # no interval before it: nothing missing
        grouped[(role or "", device, ifname)].append(
            (speed, None if no_rate else in_bps, None if no_rate else out_bps)
        )
    return [_peak(key, rows) for key, rows in sorted(grouped.items())]


def _peak(
    key: tuple[str, str, str], rows: list[tuple[int | None, float | None, float | None]]
) -> UplinkPeak:
    role, device, ifname = key
    speed = rows[-1][0] or None
    rated = [(i, o) for _, i, o in rows if i is not None or o is not None]
    busier = [max(i or 0.0, o or 0.0) for i, o in rated]
    p95_busier = percentile(busier, PEAK_PERCENTILE)
    return UplinkPeak(
        role=role,
        device=device,
        ifname=ifname,
        speed_mbps=speed,
        rates=len(rated),
        gaps=len(rows) - len(rated),
        p95_in_mbps=_mbps(percentile([i for i, _ in rated if i is not None], PEAK_PERCENTILE)),
        p95_out_mbps=_mbps(percentile([o for _, o in rated if o is not None], PEAK_PERCENTILE)),
        max_mbps=_mbps(max(busier, default=None)),
        p95_utilisation=None if p95_busier is None or not speed else p95_busier / (speed * 1e6),
        suggested_mbps=None if p95_busier is None else round(p95_busier * HEADROOM / 1e6, 1),
    )


def wifi_peaks(*, session: Session, school_id: int, start: datetime) -> list[WifiPeak]:
    polls = session.execute(
        _in_window(
            select(
                Device.name,
                SnmpPollResult.clients,
                SnmpPollResult.aps_up,
                SnmpPollResult.aps_total,
            ).select_from(SnmpPollResult),
            school_id,
            start,
        )
        .where(SnmpPollResult.clients.is_not(None))
        .order_by(SnmpPollResult.ordered_at)
    ).all()
    by_device: dict[str, list[tuple[int, int | None, int | None]]] = defaultdict(list)
    for device, clients, aps_up, aps_total in polls:
        by_device[device].append((clients or 0, aps_up, aps_total))
    busiest = _busiest_aps(session, school_id, start)
    peaks = []
    for device, rows in sorted(by_device.items()):
        counts = [float(c) for c, _, _ in rows]
        ap = busiest.get(device)
        peaks.append(
            WifiPeak(
                device=device,
                polls=len(rows),
                max_clients=int(max(counts)),
                p95_clients=int(percentile(counts, PEAK_PERCENTILE) or 0),
                aps_up=rows[-1][1],
                aps_total=rows[-1][2],
                busiest_ap=None if ap is None else ap[0],
                busiest_ap_clients=None if ap is None else ap[1],
            )
        )
    return peaks


def _busiest_aps(session: Session, school_id: int, start: datetime) -> dict[str, tuple[str, int]]:
    """device → (AP name or key, most clients it carried in one poll)."""
    rows = session.execute(
        _in_window(
            select(
                Device.name,
                AccessPointSample.name,
                AccessPointSample.key,
                AccessPointSample.clients,
            ).join(SnmpPollResult, SnmpPollResult.poll_id == AccessPointSample.poll_id),
            school_id,
            start,
        ).where(AccessPointSample.clients.is_not(None))
    )
    best: dict[str, tuple[str, int]] = {}
    for device, name, key, clients in rows:
        if clients is not None and (device not in best or clients > best[device][1]):
            best[device] = (name or key, clients)
    return best


def _in_window(query: SelectT, school_id: int, start: datetime) -> SelectT:
    """`query` (which reaches `SnmpPollResult`) kept to the school's polls since `start`."""
    return query.join(Device, Device.id == SnmpPollResult.device_id).where(
        Device.school_id == school_id, SnmpPollResult.ordered_at >= start
    )


def _mbps(bps: float | None) -> float | None:
    return None if bps is None else bps / 1e6
