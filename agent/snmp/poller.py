"""The daemon's side of the SNMP poller process (`agent.snmp.child`): start it, ask, read.

This module never imports pysnmp: the daemon stays small between jobs. A poller that crashes,
hangs past its deadline or answers nonsense is killed and turned into results with `error`
(one per device polled), so a poll that failed is still data and never silently missing.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from agent.errors import ProbeError
from agent.redact import error_text
from agent.settings import DeviceSettings, SnmpSettings, UplinkSettings
from agent.snmp.child import PollerAnswer, PollerRequest
from agent.uplink import Background
from agent.wire import SnmpPoll

CHILD_COMMAND = (sys.executable, "-m", "agent.snmp.child")
# Beyond the requests' own timeouts: interpreter and pysnmp start-up, on a slow Pi.
STARTUP_ALLOWANCE_S = 20.0
# Requests an uplink reading makes: a GET, then another one `sample_s` later.
REQUESTS_PER_READING = 2


async def poll(
    devices: Sequence[DeviceSettings],
    settings: SnmpSettings | None = None,
    *,
    command: Sequence[str] = CHILD_COMMAND,
) -> list[SnmpPoll]:
    """One poll of each device, in a poller process; failures are polls with `error`.

    `command` is for tests of a poller that misbehaves.
    """
    if not devices:
        return []
    settings = settings or SnmpSettings()
    request = PollerRequest(task="poll", devices=list(devices), snmp=settings)
    # Devices run `concurrency` at a time, each within its own budget.
    waves = -(-len(devices) // settings.concurrency)
    deadline = STARTUP_ALLOWANCE_S + waves * max(d.budget_s for d in devices)
    try:
        answer = await _ask(request, deadline, command)
    except ProbeError as exc:
        return [
            SnmpPoll(device=d.name, address=f"{d.address}:{d.port}", error=str(exc))
            for d in devices
        ]
    return answer.results


async def background(device: DeviceSettings, uplink: UplinkSettings) -> Background:
    """The uplink's traffic (`agent.uplink.Background`); raises ProbeError if not measurable."""
    request = PollerRequest(task="background", devices=[device], uplink=uplink)
    request_s = device.timeout_s * (device.retries + 1)
    deadline = STARTUP_ALLOWANCE_S + uplink.sample_s + REQUESTS_PER_READING * request_s
    answer = await _ask(request, deadline)
    if answer.background is None:
        raise ProbeError("the poller gave no uplink reading")
    b = answer.background
    return Background(in_bps=b.in_bps, out_bps=b.out_bps, link_bps=b.link_bps)


async def _ask(
    request: PollerRequest, deadline_s: float, command: Sequence[str] = CHILD_COMMAND
) -> PollerAnswer:
    secrets = request.secrets()
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(
            process.communicate(request.payload().encode()), deadline_s
        )
    except TimeoutError:
        raise ProbeError(f"the SNMP poller did not finish within {deadline_s:.0f} s") from None
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    try:
        answer = PollerAnswer.model_validate_json(out)
    except ValidationError:
        tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        raise ProbeError(
            error_text(f"the SNMP poller failed (exit {process.returncode}): {tail[0]}", secrets)
        ) from None
    if answer.error is not None:
        raise ProbeError(answer.error)
    return answer
