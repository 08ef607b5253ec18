"""One SNMP round: a poll of each device, as `readynet-agent once` and the poller process run it.

Devices are polled concurrently, at most `concurrency` at a time, on one shared SNMP engine: a
dead device costs its own timeout and budget, not the round's. SNMPv3 users are kept in the
engine by user name, so two devices that share a user name with different keys take turns.
`snmp_round` hands back every poll at the end; `poll_each` hands each one over as soon as it is
done, so the poller process writes it out and keeps none (`agent.snmp.child`).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Sequence
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
    polls: list[SnmpPoll | None] = [None] * len(devices)

    def keep(index: int, poll: SnmpPoll) -> None:
        polls[index] = poll

    await poll_each(devices, secrets, keep, settings, profiles)
    return [poll for poll in polls if poll is not None]


async def poll_each(
    devices: Sequence[DeviceSettings],
    secrets: Sequence[str],
    on_poll: Callable[[int, SnmpPoll], None],
    settings: SnmpSettings | None = None,
    profiles: ProfileSet | None = None,
) -> None:
    """Poll each device, as `snmp_round` does, calling ``on_poll(index in devices, poll)`` as soon
    as a device's poll is done (in the order they finish) and keeping none of them.

    An exception from `on_poll` ends the round with it.
    """
    settings = settings or SnmpSettings()
    try:
        profiles = profiles or load_profiles(settings.profile_dirs)
    except ConfigError as exc:
        for index, device in enumerate(devices):
            on_poll(index, scrub(_failed(device, f"device profiles: {exc}"), secrets))
        return
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

    async def handed_over(index: int, device: DeviceSettings) -> None:
        on_poll(index, scrub(await one(device), secrets))

    try:
        await asyncio.gather(*(handed_over(i, device) for i, device in enumerate(devices)))
    finally:
        close_engine(engine)


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
