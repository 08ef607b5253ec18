"""The daemon's side of the SNMP poller process (`agent.snmp.child`): start it, ask, read.

This module never imports pysnmp: the daemon stays small between jobs. The poller writes each
device's poll as soon as it is done, one JSON line each, and this side reads them as they come.
A poller that crashes, hangs past its deadline or answers nonsense is killed; the polls it wrote
before are kept, and each device it gave no poll for becomes a poll with `error`, so a poll that
failed is still data and never silently missing.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Sequence

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
# The longest line read from the poller: one device's poll (a controller with a few thousand
# access points is a few MB); longer is nonsense.
LINE_LIMIT_BYTES = 64 * 1024 * 1024
# What of the poller's stderr is kept for an error message: its last line is quoted.
STDERR_TAIL_BYTES = 8192
# After a kill, how long to wait for the poller's stderr to end.
STDERR_GRACE_S = 1.0


class _Unreadable(Exception):
    """A line from the poller that is not an answer to this request."""


async def poll(
    devices: Sequence[DeviceSettings],
    settings: SnmpSettings | None = None,
    *,
    command: Sequence[str] = CHILD_COMMAND,
) -> list[SnmpPoll]:
    """One poll of each device, in the devices' order, in a poller process; failures are polls
    with `error`.

    `command` is for tests of a poller that misbehaves.
    """
    if not devices:
        return []
    settings = settings or SnmpSettings()
    request = PollerRequest(task="poll", devices=list(devices), snmp=settings)
    # Devices run `concurrency` at a time, each within its own budget.
    waves = -(-len(devices) // settings.concurrency)
    deadline = STARTUP_ALLOWANCE_S + waves * max(d.budget_s for d in devices)
    polls: list[SnmpPoll | None] = [None] * len(devices)

    def take(answer: PollerAnswer) -> None:
        index = answer.index
        if index is None or answer.poll is None or not 0 <= index < len(devices):
            raise _Unreadable
        if polls[index] is not None or answer.poll.device != devices[index].name:
            raise _Unreadable
        polls[index] = answer.poll

    failure = "the SNMP poller gave no poll of this device"
    try:
        await _ask(request, deadline, command, take)
    except ProbeError as exc:
        failure = str(exc)
    return [
        SnmpPoll(device=d.name, address=f"{d.address}:{d.port}", error=failure) if p is None else p
        for d, p in zip(devices, polls, strict=True)
    ]


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
    request: PollerRequest,
    deadline_s: float,
    command: Sequence[str] = CHILD_COMMAND,
    on_poll: Callable[[PollerAnswer], None] | None = None,
) -> PollerAnswer:
    """Run the poller on `request`: each poll line goes to `on_poll` as it comes; the last line
    (done, background) is returned. Raises ProbeError if the poller fails, says it failed,
    answers nonsense or is not done within `deadline_s` (it is killed then)."""
    secrets = request.secrets()
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        limit=LINE_LIMIT_BYTES,
    )
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    feeding = asyncio.create_task(_feed(process.stdin, request.payload().encode()))
    stderr = asyncio.create_task(_tail(process.stderr))
    final: PollerAnswer | None = None
    unreadable = False
    try:
        async with asyncio.timeout(deadline_s):
            while final is None:
                line = await process.stdout.readline()
                if not line.endswith(b"\n"):
                    break  # ended without a last line, or in the middle of one: a crash
                answer = PollerAnswer.model_validate_json(line)
                if answer.poll is None and answer.index is None:
                    final = answer
                elif on_poll is None:
                    raise _Unreadable
                else:
                    on_poll(answer)
            await process.wait()
    except TimeoutError:
        if final is None:
            raise ProbeError(f"the SNMP poller did not finish within {deadline_s:.0f} s") from None
        # It answered in full, then did not exit: what it said stands (it is killed below).
    except (ValidationError, ValueError, _Unreadable):
        # Not JSON, not an answer, or a line past LINE_LIMIT_BYTES (StreamReader's ValueError).
        unreadable = True
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        feeding.cancel()
        done, _ = await asyncio.wait({stderr}, timeout=STDERR_GRACE_S)
        if not done:
            stderr.cancel()
    if final is None or unreadable:
        ended = stderr.done() and not stderr.cancelled() and stderr.exception() is None
        err = stderr.result() if ended else b""
        tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        if unreadable:
            problem = f"the SNMP poller answered nonsense and was stopped: {tail[0]}"
        else:
            problem = f"the SNMP poller failed (exit {process.returncode}): {tail[0]}"
        raise ProbeError(error_text(problem, secrets))
    if final.error is not None:
        raise ProbeError(final.error)
    return final


async def _feed(stdin: asyncio.StreamWriter, payload: bytes) -> None:
    """Write the request and close stdin; a poller that died before reading it is not an error
    here (its exit status says what happened)."""
    try:
        stdin.write(payload)
        await stdin.drain()
        stdin.close()
    except (BrokenPipeError, ConnectionResetError):
        pass


async def _tail(stream: asyncio.StreamReader) -> bytes:
    """The last STDERR_TAIL_BYTES of `stream`, read to its end (a poller that fills its stderr
    pipe would otherwise stop)."""
    kept = b""
    while chunk := await stream.read(65536):
        kept = (kept + chunk)[-STDERR_TAIL_BYTES:]
    return kept
