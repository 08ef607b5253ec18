"""The SNMP probe: one poll of one device, with the profile its sysObjectID/sysDescr match.

It reports raw counters exactly as the device gave them, with sysUpTime beside them: turning
two polls into rates (counter wraps, reboots seen through sysUpTime) happens at the collector,
from consecutive stored polls (`agent.snmp.rates`), never by guessing here.

Example:
    >>> probe = SnmpProbe(DeviceSettings(name="core", address="127.0.0.1"))  # doctest: +SKIP
    >>> [poll] = await probe.run()  # doctest: +SKIP
    >>> poll.interfaces[0].octets_in  # doctest: +SKIP
    19432396613
"""

from __future__ import annotations

from typing import ClassVar

from agent.probes.base import ProbeResult
from agent.settings import DeviceSettings
from agent.snmp.device import poll_device
from agent.snmp.profile import ProfileSet, load_profiles


class SnmpProbe:
    """Poll one device; a device that does not answer yields a poll with `error`."""

    name: ClassVar[str] = "snmp"

    def __init__(self, device: DeviceSettings, profiles: ProfileSet | None = None) -> None:
        self.device = device
        self.profiles = profiles

    async def run(self) -> list[ProbeResult]:
        profiles = self.profiles or load_profiles([])
        return [await poll_device(self.device, profiles)]
