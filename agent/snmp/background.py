"""The uplink's traffic right now: its octet counters read twice, `sample_s` apart (SNMP side of
`agent.uplink`)."""

from __future__ import annotations

import asyncio
import time

from agent.errors import ProbeError
from agent.settings import DeviceSettings, UplinkSettings
from agent.snmp.walk import get_scalars, open_session
from agent.uplink import Background

IF_HC_IN_OCTETS = "1.3.6.1.2.1.31.1.1.1.6"
IF_HC_OUT_OCTETS = "1.3.6.1.2.1.31.1.1.1.10"
IF_HIGH_SPEED = "1.3.6.1.2.1.31.1.1.1.15"  # Mbit/s


async def measure_background(device: DeviceSettings, settings: UplinkSettings) -> Background:
    """Two counter readings `sample_s` apart. Raises ProbeError when they cannot give a rate."""
    if settings.ifindex is None:  # AgentSettings fills it in from the device's uplink roles
        raise ProbeError(f"{device.name}: the uplink has no ifIndex")
    oids = [f"{column}.{settings.ifindex}" for column in (IF_HC_IN_OCTETS, IF_HC_OUT_OCTETS)]
    speed_oid = f"{IF_HIGH_SPEED}.{settings.ifindex}"
    async with open_session(device) as session:
        first = await get_scalars(session, [*oids, speed_oid])
        first_at = time.monotonic()
        await asyncio.sleep(settings.sample_s)
        second = await get_scalars(session, oids)
        elapsed = time.monotonic() - first_at
    rates = []
    for oid in oids:
        before, after = first[oid], second[oid]
        if not isinstance(before, int) or not isinstance(after, int):
            raise ProbeError(
                f"{device.name} has no 64-bit octet counters on ifIndex {settings.ifindex}"
            )
        if after < before:
            # A wrap of a 64-bit counter takes years: this is a reset (reboot, counter clear).
            raise ProbeError(f"{device.name} ifIndex {settings.ifindex}: counters went back")
        rates.append((after - before) * 8 / elapsed)
    speed = first[speed_oid]
    link_bps = speed * 1e6 if isinstance(speed, int) and speed > 0 else None
    return Background(in_bps=rates[0], out_bps=rates[1], link_bps=link_bps)
