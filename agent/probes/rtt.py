"""Round trips to the collector: idle, and while a transfer loads the link.

Each round trip is a small HTTP request on a connection of its own (`Pinger`), kept apart from
the bulk streams (a request queued behind a bulk download on the same connection would measure
the queue, not the network). It goes through `agent.probes.bulk`, not httpx: httpx spent about
1.4 ms of CPU per request, inside the timed span. Under load this is what a video lesson or an
online test feels; in the spirit of the IETF draft "Responsiveness under Working Conditions" it
is also given as round trips per minute (RPM = 60,000 / loaded RTT in ms): higher is better.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from dataclasses import dataclass, field

from agent.probes.bulk import Connection, Endpoint, HttpStatusError, ProtocolFault

PING_PATH = "/api/v1/speedtest/ping"
# What a round trip that failed can raise (connection refused or reset, timeouts, bad answers).
PING_ERRORS = (OSError, HttpStatusError, ProtocolFault)


class Pinger:
    """Timed requests on one kept connection, opened again if the collector closed it."""

    def __init__(self, endpoint: Endpoint, *, timeout_s: float) -> None:
        self._endpoint = endpoint
        self._timeout_s = timeout_s
        self._conn: Connection | None = None

    async def round_trip_ms(self) -> float:
        """One timed request (the connection is opened untimed); raises PING_ERRORS."""
        if self._conn is None or self._conn.closed:
            self.close()
            self._conn = await Connection.open(self._endpoint, timeout_s=self._timeout_s)
        started = time.perf_counter()
        try:
            await self._conn.request("GET", PING_PATH, timeout_s=self._timeout_s)
        except BaseException:
            self.close()  # a late answer must not be taken for the next request's
            raise
        return (time.perf_counter() - started) * 1000

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


async def idle_rtt_ms(pinger: Pinger, count: int) -> float:
    """Median of `count` round trips on the idle link (after one to open the connection)."""
    await pinger.round_trip_ms()
    samples = [await pinger.round_trip_ms() for _ in range(count)]
    return statistics.median(samples)


@dataclass
class LoadedRtt:
    """Round trips taken every `interval_s` while a transfer runs (see `run`)."""

    pinger: Pinger
    interval_s: float = 0.1
    samples_ms: list[float] = field(default_factory=list)
    failures: int = 0

    async def run(self, *, warmup_s: float = 0.0, grid_from: float | None = None) -> None:
        """Until cancelled. A round trip that fails or times out counts as a failure, not data.

        Round trips start on a grid of `interval_s` from `grid_from` (a `time.monotonic()`,
        default now); one that takes longer than the interval skips the grid points it spans.
        Given the byte sampler's start and a multiple of its interval, each round trip starts
        on the sampler's own wake-up: on a slow link the agent's CPU is mostly wake-ups (about
        0.6 ms of Python each after 100 ms asleep, against 0.2 ms back to back).

        Round trips in the first `warmup_s` are not kept: the transfer is still in slow start
        and has not yet filled the queues whose delay this measures.
        """
        origin = time.monotonic() if grid_from is None else grid_from
        keep_from = origin + warmup_s
        while True:
            started = time.monotonic()
            try:
                rtt_ms = await self.pinger.round_trip_ms()
            except PING_ERRORS:
                if started >= keep_from:
                    self.failures += 1
            else:
                if started >= keep_from:
                    self.samples_ms.append(rtt_ms)
            await asyncio.sleep(self._to_next_point(origin))

    def _to_next_point(self, origin: float) -> float:
        """Seconds from now to the grid's next point."""
        now = time.monotonic()
        points = math.floor((now - origin) / self.interval_s) + 1
        return max(0.0, origin + points * self.interval_s - now)

    def median_ms(self) -> float | None:
        return statistics.median(self.samples_ms) if self.samples_ms else None


def responsiveness_rpm(loaded_rtt_ms: float | None) -> float | None:
    """Round trips per minute at `loaded_rtt_ms`."""
    if loaded_rtt_ms is None or loaded_rtt_ms <= 0:
        return None
    return min(60_000 / loaded_rtt_ms, 60_000.0)
