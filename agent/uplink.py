"""Is the school's uplink already busy? Read its SNMP counters before a throughput test.

A speed test on a line that a school is already using measures what is left, not what the line
can do, and it slows down the school's own work. So, as the FCC's Measuring Broadband America
programme does, the agent first reads the uplink's octet counters twice, `sample_s` apart: if
the traffic already flowing is above `busy_fraction` of the link speed (or `busy_bps`), the test
is deferred; otherwise it runs and the background rate is stored with the result, so that
capacity is judged as measured + background.

The uplink is one interface of one polled device, as that device sees it: on the school's router,
the port towards the district hub or the ISP, where "in" is traffic towards the school (the
download direction) and "out" is traffic leaving it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from agent.errors import ProbeError
from agent.settings import DeviceSettings, UplinkSettings
from agent.snmp.walk import get_scalars, open_session

IF_HC_IN_OCTETS = "1.3.6.1.2.1.31.1.1.1.6"
IF_HC_OUT_OCTETS = "1.3.6.1.2.1.31.1.1.1.10"
IF_HIGH_SPEED = "1.3.6.1.2.1.31.1.1.1.15"  # Mbit/s


@dataclass(frozen=True)
class Background:
    """Traffic on the uplink while it was sampled, in bits per second."""

    in_bps: float
    out_bps: float
    link_bps: float | None

    def busy(self, settings: UplinkSettings) -> str | None:
        """Why the line is too busy to test, or None."""
        peak = max(self.in_bps, self.out_bps)
        if settings.busy_bps is not None and peak > settings.busy_bps:
            return f"uplink carries {peak / 1e6:.1f} Mbit/s, above {settings.busy_bps / 1e6:g}"
        if self.link_bps and peak > settings.busy_fraction * self.link_bps:
            share = peak / self.link_bps
            return (
                f"uplink carries {peak / 1e6:.1f} Mbit/s, {share:.0%} of its "
                f"{self.link_bps / 1e6:g} Mbit/s (limit {settings.busy_fraction:.0%})"
            )
        return None


async def measure_background(device: DeviceSettings, settings: UplinkSettings) -> Background:
    """Two counter readings `sample_s` apart. Raises ProbeError when they cannot give a rate."""
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
