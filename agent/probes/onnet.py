"""On-net throughput test: school → district collector, i.e. the WAN.

Talks to the collector's `/api/v1/speedtest/*` endpoints over HTTP/1.1 with the agent's token:
first idle round trips, then a download and an upload phase of `duration_s` each, with
`streams_down` / `streams_up` parallel connections. Each stream asks for `request_bytes` at a
time and asks again until the time is up, so the test lasts a fixed time whatever the link
(a fixed byte count would take minutes on a slow link and a fraction of a second on a fast
one). Bytes are sampled every 250 ms (`agent.probes.sampling`); the warm-up is discarded; the
result gives the mean and p90 rate of each direction, the bytes moved, the idle round trip,
the round trip under load and its RPM (`agent.probes.rtt`), and whether the agent's own link
was the limit (`agent.probes.ceiling`).

A failure (collector down mid-test, an HTTP error, a stream cut short) is a result with
`error` set: a failed test is data.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

import httpx

from agent.probes.base import ProbeResult
from agent.probes.ceiling import Ceiling, ceiling_towards
from agent.probes.rtt import LoadedRtt, idle_rtt_ms, responsiveness_rpm
from agent.probes.sampling import ByteMeter, Rates, Sampler, summarize
from agent.redact import describe, error_text
from agent.settings import OnNetSettings
from agent.tls import collector_tls
from agent.wire import ThroughputTest

DOWNLOAD_PATH = "/api/v1/speedtest/download"
UPLOAD_PATH = "/api/v1/speedtest/upload"
UPLOAD_CHUNK_BYTES = 256 * 1024
# An upload's bytes are counted as they are handed to the socket, so the count runs ahead of
# the wire by what the socket holds unsent: by default up to 4 MB per connection, taken in
# jumps, which put 250 ms samples 10-30 % above the link. The kernel takes more only once less
# than this is unsent (more wake-ups: about 0.06 CPU-s per second at 1 Gbit/s).
NOTSENT_LOWAT_BYTES = 64 * 1024
BULK_SOCKET_OPTIONS = [(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT, NOTSENT_LOWAT_BYTES)]
# A piece is counted whole when handed over: about 16 pieces per stream and sample keep the
# samples smooth on a slow link; pieces of up to UPLOAD_CHUNK_BYTES keep the per-piece cost
# low on a fast one.
PIECES_PER_SAMPLE = 16
MIN_PIECE_BYTES = 16 * 1024
# Beyond the test's own time: how long a request may take to answer at all.
REQUEST_TIMEOUT_S = 10.0

Stream = Callable[[httpx.AsyncClient, ByteMeter, float], Coroutine[Any, Any, None]]
T = TypeVar("T")


class MeasurementFailed(Exception):
    """The test could not be completed; the message says why (secrets already masked)."""


class OnNetProbe:
    name: ClassVar[str] = "onnet"

    def __init__(
        self,
        *,
        collector_url: str,
        token: str,
        settings: OnNetSettings,
        ceiling: Ceiling | None = None,
    ) -> None:
        self._url = collector_url
        self._token = token
        self._settings = settings
        self._ceiling = ceiling

    async def run(self) -> list[ProbeResult]:
        ceiling = self._ceiling or self._find_ceiling()
        try:
            return [await self._measure(ceiling)]
        except MeasurementFailed as exc:
            return [self._failed(str(exc), ceiling)]

    async def _measure(self, ceiling: Ceiling) -> ThroughputTest:
        s = self._settings
        headers = {"Authorization": f"Bearer {self._token}"}
        timeout = httpx.Timeout(REQUEST_TIMEOUT_S)
        # One CA bundle for both clients (and the process), none for a plain-http collector.
        tls = collector_tls(self._url)
        bulk_transport = httpx.AsyncHTTPTransport(
            verify=tls,
            limits=httpx.Limits(max_connections=max(s.streams_down, s.streams_up)),
            socket_options=BULK_SOCKET_OPTIONS,
        )
        async with (
            httpx.AsyncClient(
                base_url=self._url, headers=headers, timeout=timeout, transport=bulk_transport
            ) as bulk,
            # Round trips on a connection of their own, never queued behind bulk data.
            httpx.AsyncClient(
                base_url=self._url, headers=headers, timeout=timeout, verify=tls
            ) as pinger,
        ):
            started = time.monotonic()
            idle_ms = await self._guard(idle_rtt_ms(pinger, s.idle_pings))
            loaded = LoadedRtt(pinger, interval_s=s.loaded_ping_interval_s)
            down_bytes, down = await self._phase(
                bulk, loaded, self._download_stream, s.streams_down
            )
            # One chunk of random bytes for all upload streams: they only read it.
            upload = functools.partial(self._upload_stream, os.urandom(UPLOAD_CHUNK_BYTES))
            up_bytes, up = await self._phase(bulk, loaded, upload, s.streams_up)
            duration = time.monotonic() - started
        loaded_ms = loaded.median_ms()
        return ThroughputTest(
            path="onnet",
            server=self._url,
            streams=s.streams_down,
            download_bps=down.mean_bps,
            upload_bps=up.mean_bps,
            download_p90_bps=down.p90_bps,
            upload_p90_bps=up.p90_bps,
            latency_ms=idle_ms,
            loaded_latency_ms=loaded_ms,
            responsiveness_rpm=responsiveness_rpm(loaded_ms),
            download_bytes=down_bytes,
            upload_bytes=up_bytes,
            duration_s=duration,
            agent_link_mbps=ceiling.link_mbps,
            agent_wifi=ceiling.wifi,
            agent_limited=ceiling.limits(down.mean_bps, up.mean_bps, down.p90_bps, up.p90_bps),
            raw=self._details(loaded),
        )

    async def _phase(
        self, client: httpx.AsyncClient, loaded: LoadedRtt, stream: Stream, streams: int
    ) -> tuple[int, Rates]:
        s = self._settings
        meter = ByteMeter()
        pinging = asyncio.create_task(loaded.run())
        try:
            sampler = Sampler(meter, interval_s=s.sample_interval_s, until_s=s.duration_s)
            async with sampler:
                deadline = sampler.started + s.duration_s
                await self._guard(
                    _all_or_none([stream(client, meter, deadline) for _ in range(streams)])
                )
        finally:
            pinging.cancel()
            await asyncio.gather(pinging, return_exceptions=True)
        rates = summarize(sampler.samples, warmup_s=s.warmup_s)
        if rates is None:
            raise MeasurementFailed("no data moved after the warm-up")
        return meter.total, rates

    async def _guard(self, work: Awaitable[T]) -> T:
        """`work`, with the collector's and the network's failures as MeasurementFailed."""
        try:
            return await work
        except httpx.HTTPStatusError as exc:
            raise MeasurementFailed(f"collector answered HTTP {exc.response.status_code}") from None
        except httpx.HTTPError as exc:
            # h11 quotes a refused Authorization header whole, token included.
            raise MeasurementFailed(describe(exc, [self._token])) from None

    async def _download_stream(
        self, client: httpx.AsyncClient, meter: ByteMeter, deadline: float
    ) -> None:
        size = self._settings.request_bytes
        while time.monotonic() < deadline:
            received = 0
            async with client.stream("GET", DOWNLOAD_PATH, params={"bytes": size}) as response:
                response.raise_for_status()
                async for chunk in response.aiter_raw():
                    received += len(chunk)
                    meter.add(len(chunk))
                    if time.monotonic() >= deadline:
                        return
            if received < size:
                raise MeasurementFailed(f"download cut short: {received} of {size} bytes")

    async def _upload_stream(
        self, chunk: bytes, client: httpx.AsyncClient, meter: ByteMeter, deadline: float
    ) -> None:
        pieces = _PieceSizer(self._settings.sample_interval_s)
        while time.monotonic() < deadline:
            body = _upload_body(chunk, self._settings.request_bytes, deadline, meter, pieces)
            response = await client.post(UPLOAD_PATH, content=body)
            response.raise_for_status()

    def _find_ceiling(self) -> Ceiling:
        configured = self._settings.ceiling_mbps
        url = urlsplit(self._url)
        port = url.port or (443 if url.scheme == "https" else 80)
        found = ceiling_towards(url.hostname or "localhost", port)
        if configured is not None:
            return Ceiling(found.interface, configured, found.wifi)
        return found

    def _details(self, loaded: LoadedRtt) -> str:
        s = self._settings
        return json.dumps(
            {
                "streams_down": s.streams_down,
                "streams_up": s.streams_up,
                "duration_s": s.duration_s,
                "warmup_s": s.warmup_s,
                "loaded_round_trips": len(loaded.samples_ms),
                "loaded_round_trips_failed": loaded.failures,
            },
            separators=(",", ":"),
        )

    def _failed(self, error: str, ceiling: Ceiling) -> ThroughputTest:
        return ThroughputTest(
            path="onnet",
            server=self._url,
            streams=self._settings.streams_down,
            error=error_text(error, [self._token]),
            agent_link_mbps=ceiling.link_mbps,
            agent_wifi=ceiling.wifi,
        )


async def _all_or_none(streams: list[Coroutine[Any, Any, None]]) -> None:
    """Run `streams` together; the first failure cancels the others and is raised."""
    tasks = [asyncio.create_task(stream) for stream in streams]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if (exc := task.exception()) is not None:
                raise exc
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class _PieceSizer:
    """The size of a stream's next upload piece, from the rate it has reached so far."""

    def __init__(self, sample_interval_s: float) -> None:
        self._interval_s = sample_interval_s
        self._started = time.monotonic()
        self.sent = 0

    def next_size(self) -> int:
        elapsed = time.monotonic() - self._started
        rate = self.sent / elapsed if elapsed > 0 else 0.0
        size = int(rate * self._interval_s / PIECES_PER_SAMPLE)
        return min(UPLOAD_CHUNK_BYTES, max(MIN_PIECE_BYTES, size))


async def _upload_body(
    chunk: bytes, size: int, deadline: float, meter: ByteMeter, pieces: _PieceSizer
) -> AsyncIterator[bytes]:
    # Random bytes: a compressing middlebox must not make the link look faster than it is.
    remaining = size
    while remaining > 0 and time.monotonic() < deadline:
        piece = chunk[: min(remaining, pieces.next_size())]  # the whole chunk is not copied
        remaining -= len(piece)
        pieces.sent += len(piece)
        meter.add(len(piece))
        yield piece
