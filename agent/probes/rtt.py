"""Round trips to the collector: idle, and while a transfer loads the link.

Each round trip is a small HTTP request on a connection of its own, kept apart from the bulk
streams (a request queued behind a bulk download on the same connection would measure the
queue, not the network). Under load this is what a video lesson or an online test feels; in the
spirit of the IETF draft "Responsiveness under Working Conditions" it is also given as round
trips per minute (RPM = 60,000 / loaded RTT in ms): higher is better.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field

import httpx

PING_PATH = "/api/v1/speedtest/ping"


async def round_trip_ms(client: httpx.AsyncClient) -> float:
    """One timed request; raises httpx errors (including non-2xx answers)."""
    started = time.perf_counter()
    response = await client.get(PING_PATH)
    response.raise_for_status()
    return (time.perf_counter() - started) * 1000


async def idle_rtt_ms(client: httpx.AsyncClient, count: int) -> float:
    """Median of `count` round trips on the idle link (after one to open the connection)."""
    await round_trip_ms(client)
    samples = [await round_trip_ms(client) for _ in range(count)]
    return statistics.median(samples)


@dataclass
class LoadedRtt:
    """Round trips taken every `interval_s` while a transfer runs (see `run`)."""

    client: httpx.AsyncClient
    interval_s: float = 0.1
    samples_ms: list[float] = field(default_factory=list)
    failures: int = 0

    async def run(self) -> None:
        """Until cancelled. A round trip that fails or times out counts as a failure, not data."""
        while True:
            started = time.monotonic()
            try:
                self.samples_ms.append(await round_trip_ms(self.client))
            except httpx.HTTPError:
                self.failures += 1
            await asyncio.sleep(max(0.0, started + self.interval_s - time.monotonic()))

    def median_ms(self) -> float | None:
        return statistics.median(self.samples_ms) if self.samples_ms else None


def responsiveness_rpm(loaded_rtt_ms: float | None) -> float | None:
    """Round trips per minute at `loaded_rtt_ms`."""
    if loaded_rtt_ms is None or loaded_rtt_ms <= 0:
        return None
    return min(60_000 / loaded_rtt_ms, 60_000.0)
