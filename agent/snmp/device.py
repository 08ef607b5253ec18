"""One poll of one device: identify it, pick its profile, walk what the profile needs, read out.

A poll makes three or four requests whatever the profile: one GET of sysDescr, sysObjectID and
sysUpTime; one GET of the candidate profiles' probe OIDs when a match needs one; one GETBULK walk
of every column the profile needs (interfaces, AP and SSID tables, summed columns) together; one
GET of the profile's scalar totals. The whole poll runs under the device's time budget, and
everything that goes wrong becomes a poll with `error`: a dead device is data. A controller with
more rows than a poll may carry (`agent.wire.MAX_*_PER_POLL`) keeps its totals and the first
rows (interfaces with an uplink role always).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pydantic import ValidationError

from agent.errors import ConfigError, DeviceError, DeviceUnreachable
from agent.redact import error_text
from agent.settings import DeviceSettings
from agent.snmp.profile import DeviceProfile, ProfileSet, Source
from agent.snmp.readout import read_interfaces, read_wifi
from agent.snmp.walk import SnmpSession, endpoint, get_scalars, open_session, walk_columns
from agent.wire import (
    MAX_APS_PER_POLL,
    MAX_INTERFACES_PER_POLL,
    MAX_SSIDS_PER_POLL,
    UINT32_MAX,
    InterfaceCounters,
    SnmpPoll,
)

SYS_DESCR = "1.3.6.1.2.1.1.1.0"  # SNMPv2-MIB::sysDescr.0
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"  # SNMPv2-MIB::sysObjectID.0
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"  # SNMPv2-MIB::sysUpTime.0


async def poll_device(
    device: DeviceSettings,
    profiles: ProfileSet,
    *,
    engine: Any = None,
    max_repetitions: int = 25,
) -> SnmpPoll:
    """Poll `device` once; never raises for anything the device does."""
    started = time.monotonic()
    address = endpoint(device)
    try:
        async with asyncio.timeout(device.budget_s):
            poll = await _poll(device, profiles, engine, max_repetitions)
    except TimeoutError:
        budget = f"{device.budget_s:g} s"
        error = f"{device.name} ({address}): the poll took longer than its {budget} budget"
        return SnmpPoll(device=device.name, address=address, error=error)
    except (DeviceUnreachable, DeviceError) as exc:
        # What pysnmp said is already masked (agent.snmp.walk); the rest is name and address.
        return SnmpPoll(device=device.name, address=address, error=error_text(str(exc), ()))
    except ConfigError as exc:
        # A forced profile that is not loaded (snmp_round checks first; SnmpProbe does not).
        error = error_text(f"{device.name} ({address}): {exc}", device.auth.secrets())
        return SnmpPoll(device=device.name, address=address, error=error)
    except ValidationError as exc:
        # The readout keeps every value inside the wire's types; should one slip through, this
        # device's poll says so instead of failing the round.
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        error = f"{device.name} ({address}): an answer does not fit a poll: {where}: {first['msg']}"
        return SnmpPoll(device=device.name, address=address, error=error_text(error, ()))
    return poll.model_copy(update={"duration_s": round(time.monotonic() - started, 6)})


async def _poll(
    device: DeviceSettings, profiles: ProfileSet, engine: Any, max_repetitions: int
) -> SnmpPoll:
    async with open_session(device, engine) as session:
        system = await get_scalars(session, [SYS_DESCR, SYS_OBJECT_ID, SYS_UPTIME])
        object_id = _text(system[SYS_OBJECT_ID])
        profile = await _profile(session, profiles, object_id, _text(system[SYS_DESCR]))
        columns = _columns(profiles, profile)
        table = await walk_columns(session, columns, max_repetitions) if columns else {}
        gets = [s.get for s in _sources(profile) if s.get is not None]
        scalars = await get_scalars(session, gets)
    interfaces = []
    if profile.walk_interfaces:
        interfaces = read_interfaces(table, profiles.interfaces(profile), device.uplinks)
        interfaces = _first_interfaces(interfaces)
    wifi = read_wifi(table, scalars, profile)
    uptime = system[SYS_UPTIME]
    return SnmpPoll(
        device=device.name,
        address=endpoint(device),
        profile=profile.name,
        sys_object_id=object_id[:200] or None,
        sys_uptime_ticks=uptime if isinstance(uptime, int) and 0 <= uptime <= UINT32_MAX else None,
        interfaces=interfaces,
        clients=wifi.clients,
        aps_up=wifi.aps_up,
        aps_total=wifi.aps_total,
        aps=wifi.aps[:MAX_APS_PER_POLL],
        ssids=wifi.ssids[:MAX_SSIDS_PER_POLL],
    )


def _first_interfaces(rows: list[InterfaceCounters]) -> list[InterfaceCounters]:
    """At most MAX_INTERFACES_PER_POLL rows, the uplinks (rows with a role) among them."""
    if len(rows) <= MAX_INTERFACES_PER_POLL:
        return rows
    roles = [row for row in rows if row.role is not None]
    rest = [row for row in rows if row.role is None][: MAX_INTERFACES_PER_POLL - len(roles)]
    return sorted([*roles, *rest], key=lambda row: row.ifindex)


async def _profile(
    session: SnmpSession, profiles: ProfileSet, object_id: str, descr: str
) -> DeviceProfile:
    forced = session.device.profile
    if forced is not None:
        return profiles.get(forced)
    candidates = profiles.candidates(sys_object_id=object_id, sys_descr=descr)
    probes = sorted({p.match.probe for p in candidates if p.match and p.match.probe})
    probed = await get_scalars(session, probes) if probes else {}
    return profiles.choose(sys_object_id=object_id, sys_descr=descr, probed=probed)


def _columns(profiles: ProfileSet, profile: DeviceProfile) -> list[str]:
    columns: list[str] = []
    if profile.walk_interfaces:
        columns += profiles.interfaces(profile).columns()
    for table in (profile.aps, profile.ssids):
        if table is not None:
            columns += table.columns()
    columns += [s.sum for s in _sources(profile) if s.sum is not None]
    return list(dict.fromkeys(columns))


def _sources(profile: DeviceProfile) -> list[Source]:
    totals = profile.totals
    return [s for s in (totals.clients, totals.aps_up, totals.aps_total) if s is not None]


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
