"""`python -m agent.snmp.child`: the SNMP poller process the daemon starts for each SNMP job.

pysnmp and its MIB machinery take about 30 MB of a Python process and grow with the devices
polled; kept in a process of its own, they are given back after every job and the long-running
daemon stays small. The daemon writes one JSON request to this process's stdin (credentials
included: never on the command line, where `ps` would show them) and reads one JSON answer from
stdout:

    {"task": "poll", "devices": [...]}                         -> {"results": [SnmpPoll, ...]}
    {"task": "background", "devices": [one], "uplink": {...}}  -> {"background": {...}}
    anything that goes wrong                                   -> {"error": "..."} (exit 1)
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
    model_config = ConfigDict(extra="forbid")

    results: list[SnmpPoll] = []
    background: BackgroundAnswer | None = None
    error: str | None = None


async def _serve(request: PollerRequest) -> PollerAnswer:
    if request.task == "poll":
        from agent.snmp.round import snmp_round

        polls = await snmp_round(request.devices, request.secrets(), request.snmp)
        return PollerAnswer(results=polls)
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
    sys.stdout.write(answer.model_dump_json())
    return 0


def _fail(message: str) -> int:
    sys.stdout.write(PollerAnswer(error=message).model_dump_json())
    return 1


if __name__ == "__main__":
    sys.exit(main())
