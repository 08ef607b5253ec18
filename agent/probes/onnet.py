"""On-net throughput test: school → district collector, i.e. the WAN.

Talks to the collector's `/api/v1/speedtest/*` endpoints over HTTP with the agent's token. Each of
`streams` parallel connections moves an equal share of the bytes; the rate is all bytes moved
divided by the wall time from the first byte requested to the last stream finishing, cut short at
`max_seconds` so a slow link still yields a result instead of a timeout.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any, ClassVar

import httpx

from agent.probes.base import ProbeResult
from agent.redact import describe, error_text
from agent.settings import OnNetSettings
from agent.wire import ThroughputTest

PING_COUNT = 5
UPLOAD_CHUNK_BYTES = 256 * 1024


class OnNetProbe:
    name: ClassVar[str] = "onnet"

    def __init__(self, *, collector_url: str, token: str, settings: OnNetSettings) -> None:
        self._url = collector_url
        self._token = token
        self._settings = settings

    async def run(self) -> list[ProbeResult]:
        timeout = httpx.Timeout(self._settings.max_seconds + 10)
        headers = {"Authorization": f"Bearer {self._token}"}
        async with httpx.AsyncClient(
            base_url=self._url, headers=headers, timeout=timeout
        ) as client:
            try:
                latency_ms = await _latency_ms(client)
                down_bytes, down_s = await self._download(client)
                up_bytes, up_s = await self._upload(client)
            except httpx.HTTPStatusError as exc:
                return [self._failed(f"collector answered HTTP {exc.response.status_code}")]
            except httpx.HTTPError as exc:
                # h11 quotes a refused Authorization header whole, token included.
                return [self._failed(describe(exc, [self._token]))]
        return [
            ThroughputTest(
                path="onnet",
                server=self._url,
                streams=self._settings.streams,
                download_bps=down_bytes * 8 / down_s,
                upload_bps=up_bytes * 8 / up_s,
                latency_ms=latency_ms,
                download_bytes=down_bytes,
                upload_bytes=up_bytes,
                duration_s=down_s + up_s,
            )
        ]

    def _failed(self, error: str) -> ThroughputTest:
        return ThroughputTest(
            path="onnet",
            server=self._url,
            streams=self._settings.streams,
            error=error_text(error, [self._token]),
        )

    async def _download(self, client: httpx.AsyncClient) -> tuple[int, float]:
        share = max(1, self._settings.download_bytes // self._settings.streams)
        deadline = time.monotonic() + self._settings.max_seconds
        return await _timed(
            [_download_stream(client, share, deadline) for _ in range(self._settings.streams)]
        )

    async def _upload(self, client: httpx.AsyncClient) -> tuple[int, float]:
        share = max(1, self._settings.upload_bytes // self._settings.streams)
        deadline = time.monotonic() + self._settings.max_seconds
        return await _timed(
            [_upload_stream(client, share, deadline) for _ in range(self._settings.streams)]
        )


async def _timed(streams: list[Coroutine[Any, Any, int]]) -> tuple[int, float]:
    started = time.monotonic()
    moved = await asyncio.gather(*streams)
    elapsed = max(time.monotonic() - started, 1e-6)
    return sum(moved), elapsed


async def _latency_ms(client: httpx.AsyncClient) -> float:
    samples = []
    for _ in range(PING_COUNT):
        started = time.perf_counter()
        response = await client.get("/api/v1/speedtest/ping")
        response.raise_for_status()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


async def _download_stream(client: httpx.AsyncClient, size: int, deadline: float) -> int:
    received = 0
    async with client.stream("GET", "/api/v1/speedtest/download", params={"bytes": size}) as resp:
        resp.raise_for_status()
        async for chunk in resp.aiter_raw():
            received += len(chunk)
            if time.monotonic() >= deadline:
                break
    return received


async def _upload_stream(client: httpx.AsyncClient, size: int, deadline: float) -> int:
    response = await client.post("/api/v1/speedtest/upload", content=_upload_body(size, deadline))
    response.raise_for_status()
    received: int = response.json()["bytes"]
    return received


async def _upload_body(size: int, deadline: float) -> AsyncIterator[bytes]:
    # Random bytes: a compressing middlebox must not make the link look faster than it is.
    chunk = os.urandom(UPLOAD_CHUNK_BYTES)
    remaining = size
    while remaining > 0 and time.monotonic() < deadline:
        piece = chunk[: min(remaining, len(chunk))]
        remaining -= len(piece)
        yield piece
