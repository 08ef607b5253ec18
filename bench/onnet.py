"""On-net throughput: the agent's `OnNetProbe` against a real collector, compared with iperf3.

Loopback: a real collector (``readynet-collector serve`` on 127.0.0.1, SQLite in a temp dir, one
school and one enrolled agent) and `OnNetProbe` in this process move 200 MB down and 100 MB up
with 1 and 4 streams; iperf3 (``-R`` for download, ``-P`` for streams) runs on the same loopback
in between, as the reference for what the machine's TCP stack moves between two processes. The
ratio agent/iperf3 says how much of that the HTTP path (httpx, uvicorn, Python) keeps.

Shaped link: when ``ip netns`` works, two namespaces joined by a veth pair whose both ends are
shaped with ``tbf rate 100mbit`` (and ``netem delay 10ms`` each way where the kernel has netem);
the collector runs in one namespace, the probe in the other, both with private addresses that exist
only inside these namespaces, so no packet touches the host's interfaces. The ratio is agent
throughput over the shaped rate; iperf3 over the same link shows what is reachable at all.

Run alone with ``python -m bench.onnet``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from agent.probes.onnet import OnNetProbe
from agent.settings import OnNetSettings
from agent.wire import ThroughputTest
from bench._common import (
    LOOPBACK,
    REPO_DIR,
    VENV_BIN,
    Figure,
    require_tool,
    say,
)
from bench._netns_agent import TOKEN_ENV
from collector.localrun import free_port, log_tail, stop_process, wait_for_text
from collector.store.db import make_engine, make_session_factory
from collector.store.migrate import upgrade_to_head
from collector.store.queries import create_school, enroll_agent

STREAMS = (1, 4)
DOWNLOAD_BYTES = 200_000_000
UPLOAD_BYTES = 100_000_000
LOOPBACK_MAX_SECONDS = 20.0
# 200 MB at several Gbit/s is a fraction of a second: take the median of a few runs.
LOOPBACK_REPEATS = 3
IPERF_SECONDS = 3

SHAPED_RATE_MBIT = 100
SHAPED_DELAY_MS = 10
SHAPED_BYTES = 20_000_000
SHAPED_MAX_SECONDS = 8.0
SHAPED_IPERF_SECONDS = 2
# Private addresses that exist only on the veth pair inside the bench's own namespaces.
SERVER_ADDRESS = "10.255.255.1"
CLIENT_ADDRESS = "10.255.255.2"
PREFIX_LEN = 30
SHAPED_COLLECTOR_PORT = 8080
SHAPED_IPERF_PORT = 5201

STARTUP_TIMEOUT_S = 30.0
COMMAND_TIMEOUT_S = 20.0
_START_ATTEMPTS = 3
_COLLECTOR_READY = "Uvicorn running on"
_IPERF_READY = "Server listening"


class BenchError(RuntimeError):
    pass


@dataclass(frozen=True)
class Enrolled:
    """A migrated collector database with one school and one agent, and that agent's token."""

    database_url: str
    token: str


def enroll(workdir: Path) -> Enrolled:
    database_url = f"sqlite:///{workdir / 'collector.db'}"
    upgrade_to_head(database_url)
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            school = create_school(session=session, name="Bench School", students=450, staff=50)
            _, token = enroll_agent(session=session, school_id=school.id, name="bench-agent")
    finally:
        engine.dispose()
    return Enrolled(database_url, token)


def start_collector(
    prefix: list[str], host: str, port: int, database_url: str, log_path: Path
) -> subprocess.Popen[bytes] | None:
    """``readynet-collector serve`` (after `prefix`, e.g. ``ip netns exec``); None if it died."""
    env = {**os.environ, "READYNET_COLLECTOR_DATABASE_URL": database_url}
    command = [str(VENV_BIN / "readynet-collector"), "serve", "--host", host, "--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*prefix, *command], stdout=log, stderr=subprocess.STDOUT, env=env
        )
    if wait_for_text(process, log_path, _COLLECTOR_READY, STARTUP_TIMEOUT_S):
        return process
    stop_process(process)
    return None


@contextmanager
def loopback_collector(workdir: Path, enrolled: Enrolled) -> Iterator[str]:
    """A collector subprocess on 127.0.0.1; yields its base URL."""
    process: subprocess.Popen[bytes] | None = None
    try:
        for attempt in range(_START_ATTEMPTS):
            # Another process may take the free port first: then try another one.
            port = free_port(socket.SOCK_STREAM)
            log_path = workdir / f"collector-{attempt}.log"
            process = start_collector([], LOOPBACK, port, enrolled.database_url, log_path)
            if process is not None:
                break
        else:
            raise BenchError(f"the collector did not start; log tail:\n{log_tail(log_path)}")
        yield f"http://{LOOPBACK}:{port}"
    finally:
        stop_process(process)


def probe_here(url: str, token: str, streams: int, download: int, upload: int) -> ThroughputTest:
    """`OnNetProbe.run()` in this process."""
    settings = OnNetSettings(
        download_bytes=download,
        upload_bytes=upload,
        streams=streams,
        max_seconds=LOOPBACK_MAX_SECONDS,
    )
    [result] = asyncio.run(OnNetProbe(collector_url=url, token=token, settings=settings).run())
    return _checked(result)


def probe_in_namespace(
    namespace: str, url: str, token: str, streams: int, size: int
) -> ThroughputTest:
    """`OnNetProbe.run()` in a fresh Python inside `namespace` (see bench._netns_agent)."""
    command = [
        "ip",
        "netns",
        "exec",
        namespace,
        sys.executable,
        "-m",
        "bench._netns_agent",
        f"--url={url}",
        f"--download-bytes={size}",
        f"--upload-bytes={size}",
        f"--streams={streams}",
        f"--max-seconds={SHAPED_MAX_SECONDS}",
    ]
    done = subprocess.run(
        command,
        cwd=REPO_DIR,
        env={**os.environ, TOKEN_ENV: token},
        capture_output=True,
        text=True,
        timeout=2 * SHAPED_MAX_SECONDS + 60,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise BenchError(f"agent in {namespace} exited {done.returncode}: {done.stderr[-2000:]}")
    return _checked(ThroughputTest.model_validate_json(lines[-1]))


def _checked(result: object) -> ThroughputTest:
    if not isinstance(result, ThroughputTest):
        raise BenchError(f"OnNetProbe returned {type(result).__name__}, not ThroughputTest")
    if result.error is not None or result.download_bps is None or result.upload_bps is None:
        raise BenchError(f"OnNetProbe failed: {result.error}")
    return result


def iperf3_mbps(
    workdir: Path,
    *,
    address: str,
    streams: int,
    reverse: bool,
    seconds: int,
    server_prefix: list[str] | None = None,
    client_prefix: list[str] | None = None,
    port: int | None = None,
) -> float:
    """One iperf3 test against a one-off server on `address`; received Mbit/s."""
    server: subprocess.Popen[bytes] | None = None
    try:
        for attempt in range(_START_ATTEMPTS):
            server_port = port if port is not None else free_port(socket.SOCK_STREAM)
            log_path = workdir / f"iperf3-server-{attempt}.log"
            with log_path.open("wb") as log:
                server = subprocess.Popen(
                    [
                        *(server_prefix or []),
                        "iperf3",
                        "-s",
                        "-B",
                        address,
                        "-p",
                        str(server_port),
                        "-1",
                        "--forceflush",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            if wait_for_text(server, log_path, _IPERF_READY, STARTUP_TIMEOUT_S):
                break
            stop_process(server)
        else:
            raise BenchError(f"iperf3 server did not start; log tail:\n{log_tail(log_path)}")
        command = [
            *(client_prefix or []),
            "iperf3",
            "-c",
            address,
            "-p",
            str(server_port),
            "-t",
            str(seconds),
            "-P",
            str(streams),
            "-J",
        ]
        if reverse:
            command.append("-R")
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=seconds + 30, check=False
        )
        try:
            report = json.loads(done.stdout)
        except json.JSONDecodeError as exc:
            raise BenchError(f"iperf3 printed no JSON: {done.stderr.strip()}") from exc
        if "error" in report:
            raise BenchError(f"iperf3: {report['error']}")
        bps: float = report["end"]["sum_received"]["bits_per_second"]
        return bps / 1e6
    finally:
        stop_process(server)


def _spread(samples: list[float]) -> str:
    return f"{statistics.median(samples):.0f} [{min(samples):.0f}-{max(samples):.0f}]"


def _streams(count: int) -> str:
    return f"{count} stream" + ("" if count == 1 else "s")


def _loopback(workdir: Path, enrolled: Enrolled) -> list[Figure]:
    say(
        f"== onnet loopback: OnNetProbe ({DOWNLOAD_BYTES // 10**6} MB down, "
        f"{UPLOAD_BYTES // 10**6} MB up, x{LOOPBACK_REPEATS}) vs iperf3 -t {IPERF_SECONDS}, "
        f"on {LOOPBACK}"
    )
    no_iperf = require_tool("iperf3")
    if no_iperf is not None:
        say(f"  reference skipped: {no_iperf} (Debian package iperf3)")
    figures: list[Figure] = []
    with loopback_collector(workdir, enrolled) as url:
        say(f"  collector at {url}")
        # Warm-up outside the measurement: imports, the first connection, the collector's caches.
        probe_here(url, enrolled.token, 1, 1_000_000, 1_000_000)
        for streams in STREAMS:
            runs = [
                probe_here(url, enrolled.token, streams, DOWNLOAD_BYTES, UPLOAD_BYTES)
                for _ in range(LOOPBACK_REPEATS)
            ]
            downs = [(run.download_bps or 0.0) / 1e6 for run in runs]
            ups = [(run.upload_bps or 0.0) / 1e6 for run in runs]
            measured = {"down": statistics.median(downs), "up": statistics.median(ups)}
            latency = statistics.median(run.latency_ms or 0.0 for run in runs)
            say(
                f"  agent, {_streams(streams)}: down {_spread(downs)} Mbit/s, "
                f"up {_spread(ups)} Mbit/s (median of {LOOPBACK_REPEATS}), "
                f"latency {latency:.2f} ms"
            )
            for direction in ("down", "up"):
                reference = None
                if no_iperf is None:
                    reference = iperf3_mbps(
                        workdir,
                        address=LOOPBACK,
                        streams=streams,
                        reverse=direction == "down",
                        seconds=IPERF_SECONDS,
                    )
                    say(
                        f"  iperf3, {_streams(streams)}, {direction}: {reference:.0f} Mbit/s; "
                        f"agent/iperf3 {measured[direction] / reference:.2f}"
                    )
                figures.append(
                    Figure(
                        group="onnet",
                        label=f"loopback {direction}, {_streams(streams)}",
                        unit="Mbit/s",
                        ours_name="agent",
                        value=measured[direction],
                        reference_name="iperf3",
                        reference=reference,
                        lower_is_better=False,
                    )
                )
    return figures


def _run(command: list[str]) -> None:
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
    )
    if done.returncode != 0:
        raise BenchError(f"`{' '.join(command)}` failed: {done.stderr.strip() or done.returncode}")


def _shape(namespace: str, device: str) -> str:
    """Shape `device`'s egress to the link rate, with netem delay when the kernel has it."""
    tbf = ["tbf", "rate", f"{SHAPED_RATE_MBIT}mbit", "burst", "32kbit", "latency", "50ms"]
    qdisc = ["tc", "-n", namespace, "qdisc", "add", "dev", device]
    try:
        _run([*qdisc, "root", "handle", "1:", "netem", "delay", f"{SHAPED_DELAY_MS}ms"])
    except BenchError as exc:
        _run([*qdisc, "root", "handle", "1:", *tbf])
        return f"no added delay, netem unavailable ({exc})"
    _run([*qdisc, "parent", "1:1", "handle", "10:", *tbf])
    return f"netem delay {SHAPED_DELAY_MS} ms each way"


def _remove_namespace(namespace: str) -> None:
    # Anything still running in a namespace this run created was started by this run.
    pids = subprocess.run(
        ["ip", "netns", "pids", namespace], capture_output=True, text=True, check=False
    ).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    # Deleting the namespace also deletes its end of the veth pair, and with it the peer.
    subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)


def _shaped_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "not root (ip netns and tc need root)"
    return require_tool("ip") or require_tool("tc")


def _shaped(workdir: Path, enrolled: Enrolled) -> list[Figure]:
    label = f"{SHAPED_RATE_MBIT} Mbit/s veth between two namespaces"
    say(f"== onnet shaped: OnNetProbe ({SHAPED_BYTES // 10**6} MB each way) over a {label}")
    reason = _shaped_unavailable()
    server_ns, client_ns = f"rn-bench-srv-{os.getpid()}", f"rn-bench-cli-{os.getpid()}"
    created: list[str] = []
    collector: subprocess.Popen[bytes] | None = None
    try:
        if reason is None:
            try:
                delay = _setup_link(server_ns, client_ns, created)
            except BenchError as exc:
                reason = str(exc)
        if reason is not None:
            say(f"  skipped: {reason}")
            return [
                Figure(
                    "shaped",
                    "onnet",
                    "Mbit/s",
                    "agent",
                    None,
                    "link",
                    None,
                    False,
                    instead=f"skipped: {reason}",
                )
            ]
        say(
            f"  namespaces {server_ns} ({SERVER_ADDRESS}) and {client_ns} ({CLIENT_ADDRESS}); "
            f"{delay}"
        )
        collector = start_collector(
            ["ip", "netns", "exec", server_ns],
            SERVER_ADDRESS,
            SHAPED_COLLECTOR_PORT,
            enrolled.database_url,
            workdir / "collector-shaped.log",
        )
        if collector is None:
            raise BenchError(
                "the collector did not start in its namespace; log tail:\n"
                + log_tail(workdir / "collector-shaped.log")
            )
        return _measure_shaped(workdir, enrolled, server_ns, client_ns)
    finally:
        stop_process(collector)
        for namespace in reversed(created):
            _remove_namespace(namespace)


def _setup_link(server_ns: str, client_ns: str, created: list[str]) -> str:
    for namespace in (server_ns, client_ns):
        _run(["ip", "netns", "add", namespace])
        created.append(namespace)
    # Both veth ends are created directly inside the namespaces, never in the host's.
    _run(
        [
            "ip",
            "link",
            "add",
            "rnb-srv",
            "netns",
            server_ns,
            "type",
            "veth",
            "peer",
            "name",
            "rnb-cli",
            "netns",
            client_ns,
        ]
    )
    delays = []
    for namespace, device, address in (
        (server_ns, "rnb-srv", SERVER_ADDRESS),
        (client_ns, "rnb-cli", CLIENT_ADDRESS),
    ):
        _run(["ip", "-n", namespace, "addr", "add", f"{address}/{PREFIX_LEN}", "dev", device])
        _run(["ip", "-n", namespace, "link", "set", "lo", "up"])
        _run(["ip", "-n", namespace, "link", "set", device, "up"])
        delays.append(_shape(namespace, device))
    return delays[0]


def _measure_shaped(
    workdir: Path, enrolled: Enrolled, server_ns: str, client_ns: str
) -> list[Figure]:
    url = f"http://{SERVER_ADDRESS}:{SHAPED_COLLECTOR_PORT}"
    figures: list[Figure] = []
    for streams in STREAMS:
        result = probe_in_namespace(client_ns, url, enrolled.token, streams, SHAPED_BYTES)
        assert result.download_bps is not None and result.upload_bps is not None
        measured = {"down": result.download_bps / 1e6, "up": result.upload_bps / 1e6}
        say(
            f"  agent, {_streams(streams)}: down {measured['down']:.1f} Mbit/s, "
            f"up {measured['up']:.1f} Mbit/s, latency {result.latency_ms:.1f} ms"
        )
        for direction in ("down", "up"):
            iperf = None
            if require_tool("iperf3") is None:
                iperf = iperf3_mbps(
                    workdir,
                    address=SERVER_ADDRESS,
                    streams=streams,
                    reverse=direction == "down",
                    seconds=SHAPED_IPERF_SECONDS,
                    server_prefix=["ip", "netns", "exec", server_ns],
                    client_prefix=["ip", "netns", "exec", client_ns],
                    port=SHAPED_IPERF_PORT,
                )
                say(
                    f"  iperf3, {_streams(streams)}, {direction}: {iperf:.1f} Mbit/s; "
                    f"agent/iperf3 {measured[direction] / iperf:.2f}"
                )
            label = f"{direction}, {_streams(streams)}"
            figures.append(
                Figure(
                    group="shaped",
                    label=label,
                    unit="Mbit/s",
                    ours_name="agent",
                    value=measured[direction],
                    reference_name="link",
                    reference=float(SHAPED_RATE_MBIT),
                    lower_is_better=False,
                )
            )
            figures.append(
                Figure(
                    group="shaped",
                    label=f"{label} (reference)",
                    unit="Mbit/s",
                    ours_name="iperf3",
                    value=iperf,
                    reference_name="link",
                    reference=float(SHAPED_RATE_MBIT),
                    lower_is_better=False,
                    instead="" if iperf is not None else "skipped: iperf3 not found on PATH",
                )
            )
    return figures


def run() -> list[Figure]:
    """The loopback comparison, then the shaped-link case (skipped when namespaces are not)."""
    with tempfile.TemporaryDirectory(prefix="rn-bench-onnet-") as tmp:
        workdir = Path(tmp)
        enrolled = enroll(workdir)
        figures = _loopback(workdir, enrolled)
        figures += _shaped(workdir, enrolled)
    return figures


if __name__ == "__main__":
    for figure in run():
        say(figure.line())
