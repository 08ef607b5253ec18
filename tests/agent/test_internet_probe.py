"""The internet test: the real speedtest-cli, in the real child process, against the local stand-in
for speedtest.net (tests/fixtures/speedtest_server.py) on loopback."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from agent.probes.internet import InternetProbe, InternetSettings, child_environment, raw_json
from agent.wire import MAX_RAW_CHARS, Batch, ThroughputTest
from tests.fixtures.speedtest_server import ServerEntry, SpeedtestStandIn

SERVERS = {"1001": ("Near Fiber Co", 25.0), "1002": ("Middle Telecom", 180.0)}
SERVERS["1003"] = ("Far Networks", 900.0)
PAGE = 4096


def _settings(stand_in: SpeedtestStandIn, **overrides: Any) -> InternetSettings:
    values: dict[str, Any] = {
        "proxy_url": stand_in.proxy_url,
        "ca_file": stand_in.ca_file,
        "timeout_s": 5.0,
        "deadline_s": 30.0,
    }
    return InternetSettings(**(values | overrides))


async def _run(settings: InternetSettings, **probe_args: Any) -> ThroughputTest:
    [result] = await InternetProbe(settings=settings, **probe_args).run()
    assert isinstance(result, ThroughputTest)
    assert result.path == "internet"
    Batch(measurements=[result])  # whatever the probe returns, the wire accepts
    if result.error is not None:
        assert "\n" not in result.error
        assert result.download_bps is None and result.upload_bps is None
    return result


async def test_full_test_against_the_stand_in(speedtest_net: SpeedtestStandIn) -> None:
    rate_bps = 80e6
    speedtest_net.behaviour = replace(speedtest_net.behaviour, rate_bps=rate_bps, test_length_s=5)
    result = await _run(_settings(speedtest_net))

    assert result.error is None
    # Every byte the stand-in served (and took) was counted, and no faster than it was paced.
    traffic = speedtest_net.traffic
    assert result.download_bytes == traffic.download_bytes == 1_550_550
    assert result.upload_bytes == traffic.upload_bytes == 7 * 2**20
    for bps in (result.download_bps, result.upload_bps):
        assert bps is not None and 0.25 * rate_bps < bps < 1.1 * rate_bps
    assert result.latency_ms is not None and 0 < result.latency_ms < 1000
    assert 0 < result.duration_s < 10
    assert result.streams == 4  # threadcount 2 in the config: speedtest-cli runs twice that
    assert result.server_id in SERVERS
    sponsor, distance_km = SERVERS[result.server_id]
    assert result.sponsor == sponsor
    assert result.distance_km == pytest.approx(distance_km, abs=0.01)
    assert re.fullmatch(
        rf"http://127\.0\.0\.1:\d+/s{result.server_id}/speedtest/upload\.php", result.server
    )
    # The config and server list came through the tunnel to "www.speedtest.net".
    assert traffic.requests[:2] == ["/speedtest-config.php", "/speedtest-servers-static.php"]

    assert result.raw is not None and len(result.raw) <= MAX_RAW_CHARS
    raw = json.loads(result.raw)
    assert raw["download"] == result.download_bps and raw["upload"] == result.upload_bps
    assert raw["ping"] == result.latency_ms
    assert raw["bytes_received"] == result.download_bytes
    assert raw["server"]["id"] == result.server_id and raw["client"]["isp"] == "Stand-in ISP"


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_pinned_server_is_the_one_tested(
    speedtest_net: SpeedtestStandIn, scheme: str
) -> None:
    speedtest_net.behaviour.server_scheme = scheme  # type: ignore[assignment]
    result = await _run(_settings(speedtest_net, server_id=1003))

    assert result.error is None
    assert (result.server_id, result.sponsor) == ("1003", "Far Networks")
    assert result.distance_km == pytest.approx(900.0, abs=0.01)
    assert result.server.startswith(f"{scheme}://127.0.0.1:")
    tested = {
        path.split("/")[1] for path in speedtest_net.traffic.requests if "/speedtest/" in path
    }
    assert tested == {"s1003"}


async def test_long_server_details_are_cut_to_the_wire_bounds(
    speedtest_net: SpeedtestStandIn,
) -> None:
    speedtest_net.behaviour.servers = [ServerEntry(7, "Sponsor " * 900, "Town " * 900, 12.0)]
    result = await _run(_settings(speedtest_net))

    assert result.error is None
    assert result.sponsor is not None and len(result.sponsor) == 300
    assert result.sponsor.endswith("…")
    # speedtest.net's view of the client goes first; the server's huge names still do not fit.
    assert result.raw is not None and len(result.raw) == MAX_RAW_CHARS
    assert '"client"' not in result.raw and result.raw.endswith("…")


STAND_IN_FAULTS = [
    pytest.param(
        {"config_fault": "http-403"},
        {},
        r"speedtest\.net config could not be fetched: HTTP 403 Forbidden",
        id="config-403",
    ),
    pytest.param(
        {"config_fault": "stall"},
        {"timeout_s": 0.5},
        r"speedtest\.net config could not be fetched: timed out \(nothing for 0\.5 s\)",
        id="config-timeout",
    ),
    pytest.param(
        {"config_fault": "malformed"},
        {},
        r"speedtest\.net config is unusable: Malformed speedtest\.net configuration: .*",
        id="config-malformed",
    ),
    pytest.param(
        {"servers_fault": "http-500"},
        {},
        r"speedtest\.net server list could not be fetched: HTTP 500 Internal Server Error",
        id="server-list-500",
    ),
    pytest.param(
        {"servers_fault": "empty"}, {}, r"speedtest\.net listed no servers", id="no-servers"
    ),
    pytest.param(
        {},
        {"server_id": 4242},
        r"pinned server 4242 is not in speedtest\.net's list",
        id="pinned-not-listed",
    ),
    pytest.param(
        {"latency_fault": "http-500"},
        {},
        r"no speed-test server answered the latency check \(3 tried\)",
        id="best-server-failure",
    ),
    pytest.param(
        {"download_fault": "http-500"},
        {},
        r"download failed on 10 of 10 requests to \S+: HTTP 500 Internal Server Error",
        id="download-500",
    ),
    pytest.param(
        {"download_fault": "cut"},
        {},
        r"download failed on 10 of 10 requests to \S+: "
        r"stream cut short after [\d,]+ of [\d,]+ bytes",
        id="download-truncated",
    ),
    pytest.param(
        {"download_fault": "stall"},
        {"timeout_s": 0.5},
        r"download failed on \d+ of \d+ requests to \S+: timed out \(nothing for 0\.5 s\)",
        id="download-timeout",
    ),
    pytest.param(
        {"upload_fault": "http-500"},
        {},
        r"upload failed on 1 of 1 requests to \S+: HTTP 500 Internal Server Error",
        id="upload-500",
    ),
    pytest.param(
        {"upload_fault": "cut"},
        {},
        r"upload failed on 1 of 1 requests to \S+: the server closed the connection "
        r"mid-transfer \(\w+\)",
        id="upload-truncated",
    ),
    pytest.param(
        {"upload_fault": "stall"},
        {"timeout_s": 0.5},
        r"upload failed on 1 of 1 requests to \S+: timed out \(nothing for 0\.5 s\)",
        id="upload-timeout",
    ),
]


@pytest.mark.parametrize(("fault", "overrides", "error"), STAND_IN_FAULTS)
async def test_each_library_failure_is_a_clear_error_result(
    speedtest_net: SpeedtestStandIn, fault: dict[str, Any], overrides: dict[str, Any], error: str
) -> None:
    speedtest_net.behaviour = replace(speedtest_net.behaviour, **fault)
    result = await _run(_settings(speedtest_net, **overrides))

    assert result.error is not None and re.fullmatch(error, result.error), result.error
    traffic = speedtest_net.traffic
    # Bytes moved before the failure are still reported: the data budget counts them.
    assert result.download_bytes <= traffic.download_bytes
    if "upload_fault" in fault:
        assert result.download_bytes == traffic.download_bytes == 1_550_550
        assert 0 < result.upload_bytes <= 7 * 2**20
    if "download_fault" in fault or "latency_fault" in fault:
        assert result.server_id in SERVERS and result.sponsor == SERVERS[result.server_id][0]
    if fault == {"servers_fault": "http-500"}:
        # All four list URLs, the two plain-HTTP fallbacks included, reached the stand-in.
        assert sum("speedtest-servers" in path for path in traffic.requests) == 4
    if "server_id" in overrides:
        assert (result.server_id, result.server) == ("4242", "www.speedtest.net")


async def test_config_is_fetched_over_verified_https(speedtest_net: SpeedtestStandIn) -> None:
    # Without the stand-in's CA the tunnel to "www.speedtest.net" is refused: TLS is checked.
    result = await _run(_settings(speedtest_net, ca_file=None))

    assert result.error == (
        "speedtest.net config could not be fetched: "
        "TLS certificate not trusted: unable to get local issuer certificate"
    )
    assert speedtest_net.traffic.requests == []


async def test_child_killed_on_the_deadline(speedtest_net: SpeedtestStandIn) -> None:
    speedtest_net.behaviour.config_fault = "stall"
    started = time.monotonic()
    result = await _run(_settings(speedtest_net, timeout_s=30, deadline_s=1.5))

    assert time.monotonic() - started < 5
    assert result.error == "speed test did not finish within its 1.5 s deadline: child killed"
    assert _speedtest_children() == []


async def test_killed_child_still_reports_what_it_moved(speedtest_net: SpeedtestStandIn) -> None:
    speedtest_net.behaviour.upload_fault = "stall"
    result = await _run(_settings(speedtest_net, timeout_s=30, deadline_s=3))

    assert result.error == "speed test did not finish within its 3 s deadline: child killed"
    # From the child's progress lines: the download was done, the server chosen.
    assert result.download_bytes == speedtest_net.traffic.download_bytes == 1_550_550
    assert result.server_id in SERVERS


async def test_child_killed_by_a_signal(speedtest_net: SpeedtestStandIn) -> None:
    speedtest_net.behaviour.config_fault = "stall"
    run = asyncio.create_task(_run(_settings(speedtest_net, timeout_s=30)))
    children = await _wait_for_children()
    os.kill(children[0], signal.SIGKILL)  # what the kernel's OOM killer would do
    result = await run

    assert result.error == "speed-test child was killed by SIGKILL"


MISBEHAVING_CHILDREN = [
    pytest.param(
        "raise MemoryError",
        "speed-test child exited with code 1: MemoryError",
        id="crashed",
    ),
    pytest.param(
        "print('Download: 94.12 Mbit/s')",
        "speed-test child sent unreadable output: 'Download: 94.12 Mbit/s\\n'",
        id="not-json",
    ),
    pytest.param(
        'print(\'{"kind": "finished", "download_bps": "fast"}\')',
        "speed-test child sent unreadable output: "
        '\'{"kind": "finished", "download_bps": "fast"}\\n\'',
        id="wrong-shape",
    ),
    pytest.param(
        "print('x' * 200_000)",
        "speed-test child sent unreadable output: a line longer than 65,536 bytes",
        id="endless-line",
    ),
    pytest.param("pass", "speed-test child ended without a result", id="no-result"),
    pytest.param(
        'print(\'{"kind": "finished", "download_bps": 1e13, "upload_bps": 1.0}\')',
        "speedtest-cli result out of bounds: download_bps: "
        "Input should be less than or equal to 1000000000000",
        id="out-of-bounds",
    ),
]


@pytest.mark.parametrize(("code", "error"), MISBEHAVING_CHILDREN)
async def test_misbehaving_child_is_an_error_result(tmp_path: Path, code: str, error: str) -> None:
    # The real child cannot be made to misbehave, so these children are one-liners.
    settings = InternetSettings(proxy_url="http://127.0.0.1:9", ca_file=tmp_path / "none.pem")
    result = await _run(settings, child_command=[sys.executable, "-c", code])

    assert result.error == error
    assert result.server == "www.speedtest.net"


async def test_daemon_memory_stays_flat_while_the_child_peaks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A full-size test (speedtest.net's config: 145 MB of upload bodies allocated up front),
    # with the stand-in in a process of its own so that only the probe lives in this one.
    caplog.set_level(logging.INFO, logger="agent.probes.internet")
    with _stand_in_process(tmp_path) as stand_in:
        settings = InternetSettings(**stand_in, timeout_s=5, deadline_s=60)
        await _run(settings.model_copy(update={"server_id": 999}))  # warm up the parent's path
        baseline = _rss_bytes()
        peak = baseline
        probe = asyncio.create_task(_run(settings))
        while not probe.done():
            peak = max(peak, _rss_bytes())
            await asyncio.sleep(0.01)
        result = probe.result()

    assert result.error is None and result.upload_bytes > 100_000_000
    [child_kb] = [int(r.getMessage().split()[-3]) for r in caplog.records if "peaked" in r.msg][-1:]
    assert child_kb > 150_000
    assert peak - baseline < 4 * 2**20, f"parent grew {(peak - baseline) / 2**20:.1f} MiB"


def test_daemon_does_not_import_speedtest_cli() -> None:
    code = "import agent.probes.internet, sys; print('speedtest' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_settings_defaults_and_strictness() -> None:
    settings = InternetSettings()
    assert (settings.enabled, settings.server_id, settings.timeout_s, settings.deadline_s) == (
        True,
        None,
        10.0,
        120.0,
    )
    assert settings.proxy_url is None and settings.ca_file is None
    with pytest.raises(ValidationError, match="serverid"):
        InternetSettings.model_validate({"serverid": 5})
    with pytest.raises(ValidationError, match="server_id"):
        InternetSettings(server_id=0)
    with pytest.raises(ValidationError, match="proxy_url must start with http://"):
        InternetSettings(proxy_url="socks5://127.0.0.1:1080")


def test_child_environment_leaves_no_way_around_the_proxy(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in {"no_proxy": "*", "NO_PROXY": "*", "REQUEST_METHOD": "GET"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HTTPS_PROXY", "http://elsewhere:3128")
    settings = InternetSettings(proxy_url="http://127.0.0.1:8", ca_file=tmp_path / "ca.pem")
    env = child_environment(settings)

    assert {"no_proxy", "NO_PROXY", "REQUEST_METHOD"}.isdisjoint(env)
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        assert env[name] == "http://127.0.0.1:8"
    assert env["SSL_CERT_FILE"] == str(tmp_path / "ca.pem")
    assert child_environment(InternetSettings())["NO_PROXY"] == "*"  # untouched without a proxy


def test_raw_result_keeps_json_when_dropping_the_client_is_enough() -> None:
    raw = {"download": 1.0, "server": {"id": "1"}, "client": {"isp": "x" * MAX_RAW_CHARS}}
    assert json.loads(raw_json(raw)) == {"download": 1.0, "server": {"id": "1"}}
    small = {"download": 1.0, "client": {"isp": "y"}}
    assert json.loads(raw_json(small)) == small


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def _speedtest_children() -> list[int]:
    """Our own speedtest-cli children still alive (or unreaped)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == os.getpid() and b"agent.probes.speedtest_child" in cmdline:
            found.append(int(entry.name))
    return found


async def _wait_for_children() -> list[int]:
    for _ in range(500):
        if children := _speedtest_children():
            return children
        await asyncio.sleep(0.01)
    raise AssertionError("the speedtest-cli child never started")


@contextmanager
def _stand_in_process(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """`python -m tests.fixtures.speedtest_server`, full-size; yields its proxy_url and ca_file."""
    command = [sys.executable, "-m", "tests.fixtures.speedtest_server", "--port", "0"]
    command += ["--ca-file", str(tmp_path / "ca.pem"), "--test-length-s", "2"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        yield json.loads(process.stdout.readline())
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
