"""Latency, jitter and loss by timed TCP connects and HTTP round trips, against real sockets."""

from __future__ import annotations

import asyncio
import socket

from agent.probes.bulk import Endpoint
from agent.probes.latency import LatencyProbe, LatencySettings
from agent.probes.rtt import Pinger
from agent.wire import LatencyTest
from tests.fixtures.collector import RunningCollector

QUICK = {"probes": 8, "interval_s": 0.01, "timeout_s": 0.5}


async def _run(probe: LatencyProbe) -> LatencyTest:
    [result] = await probe.run()
    assert isinstance(result, LatencyTest)
    return result


async def test_tcp_connects_to_a_listening_port() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        settings = LatencySettings(method="tcp_connect", **QUICK)
        result = await _run(LatencyProbe(settings=settings, host="127.0.0.1", port=port))
    assert result.error is None
    assert (result.target, result.method, result.answered, result.lost) == (
        f"127.0.0.1:{port}",
        "tcp_connect",
        8,
        0,
    )
    assert result.rtt_p50_ms is not None and result.rtt_p90_ms is not None
    assert 0 < result.rtt_p50_ms <= result.rtt_p90_ms < 100
    assert result.jitter_ms is not None and result.jitter_ms >= 0
    assert result.loss_ratio == 0


async def test_http_round_trips_to_the_collector(collector: RunningCollector) -> None:
    token = collector.enroll(collector.add_school())
    pinger = Pinger(Endpoint.from_url(collector.url, token=token), timeout_s=1.0)
    probe = LatencyProbe(
        settings=LatencySettings(method="http", **QUICK),
        host="127.0.0.1",
        port=collector.server.port,
        pinger=pinger,
        secrets=(token,),
    )
    try:
        result = await _run(probe)
    finally:
        pinger.close()
    assert result.error is None and (result.answered, result.lost) == (8, 0)
    # Without httpx in the timed span a loopback round trip is well under a millisecond's work.
    assert result.rtt_p50_ms is not None and result.rtt_p50_ms < 50


async def test_silent_target_loses_every_probe() -> None:
    # A listening socket whose backlog is full: SYNs are dropped, nobody answers.
    with socket.socket() as full:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        port = full.getsockname()[1]
        fillers = []
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            fillers.append(s)
        await asyncio.sleep(0.05)
        settings = LatencySettings(probes=3, interval_s=0.01, timeout_s=0.2)
        result = await _run(LatencyProbe(settings=settings, host="127.0.0.1", port=port))
        for s in fillers:
            s.close()
    assert (result.answered, result.lost) == (0, 3)
    assert result.rtt_p50_ms is None and result.loss_ratio == 1.0
    assert result.error == "all 3 probes lost: no answer within 0.2 s"


async def test_refused_port_is_an_error_result() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, not listening: connections are refused
        settings = LatencySettings(probes=2, interval_s=0.01, timeout_s=0.5)
        result = await _run(LatencyProbe(settings=settings, host="127.0.0.1", port=port))
    assert (result.answered, result.lost) == (0, 2)
    assert result.error is not None and "ConnectionRefusedError" in result.error
