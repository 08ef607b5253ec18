"""The uplink's traffic right now: its octet counters read twice, `sample_s` apart (SNMP side of
`agent.uplink`). The short two-sample rate is the agent's only rate; the maths (64-bit counters,
else 32-bit, a wrap, a restart between the readings) is `agent.snmp.rates`, as at the collector."""

from __future__ import annotations

import asyncio
import time
from typing import Literal

from agent.errors import ProbeError
from agent.settings import DeviceSettings, UplinkSettings
from agent.snmp.device import SYS_UPTIME
from agent.snmp.rates import CounterSample, NoRate, interface_rate
from agent.snmp.walk import SnmpValue, get_scalars, open_session
from agent.uplink import Background

IF_HC_IN_OCTETS = "1.3.6.1.2.1.31.1.1.1.6"
IF_HC_OUT_OCTETS = "1.3.6.1.2.1.31.1.1.1.10"
IF_IN_OCTETS = "1.3.6.1.2.1.2.2.1.10"  # Counter32, where there are no HC counters
IF_OUT_OCTETS = "1.3.6.1.2.1.2.2.1.16"
IF_HIGH_SPEED = "1.3.6.1.2.1.31.1.1.1.15"  # Mbit/s
_COUNTERS = (IF_HC_IN_OCTETS, IF_HC_OUT_OCTETS, IF_IN_OCTETS, IF_OUT_OCTETS)


async def measure_background(device: DeviceSettings, settings: UplinkSettings) -> Background:
    """Two counter readings `sample_s` apart. Raises ProbeError when they cannot give a rate."""
    if settings.ifindex is None:  # AgentSettings fills it in from the device's uplink roles
        raise ProbeError(f"{device.name}: the uplink has no ifIndex")
    index = settings.ifindex
    oids = [SYS_UPTIME, *(f"{column}.{index}" for column in _COUNTERS)]
    speed_oid = f"{IF_HIGH_SPEED}.{index}"
    async with open_session(device) as session:
        first = await get_scalars(session, [*oids, speed_oid])
        first_at = time.time()
        await asyncio.sleep(settings.sample_s)
        second = await get_scalars(session, oids)
        second_at = time.time()
    speed = first[speed_oid]
    speed_mbps = speed if isinstance(speed, int) and speed > 0 else None
    before = _sample(first, index, first_at, speed_mbps)
    after = _sample(second, index, second_at, speed_mbps)
    if after.counter_bits is None:
        raise ProbeError(f"{device.name} has no octet counters on ifIndex {index}")
    rate = interface_rate(before, after)
    if isinstance(rate, NoRate):
        raise ProbeError(f"{device.name} ifIndex {index}: no rate ({rate.reason}): {rate.detail}")
    link_bps = None if speed_mbps is None else speed_mbps * 1e6
    return Background(in_bps=rate.in_bps or 0.0, out_bps=rate.out_bps or 0.0, link_bps=link_bps)


def _sample(
    values: dict[str, SnmpValue | None], index: int, at: float, speed_mbps: int | None
) -> CounterSample:
    def counter(column: str) -> int | None:
        value = values.get(f"{column}.{index}")
        return value if isinstance(value, int) and value >= 0 else None

    bits: Literal[32, 64] | None = 64
    octets_in, octets_out = counter(IF_HC_IN_OCTETS), counter(IF_HC_OUT_OCTETS)
    if octets_in is None and octets_out is None:
        bits = 32
        octets_in, octets_out = counter(IF_IN_OCTETS), counter(IF_OUT_OCTETS)
        if octets_in is None and octets_out is None:
            bits = None
    uptime = values.get(SYS_UPTIME)
    return CounterSample(
        taken_at_s=at,
        uptime_ticks=uptime if isinstance(uptime, int) else None,
        octets_in=octets_in,
        octets_out=octets_out,
        counter_bits=bits,
        speed_mbps=speed_mbps,
    )
