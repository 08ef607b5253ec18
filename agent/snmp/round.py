"""One SNMP round: a poll of each device, as `readynet-agent once` and the poller process run it.

Devices are polled concurrently, at most `concurrency` at a time, on one shared SNMP engine: a
dead device costs its own timeout and budget, not the round's. SNMPv3 users are kept in the
engine by user name, so two devices that share a user name with different keys take turns.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from contextlib import AsyncExitStack

from agent.errors import ConfigError
from agent.redact import scrub
from agent.settings import DeviceSettings, SnmpSettings
from agent.snmp.device import poll_device
from agent.snmp.profile import ProfileSet, load_profiles
from agent.snmp.walk import close_engine, endpoint, new_engine
from agent.wire import SnmpPoll


async def snmp_round(
    devices: Sequence[DeviceSettings],
    secrets: Sequence[str],
    settings: SnmpSettings | None = None,
    profiles: ProfileSet | None = None,
) -> list[SnmpPoll]:
    """One poll per device, in the devices' order; a device that fails gives a poll with `error`."""
    settings = settings or SnmpSettings()
    try:
        profiles = profiles or load_profiles(settings.profile_dirs)
    except ConfigError as exc:
        return [_failed(device, f"device profiles: {exc}") for device in devices]
    gate = asyncio.Semaphore(settings.concurrency)
    turns = _v3_turns(devices)
    engine = new_engine()

    async def one(device: DeviceSettings) -> SnmpPoll:
        if device.profile is not None and device.profile not in profiles.profiles:
            return _failed(device, f"no device profile named {device.profile!r}")
        async with AsyncExitStack() as stack:
            if device.name in turns:
                await stack.enter_async_context(turns[device.name])
            await stack.enter_async_context(gate)
            return await poll_device(
                device, profiles, engine=engine, max_repetitions=settings.max_repetitions
            )
        raise AssertionError("unreachable")  # for mypy: the with block returns

    try:
        polls = await asyncio.gather(*(one(device) for device in devices))
    finally:
        close_engine(engine)
    return [scrub(poll, secrets) for poll in polls]


def _v3_turns(devices: Sequence[DeviceSettings]) -> dict[str, asyncio.Lock]:
    """device name → a lock shared with the devices whose v3 user name is the same but whose
    keys differ (pysnmp's engine holds one set of keys per user name)."""
    by_user: dict[str, list[DeviceSettings]] = defaultdict(list)
    for device in devices:
        if device.auth.version == "3" and device.auth.user is not None:
            by_user[device.auth.user].append(device)
    turns: dict[str, asyncio.Lock] = {}
    for same_user in by_user.values():
        keys = {(*d.auth.secrets(), d.auth.auth_protocol, d.auth.priv_protocol) for d in same_user}
        if len(keys) > 1:
            lock = asyncio.Lock()
            turns.update({d.name: lock for d in same_user})
    return turns


def _failed(device: DeviceSettings, error: str) -> SnmpPoll:
    return SnmpPoll(device=device.name, address=endpoint(device), error=error)
