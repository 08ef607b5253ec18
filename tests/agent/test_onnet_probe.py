"""The on-net throughput test against a real collector's speed-test endpoints, and its faults."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from agent.probes.ceiling import Ceiling
from agent.probes.onnet import OnNetProbe
from agent.settings import OnNetSettings
from agent.wire import MAX_RPM, ThroughputTest
from tests.fixtures.collector import (
    LOOPBACK_BUDGETS,
    RunningCollector,
    ServerThread,
    StartCollector,
)
from tests.fixtures.faults import Receive, Scope, Send

# Short phases keep the suite fast; the shape of the test is the production one.
QUICK = {
    "duration_s": 1.2,
    "warmup_s": 0.4,
    "sample_interval_s": 0.1,
    "request_bytes": 4_000_000,
    "idle_pings": 3,
    "loaded_ping_interval_s": 0.05,
}
LOOPBACK = Ceiling("lo", None, False)


@pytest.fixture
def collector(start_collector: StartCollector) -> RunningCollector:
    return start_collector(**LOOPBACK_BUDGETS)


async def _run(
    url: str, token: str, ceiling: Ceiling = LOOPBACK, **settings: Any
) -> ThroughputTest:
    probe = OnNetProbe(
        collector_url=url,
        token=token,
        settings=OnNetSettings.model_validate({**QUICK, **settings}),
        ceiling=ceiling,
    )
    [result] = await probe.run()
    assert isinstance(result, ThroughputTest)
    return result


@pytest.mark.parametrize(("down", "up"), [(1, 1), (8, 6)])
async def test_fixed_duration_with_parallel_streams(
    collector: RunningCollector, down: int, up: int
) -> None:
    token = collector.enroll(collector.add_school())
    result = await _run(collector.url, token, streams_down=down, streams_up=up)
    assert result.error is None, result.error
    assert (result.path, result.server, result.streams) == ("onnet", collector.url, down)
    # Two phases of 1.2 s plus the idle round trips: the time is fixed, not the bytes.
    assert 2.4 <= result.duration_s < 6
    assert result.download_bytes > 4_000_000 and result.upload_bytes > 4_000_000
    for mean, p90 in (
        (result.download_bps, result.download_p90_bps),
        (result.upload_bps, result.upload_p90_bps),
    ):
        assert mean is not None and p90 is not None
        assert mean > 50e6  # loopback moves hundreds of Mbit/s even on this small machine
        assert p90 > 0.5 * mean
    assert result.latency_ms is not None and 0 < result.latency_ms < 500
    assert result.loaded_latency_ms is not None and result.loaded_latency_ms > 0
    # Round trips per minute under load, capped at the wire's 60,000 (a 1 ms round trip): an
    # idle machine's loopback answers faster (CI saw 0.87 ms).
    expected_rpm = min(60_000 / result.loaded_latency_ms, MAX_RPM)
    assert result.responsiveness_rpm == pytest.approx(expected_rpm)
    assert result.agent_limited is False
    assert result.raw is not None
    details = json.loads(result.raw)
    assert (details["streams_down"], details["streams_up"]) == (down, up)
    assert details["loaded_round_trips"] > 5


async def test_a_result_near_the_agents_own_link_is_flagged(collector: RunningCollector) -> None:
    token = collector.enroll(collector.add_school())
    # A 10 Mbit/s port: loopback moves far more, so the agent is the limit.
    result = await _run(collector.url, token, ceiling=Ceiling("eth0", 10, False))
    assert result.error is None
    assert (result.agent_link_mbps, result.agent_wifi, result.agent_limited) == (10, False, True)


async def test_collector_limits_are_an_error_result(start_collector: StartCollector) -> None:
    collector = start_collector(speedtest_max_streams=2)
    token = collector.enroll(collector.add_school())
    # Four times the streams the collector allows one agent, each request long enough to still
    # be open when the others start (small ones could finish first on a loaded machine).
    result = await _run(collector.url, token, streams_down=8, request_bytes=200_000_000)
    assert result.error == "collector answered HTTP 429"
    assert result.download_bps is None


async def test_wrong_token_is_an_error_result(collector: RunningCollector) -> None:
    collector.add_school()
    result = await _run(collector.url, "not-enrolled")
    assert result.error == "collector answered HTTP 401"
    assert result.download_bps is None


async def test_collector_down_is_an_error_result(collector: RunningCollector) -> None:
    token = collector.enroll(collector.add_school())
    collector.server.stop()
    result = await _run(collector.url, token)
    assert result.error is not None and result.error.startswith("ConnectionRefusedError")


async def test_collector_going_down_mid_test_is_an_error_result(
    collector: RunningCollector,
) -> None:
    token = collector.enroll(collector.add_school())
    test = asyncio.create_task(_run(collector.url, token, duration_s=3.0, warmup_s=0.5))
    await asyncio.sleep(1.0)  # inside the download phase
    await asyncio.to_thread(collector.server.stop)
    result = await test
    assert result.error is not None
    assert result.download_bps is None


def _misbehaving(download_status: int, *, cut_short: bool) -> Any:
    """Answers round trips, then fails the download: a 500, or a body shorter than promised."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"].endswith("/ping"):
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        if not cut_short:
            await send({"type": "http.response.start", "status": download_status, "headers": []})
            await send({"type": "http.response.body", "body": b"{}"})
            return
        headers = [(b"content-length", b"1000000")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"x" * 1000})
        # Returning now leaves the body 999,000 bytes short: uvicorn closes the connection.

    return app


@pytest.fixture(params=["http-500", "cut-short"])
def broken_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    app = _misbehaving(500, cut_short=request.param == "cut-short")
    server = ServerThread(lambda: app)
    server.start()
    try:
        yield request.param, server.url
    finally:
        server.stop()


async def test_server_errors_and_truncated_streams_are_error_results(
    broken_server: tuple[str, str],
) -> None:
    fault, url = broken_server
    result = await _run(url, "some-token")
    assert result.download_bps is None
    if fault == "http-500":
        assert result.error == "collector answered HTTP 500"
    else:
        assert result.error == "download cut short: 1000 of 1000000 bytes"


def test_warmup_must_leave_samples() -> None:
    with pytest.raises(ValueError, match="warmup_s"):
        OnNetSettings(duration_s=2.0, warmup_s=2.0)
