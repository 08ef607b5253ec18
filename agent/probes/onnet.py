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
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

import h11

from agent.probes.base import ProbeResult
from agent.probes.bulk import (
    RECEIVE_BUFFER_BYTES,
    Connection,
    Endpoint,
    HttpStatusError,
    Moving,
    PhaseMeter,
    ProtocolFault,
    StreamCut,
    UploadConnection,
    UploadSource,
)
from agent.probes.ceiling import Ceiling, ceiling_towards
from agent.probes.rtt import LoadedRtt, Pinger, idle_rtt_ms, responsiveness_rpm
from agent.probes.sampling import Rates, Sampler, summarize
from agent.redact import describe, error_text
from agent.settings import OnNetSettings
from agent.tls import collector_ssl_context
from agent.wire import ThroughputTest

DOWNLOAD_PATH = "/api/v1/speedtest/download"
UPLOAD_PATH = "/api/v1/speedtest/upload"
# Beyond the test's own time: how long a connection or an answer may take at all.
REQUEST_TIMEOUT_S = 10.0

Stream = Callable[[PhaseMeter, float], Coroutine[Any, Any, None]]
T = TypeVar("T")
C = TypeVar("C", bound=Moving)


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
        self._endpoint: Endpoint | None = None
        # Download bodies are read here by every stream and never looked at.
        self._receive_buffer = memoryview(bytearray(RECEIVE_BUFFER_BYTES))

    async def run(self) -> list[ProbeResult]:
        ceiling = self._ceiling or self._find_ceiling()
        try:
            return [await self._measure(ceiling)]
        except MeasurementFailed as exc:
            return [self._failed(str(exc), ceiling)]

    async def _measure(self, ceiling: Ceiling) -> ThroughputTest:
        s = self._settings
        # One CA bundle for the process, none for a plain-http collector.
        self._endpoint = self._guard_sync(
            lambda: Endpoint.from_url(
                self._url, token=self._token, tls=collector_ssl_context(self._url)
            )
        )
        # Round trips on a connection of their own, never queued behind bulk data.
        pinger = Pinger(self._endpoint, timeout_s=REQUEST_TIMEOUT_S)
        source = UploadSource(in_memory=self._endpoint.tls is not None)
        try:
            started = time.monotonic()
            idle_ms = await self._guard(idle_rtt_ms(pinger, s.idle_pings))
            loaded = LoadedRtt(pinger, interval_s=s.loaded_ping_interval_s)
            down_bytes, down = await self._phase(
                PhaseMeter("down"), loaded, self._download_stream, s.streams_down
            )
            up_bytes, up = await self._phase(
                PhaseMeter("up"),
                loaded,
                lambda meter, deadline: self._upload_stream(source, meter, deadline),
                s.streams_up,
            )
            duration = time.monotonic() - started
        finally:
            pinger.close()
            source.close()
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
        self, meter: PhaseMeter, loaded: LoadedRtt, stream: Stream, streams: int
    ) -> tuple[int, Rates]:
        s = self._settings
        sampler = Sampler(meter, interval_s=s.sample_interval_s, until_s=s.duration_s)
        async with sampler:
            # Round trips on the sampler's grid: they share its wake-ups (LoadedRtt.run).
            pinging = asyncio.create_task(
                loaded.run(warmup_s=s.warmup_s, grid_from=sampler.started)
            )
            try:
                deadline = sampler.started + s.duration_s
                await self._guard(_all_or_none([stream(meter, deadline) for _ in range(streams)]))
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
        except (HttpStatusError, StreamCut, ProtocolFault) as exc:
            raise MeasurementFailed(self._masked(str(exc))) from None
        except TimeoutError:
            raise MeasurementFailed(
                f"no answer from the collector within {REQUEST_TIMEOUT_S:g} s"
            ) from None
        except (OSError, h11.LocalProtocolError) as exc:
            # h11 quotes a refused Authorization header whole, token included.
            raise MeasurementFailed(describe(exc, [self._token])) from None

    def _guard_sync(self, work: Callable[[], T]) -> T:
        try:
            return work()
        except ValueError as exc:
            raise MeasurementFailed(self._masked(str(exc))) from None

    def _masked(self, text: str) -> str:
        return error_text(text, [self._token])

    @asynccontextmanager
    async def _watched(self, meter: PhaseMeter, conn: C) -> AsyncIterator[C]:
        meter.watch(conn)
        try:
            yield conn
        finally:
            meter.forget(conn)  # what it moved stays counted
            conn.close()

    async def _download_stream(self, meter: PhaseMeter, deadline: float) -> None:
        target = f"{DOWNLOAD_PATH}?bytes={self._settings.request_bytes}"
        assert self._endpoint is not None  # set by _measure
        opened = await Connection.open(
            self._endpoint, timeout_s=REQUEST_TIMEOUT_S, buffer=self._receive_buffer
        )
        async with self._watched(meter, opened) as conn:
            while time.monotonic() < deadline:
                if not await conn.download(target, deadline=deadline):
                    return

    async def _upload_stream(
        self, source: UploadSource, meter: PhaseMeter, deadline: float
    ) -> None:
        size = self._settings.request_bytes
        assert self._endpoint is not None  # set by _measure
        opened = await UploadConnection.open(self._endpoint, timeout_s=REQUEST_TIMEOUT_S)
        async with self._watched(meter, opened) as conn:
            while time.monotonic() < deadline:
                done = await conn.upload(
                    UPLOAD_PATH, size, source, deadline=deadline, timeout_s=REQUEST_TIMEOUT_S
                )
                if not done:
                    return

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
