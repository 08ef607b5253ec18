"""`python -m agent.snmp.child`: the SNMP poller process the daemon starts for each SNMP job.

A round's polls (and, for SNMPv3, pysnmp and its MIB machinery) take tens of MB of a Python
process; kept in a process of its own, they are given back after every job and the long-running
daemon stays small. The daemon writes one JSON request to this process's stdin (credentials
included: never on the command line, where `ps` would show them) and reads JSON lines from
stdout, one `PollerAnswer` each:

    {"task": "poll", "devices": [...]}   -> {"index": i, "poll": SnmpPoll} per device, written as
                                            soon as its poll is done (in the order they finish,
                                            none kept here), then {"done": true}
    {"task": "background", "devices": [one], "uplink": {...}}  -> {"background": {...}}
    anything that goes wrong             -> {"error": "..."} (exit 1), after the polls done so far
"""

from __future__ import annotations

import asyncio
import sys
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from agent.errors import ReadyNetError
from agent.redact import error_text
from agent.settings import DeviceSettings, SnmpSettings, UplinkSettings
from agent.wire import SnmpPoll


class PollerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: Literal["poll", "background"]
    devices: list[DeviceSettings]
    snmp: SnmpSettings = SnmpSettings()
    uplink: UplinkSettings | None = None

    def payload(self) -> str:
        """This request as JSON, communities in clear (pydantic masks SecretStr otherwise)."""
        return self.model_dump_json(context={"reveal": True})

    def secrets(self) -> list[str]:
        return [secret for d in self.devices for secret in d.auth.secrets()]


class BackgroundAnswer(BaseModel):
    in_bps: float
    out_bps: float
    link_bps: float | None


class PollerAnswer(BaseModel):
    """One line of the poller's stdout: a device's poll, or the last line (done, background or
    error)."""

    model_config = ConfigDict(extra="forbid")

    index: int | None = None  # of the polled device in the request's `devices`
    poll: SnmpPoll | None = None
    done: bool = False
    background: BackgroundAnswer | None = None
    error: str | None = None


def _write_poll(index: int, poll: SnmpPoll) -> None:
    # Written and flushed at once: the daemon keeps what came if this process dies or hangs.
    out = sys.stdout.buffer
    out.write(b'{"index":%d,"poll":%s}\n' % (index, poll.__pydantic_serializer__.to_json(poll)))
    out.flush()


async def _serve(request: PollerRequest) -> PollerAnswer:
    if request.task == "poll":
        from agent.snmp.round import poll_each

        await poll_each(request.devices, request.secrets(), _write_poll, request.snmp)
        return PollerAnswer(done=True)
    from agent.snmp.background import measure_background

    if request.uplink is None or len(request.devices) != 1:
        raise ValueError("a background task needs one device and the uplink")
    measured = await measure_background(request.devices[0], request.uplink)
    return PollerAnswer(
        background=BackgroundAnswer(
            in_bps=measured.in_bps, out_bps=measured.out_bps, link_bps=measured.link_bps
        )
    )


def main() -> int:
    try:
        request = PollerRequest.model_validate_json(sys.stdin.buffer.read())
    except ValidationError as exc:
        # Not the message: it quotes the input, and the communities are in it.
        return _fail(f"unreadable poller request ({exc.error_count()} problems)")
    try:
        answer = asyncio.run(_serve(request))
    except (ReadyNetError, ValueError, OSError) as exc:
        return _fail(error_text(f"{type(exc).__name__}: {exc}", request.secrets()))
    _write(answer)
    return 0


def _fail(message: str) -> int:
    _write(PollerAnswer(error=message))
    return 1


def _write(answer: PollerAnswer) -> None:
    sys.stdout.buffer.write(answer.model_dump_json().encode() + b"\n")
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    sys.exit(main())
