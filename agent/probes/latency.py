"""Latency, jitter and loss without root or a ping binary.

ICMP needs a raw socket (root or CAP_NET_RAW) or the `ping` binary, neither of which a hardened
agent service has. A timed TCP connect measures the same round trip (SYN out, SYN/ACK back) with
an ordinary socket; a small HTTP request to the collector adds the server's answer on a kept
connection. `probes` are sent `interval_s` apart; one without an answer within `timeout_s` is
lost. The result gives p50 / p90 round trip, jitter (mean absolute difference of consecutive
round trips) and the answered / lost counts.
"""

from __future__ import annotations

import asyncio
import time
from itertools import pairwise
from statistics import fmean
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from agent.probes.base import ProbeResult
from agent.probes.rtt import PING_ERRORS, Pinger
from agent.probes.sampling import percentile
from agent.redact import describe, error_text
from agent.wire import LatencyTest


class LatencySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    method: Literal["tcp_connect", "http"] = "tcp_connect"
    # host:port to measure; empty means the collector's own host and port.
    target: str | None = Field(default=None, max_length=300, pattern=r"^\S+:\d{1,5}$")
    probes: int = Field(default=20, ge=1, le=1000)
    interval_s: float = Field(default=0.2, ge=0.01, le=10)
    timeout_s: float = Field(default=1.0, gt=0, le=30)


class LatencyProbe:
    name: ClassVar[str] = "latency"

    def __init__(
        self,
        *,
        settings: LatencySettings,
        host: str,
        port: int,
        pinger: Pinger | None = None,
        secrets: tuple[str, ...] = (),
    ) -> None:
        """`pinger` (to the collector, with the agent's token) for method "http"."""
        self._settings = settings
        self._host = host
        self._port = port
        self._pinger = pinger
        self._secrets = secrets

    @property
    def target(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{host}:{self._port}"

    async def run(self) -> list[ProbeResult]:
        s = self._settings
        answered: list[float] = []
        lost = 0
        failures: list[str] = []
        for n in range(s.probes):
            started = time.monotonic()
            try:
                async with asyncio.timeout(s.timeout_s):
                    answered.append(await self._round_trip())
            except TimeoutError:
                lost += 1
            except PING_ERRORS as exc:
                lost += 1
                failures.append(describe(exc, self._secrets))
            if n + 1 < s.probes:
                await asyncio.sleep(max(0.0, started + s.interval_s - time.monotonic()))
        error = None
        if not answered:
            why = failures[-1] if failures else f"no answer within {s.timeout_s:g} s"
            error = error_text(f"all {s.probes} probes lost: {why}", self._secrets)
        return [
            LatencyTest(
                target=self.target,
                method=s.method,
                answered=len(answered),
                lost=lost,
                rtt_p50_ms=percentile(answered, 0.5) if answered else None,
                rtt_p90_ms=percentile(answered, 0.9) if answered else None,
                jitter_ms=_jitter(answered),
                error=error,
            )
        ]

    async def _round_trip(self) -> float:
        if self._settings.method == "http":
            if self._pinger is None:
                raise ValueError("method http needs a pinger to the collector")
            return await self._pinger.round_trip_ms()
        started = time.perf_counter()
        _, writer = await asyncio.open_connection(self._host, self._port)
        elapsed = (time.perf_counter() - started) * 1000
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass
        return elapsed


def _jitter(rtts_ms: list[float]) -> float | None:
    if len(rtts_ms) < 2:
        return None
    return fmean(abs(b - a) for a, b in pairwise(rtts_ms))
