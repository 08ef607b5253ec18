"""The on-net test's own HTTP/1.1 connections (`agent.probes.bulk`) against a real collector.

Plain and TLS (uvicorn serving the collector with a certificate from a test CA), the kernel's
byte counts, answers that end the connection, and errors that must say what happened.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from agent.probes import onnet
from agent.probes.bulk import (
    Connection,
    Endpoint,
    HttpStatusError,
    PhaseMeter,
    UploadConnection,
    UploadSource,
)
from agent.probes.ceiling import Ceiling
from agent.probes.onnet import DOWNLOAD_PATH, UPLOAD_PATH, OnNetProbe
from agent.probes.rtt import Pinger
from agent.settings import OnNetSettings
from agent.wire import ThroughputTest
from tests.fixtures.collector import LOOPBACK_BUDGETS, RunningCollector, run_collector

SIZE = 3_000_000
QUICK = OnNetSettings(
    duration_s=1.2,
    warmup_s=0.4,
    sample_interval_s=0.1,
    request_bytes=4_000_000,
    idle_pings=3,
    loaded_ping_interval_s=0.05,
)


@pytest.fixture
def test_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_collector(
    sqlite_url: str, tmp_path: Path, test_ca: trustme.CA
) -> Iterator[RunningCollector]:
    """The collector served over https by uvicorn, with a certificate from `test_ca`."""
    cert = test_ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    options = {"ssl_certfile": str(cert_file), "ssl_keyfile": str(key_file)}
    with run_collector(sqlite_url, server_options=options, **LOOPBACK_BUDGETS) as collector:
        yield collector


def _client_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def _download_upload_ping(endpoint: Endpoint) -> tuple[int, int]:
    """One download and one upload of SIZE bytes and a ping; the kernel's byte counts."""
    down, up = PhaseMeter("down"), PhaseMeter("up")
    source = UploadSource(in_memory=endpoint.tls is not None)
    deadline = time.monotonic() + 30
    try:
        async with await Connection.open(endpoint, timeout_s=5) as conn:
            down.watch(conn)
            assert await conn.download(f"{DOWNLOAD_PATH}?bytes={SIZE}", deadline=deadline)
            assert await conn.download(f"{DOWNLOAD_PATH}?bytes={SIZE}", deadline=deadline)
            down.forget(conn)
            # The same kept connection still answers a small request.
            assert await conn.request("GET", "/api/v1/speedtest/ping", timeout_s=5) is not None
        async with await UploadConnection.open(endpoint, timeout_s=5) as sender:
            up.watch(sender)
            for _ in range(2):  # two requests on one kept connection
                assert await sender.upload(
                    UPLOAD_PATH, SIZE, source, deadline=deadline, timeout_s=5
                )
            up.forget(sender)
    finally:
        source.close()
    return down.total, up.total


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_download_upload_and_ping_on_one_kept_connection(
    scheme: str, request: pytest.FixtureRequest, test_ca: trustme.CA
) -> None:
    fixture = "tls_collector" if scheme == "https" else "collector"
    server: RunningCollector = request.getfixturevalue(fixture)
    token = server.enroll(server.add_school())
    tls = _client_tls(test_ca) if scheme == "https" else None
    endpoint = Endpoint.from_url(server.url, token=token, tls=tls)
    down, up = await _download_upload_ping(endpoint)
    # Counted by the kernel: the bodies, plus heads (and TLS records) around them.
    overhead = 1.01 if scheme == "https" else 1.001
    assert 2 * SIZE <= down <= 2 * SIZE * overhead + 2000
    assert 2 * SIZE <= up <= 2 * SIZE * overhead + 2000


async def test_on_net_probe_over_https(
    tls_collector: RunningCollector, test_ca: trustme.CA, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = tls_collector.enroll(tls_collector.add_school())
    # The district's CA, as the agent would be told to trust it.
    monkeypatch.setattr(onnet, "collector_ssl_context", lambda url: _client_tls(test_ca))
    probe = OnNetProbe(
        collector_url=tls_collector.url,
        token=token,
        settings=QUICK,
        ceiling=Ceiling("lo", None, False),
    )
    [result] = await probe.run()
    assert isinstance(result, ThroughputTest)
    assert result.error is None, result.error
    assert result.download_bps is not None and result.download_bps > 20e6
    assert result.upload_bps is not None and result.upload_bps > 20e6


async def test_a_certificate_nobody_vouches_for_is_an_error_result(
    tls_collector: RunningCollector,
) -> None:
    token = tls_collector.enroll(tls_collector.add_school())
    probe = OnNetProbe(
        collector_url=tls_collector.url,
        token=token,
        settings=QUICK,
        ceiling=Ceiling("lo", None, False),
    )
    [result] = await probe.run()
    assert result.error is not None
    assert result.error.startswith("SSLCertVerificationError"), result.error
    assert token not in result.error


async def test_an_upload_refused_before_its_body_says_why(collector: RunningCollector) -> None:
    collector.add_school()
    endpoint = Endpoint.from_url(collector.url, token="not-enrolled")
    source = UploadSource()
    try:
        async with await UploadConnection.open(endpoint, timeout_s=5) as conn:
            with pytest.raises(HttpStatusError) as refused:
                await conn.upload(
                    UPLOAD_PATH, 20_000_000, source, deadline=time.monotonic() + 30, timeout_s=5
                )
    finally:
        source.close()
    assert refused.value.status == 401


async def test_a_stream_stops_at_its_deadline(collector: RunningCollector) -> None:
    token = collector.enroll(collector.add_school())
    endpoint = Endpoint.from_url(collector.url, token=token)
    meter = PhaseMeter("down")
    async with await Connection.open(endpoint, timeout_s=5) as conn:
        meter.watch(conn)
        started = time.monotonic()
        # 1 GB in 50 ms would be 160 Gbit/s, far more than loopback moves: the deadline ends it.
        finished = await conn.download(f"{DOWNLOAD_PATH}?bytes=1000000000", deadline=started + 0.05)
        meter.forget(conn)
    assert finished is False
    assert time.monotonic() - started < 1.0
    assert meter.total > 0


async def test_an_upload_stops_at_its_deadline(collector: RunningCollector) -> None:
    token = collector.enroll(collector.add_school())
    endpoint = Endpoint.from_url(collector.url, token=token)
    meter = PhaseMeter("up")
    source = UploadSource()
    try:
        async with await UploadConnection.open(endpoint, timeout_s=5) as sender:
            meter.watch(sender)
            started = time.monotonic()
            # Its thread is blocked in sendfile when the deadline comes: shut down, not waited.
            # 900 MB in 50 ms would be 144 Gbit/s: an idle loopback moved it in under 0.3 s.
            finished = await sender.upload(
                UPLOAD_PATH, 900_000_000, source, deadline=started + 0.05, timeout_s=5
            )
            meter.forget(sender)
    finally:
        source.close()
    assert finished is False
    assert time.monotonic() - started < 1.0
    assert meter.total > 0


async def test_the_pinger_reconnects_when_the_collector_closes_its_connection(
    collector: RunningCollector,
) -> None:
    token = collector.enroll(collector.add_school())
    pinger = Pinger(Endpoint.from_url(collector.url, token=token), timeout_s=5)
    try:
        assert await pinger.round_trip_ms() > 0
        await asyncio.to_thread(collector.server.restart)  # every open connection is dropped
        assert await pinger.round_trip_ms() > 0
    finally:
        pinger.close()


def test_an_endpoint_needs_an_http_url() -> None:
    with pytest.raises(ValueError, match="not an http"):
        Endpoint.from_url("ftp://collector", token="t")
    with pytest.raises(ValueError, match="TLS context"):
        Endpoint.from_url("https://collector", token="t")
    tls = ssl.create_default_context()
    endpoint = Endpoint.from_url("https://collector.example:8443/x", token="t", tls=tls)
    assert (endpoint.host, endpoint.port) == ("collector.example", 8443)
    assert ("Host", "collector.example:8443") in endpoint.headers
