"""The on-net throughput test against a real collector's speed-test endpoints."""

from __future__ import annotations

import pytest

from agent.probes.onnet import OnNetProbe
from agent.settings import OnNetSettings
from agent.wire import ThroughputTest
from tests.fixtures.collector import RunningCollector


async def _run(url: str, token: str, **settings: object) -> ThroughputTest:
    probe = OnNetProbe(
        collector_url=url, token=token, settings=OnNetSettings.model_validate(settings)
    )
    [result] = await probe.run()
    assert isinstance(result, ThroughputTest)
    return result


@pytest.mark.parametrize("streams", [1, 4])
async def test_moves_the_requested_bytes(collector: RunningCollector, streams: int) -> None:
    token = collector.enroll(collector.add_school())
    result = await _run(
        collector.url, token, download_bytes=8_000_000, upload_bytes=4_000_000, streams=streams
    )
    assert result.error is None
    assert (result.download_bytes, result.upload_bytes) == (8_000_000, 4_000_000)
    assert result.streams == streams
    assert result.path == "onnet"
    assert result.server == collector.url
    assert result.download_bps is not None and result.download_bps > 1e6
    assert result.upload_bps is not None and result.upload_bps > 1e6
    assert result.latency_ms is not None and 0 < result.latency_ms < 1000


async def test_stops_at_max_seconds_and_still_reports_a_rate(collector: RunningCollector) -> None:
    token = collector.enroll(collector.add_school())
    result = await _run(
        collector.url, token, download_bytes=900_000_000, upload_bytes=900_000_000, max_seconds=0.3
    )
    assert result.error is None
    assert 0 < result.download_bytes < 900_000_000
    assert 0 < result.upload_bytes < 900_000_000
    assert result.download_bps is not None and result.download_bps > 0


async def test_wrong_token_is_an_error_result(collector: RunningCollector) -> None:
    collector.add_school()
    result = await _run(collector.url, "not-enrolled")
    assert result.error == "collector answered HTTP 401"
    assert result.download_bps is None


async def test_collector_down_is_an_error_result(collector: RunningCollector) -> None:
    token = collector.enroll(collector.add_school())
    collector.server.stop()
    result = await _run(collector.url, token)
    assert result.error is not None and result.error.startswith("ConnectError")
