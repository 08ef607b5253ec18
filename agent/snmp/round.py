"""One SNMP round: a poll of each device, as `readynet-agent once` and the poller process run it."""

from __future__ import annotations

from collections.abc import Sequence

from agent.probes.base import ProbeResult
from agent.probes.snmp import SnmpProbe
from agent.redact import scrub
from agent.settings import DeviceSettings


async def snmp_round(
    devices: Sequence[DeviceSettings], secrets: Sequence[str]
) -> list[ProbeResult]:
    """One poll per device, in order; a device that fails gives a poll with `error`."""
    results: list[ProbeResult] = []
    for device in devices:
        results.extend(await SnmpProbe(device).run())
    return [scrub(result, secrets) for result in results]
