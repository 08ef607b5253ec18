"""The SNMP probe: one poll of one device's uptime and interface counters (IF-MIB).

It reports raw counters exactly as the device gave them, with sysUpTime beside them: turning
two polls into rates (counter wraps, reboots seen through sysUpTime) happens downstream of
this probe, never by guessing here.

Example:
    >>> probe = SnmpProbe(DeviceSettings(name="core", address="127.0.0.1"))  # doctest: +SKIP
    >>> [poll] = await probe.run()  # doctest: +SKIP
    >>> poll.interfaces[0].octets_in  # doctest: +SKIP
    19432396613
"""

from __future__ import annotations

from typing import ClassVar, Literal

from agent.errors import DeviceError, DeviceUnreachable
from agent.probes.base import ProbeResult
from agent.redact import error_text
from agent.settings import DeviceSettings
from agent.snmp.walk import SnmpValue, endpoint, get_scalars, open_session, walk_columns
from agent.wire import InterfaceCounters, SnmpPoll

SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"  # SNMPv2-MIB::sysObjectID.0
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"  # SNMPv2-MIB::sysUpTime.0

IF_DESCR = "1.3.6.1.2.1.2.2.1.2"  # IF-MIB::ifDescr
IF_SPEED = "1.3.6.1.2.1.2.2.1.5"  # IF-MIB::ifSpeed (bps)
IF_IN_OCTETS = "1.3.6.1.2.1.2.2.1.10"  # IF-MIB::ifInOctets (Counter32)
IF_OUT_OCTETS = "1.3.6.1.2.1.2.2.1.16"  # IF-MIB::ifOutOctets (Counter32)
IF_NAME = "1.3.6.1.2.1.31.1.1.1.1"  # IF-MIB::ifName
IF_HC_IN_OCTETS = "1.3.6.1.2.1.31.1.1.1.6"  # IF-MIB::ifHCInOctets (Counter64)
IF_HC_OUT_OCTETS = "1.3.6.1.2.1.31.1.1.1.10"  # IF-MIB::ifHCOutOctets (Counter64)
IF_HIGH_SPEED = "1.3.6.1.2.1.31.1.1.1.15"  # IF-MIB::ifHighSpeed (Mbps)

# The ifXTable columns first, the ifTable fallbacks after; all walked together in one GETBULK walk.
# No ifIndex column: most recordings (and some real agents) lack it, the row index says the same.
INTERFACE_COLUMNS = [
    IF_NAME,
    IF_HC_IN_OCTETS,
    IF_HC_OUT_OCTETS,
    IF_HIGH_SPEED,
    IF_DESCR,
    IF_IN_OCTETS,
    IF_OUT_OCTETS,
    IF_SPEED,
]

_Table = dict[str, dict[str, SnmpValue]]


class SnmpProbe:
    """Poll one device over SNMPv2c; a device that does not answer yields a poll with `error`."""

    name: ClassVar[str] = "snmp"

    def __init__(self, device: DeviceSettings) -> None:
        self.device = device

    async def run(self) -> list[ProbeResult]:
        address = endpoint(self.device)
        try:
            async with open_session(self.device) as session:
                scalars = await get_scalars(session, [SYS_UPTIME, SYS_OBJECT_ID])
                table = await walk_columns(session, INTERFACE_COLUMNS)
        except (DeviceUnreachable, DeviceError) as exc:
            # A dead device is data: the collector shows the outage instead of a gap. What pysnmp
            # said is already masked (agent.snmp.walk); the rest is the device's name and address.
            error = error_text(str(exc), secrets=())
            return [SnmpPoll(device=self.device.name, address=address, error=error)]
        uptime = scalars[SYS_UPTIME]
        object_id = scalars[SYS_OBJECT_ID]
        poll = SnmpPoll(
            device=self.device.name,
            address=address,
            sys_object_id=object_id if isinstance(object_id, str) else None,
            sys_uptime_ticks=_counter(uptime),
            interfaces=interfaces_from_table(table),
        )
        return [poll]


def interfaces_from_table(table: _Table) -> list[InterfaceCounters]:
    """Build one `InterfaceCounters` per ifindex seen in any column, sorted by ifindex."""
    indexes = sorted(
        {int(suffix) for rows in table.values() for suffix in rows if suffix.isdigit()}
    )
    return [_interface(table, ifindex) for ifindex in indexes]


def _interface(table: _Table, ifindex: int) -> InterfaceCounters:
    key = str(ifindex)

    def cell(column: str) -> SnmpValue | None:
        return table.get(column, {}).get(key)

    hc_in, hc_out = _counter(cell(IF_HC_IN_OCTETS)), _counter(cell(IF_HC_OUT_OCTETS))
    # Both directions must share one wrap point, so a row is either all 64-bit or all 32-bit.
    bits: Literal[32, 64] = 64
    octets_in, octets_out = hc_in, hc_out
    if hc_in is None and hc_out is None:
        octets_in, octets_out = _counter(cell(IF_IN_OCTETS)), _counter(cell(IF_OUT_OCTETS))
        if octets_in is not None or octets_out is not None:
            bits = 32
    speed_mbps = _counter(cell(IF_HIGH_SPEED))
    if speed_mbps is None and (speed_bps := _counter(cell(IF_SPEED))) is not None:
        # IF-MIB rounds ifHighSpeed to the nearest Mbps; do the same for ifSpeed.
        speed_mbps = (speed_bps + 500_000) // 1_000_000
    return InterfaceCounters(
        ifindex=ifindex,
        name=_text(cell(IF_NAME)) or _text(cell(IF_DESCR)) or f"if{ifindex}",
        octets_in=octets_in,
        octets_out=octets_out,
        counter_bits=bits,
        speed_mbps=speed_mbps,
    )


def _counter(value: SnmpValue | None) -> int | None:
    # Some recordings type a column oddly (a string where a counter belongs): drop, don't crash.
    return value if isinstance(value, int) and value >= 0 else None


def _text(value: SnmpValue | None) -> str:
    return value.strip() if isinstance(value, str) else ""
