"""On-net throughput over a shaped two-host link: ReadyNet's test against iperf3 and speedtest-cli.

Two network namespaces joined by a veth pair (`bench._netlink`), both directions shaped with tbf
to 50, 100, 500 and 1000 Mbit/s in turn. The far namespace runs a real ``readynet-collector
serve`` (SQLite), ``iperf3 -s`` and the speedtest.net stand-in
(``tests.fixtures.speedtest_server``); the near namespace runs each agent test in a fresh agent
process (`bench._netns_agent`). For each rate, in the same run:

- ReadyNet's on-net test with its default settings (8 streams down, 6 up, 10 s each way, the
  first 2 s discarded);
- iperf3 ``-P 4`` each way (``-R`` for download), ``-t 8 -O 2``: the same 8 s measured after the
  same 2 s warm-up;
- the foundation's single-stream test: the same probe with one stream each way;
- speedtest-cli (`InternetProbe`, in its child process) against the stand-in.

Each rate is given as a ratio to the shaped rate and to iperf3, with the agent process's CPU
time and peak RSS during the on-net test against iperf3's CPU and speedtest-cli's child.
The 30 ms RTT and 0.1 % loss cases need netem; without it they print "skipped: no netem";
with it they run the on-net test and iperf3 (the target's two sides) at every rate.

Run alone with ``python -m bench.onnet``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from agent.settings import OnNetSettings
from agent.wire import ThroughputTest
from bench._collector import enroll, process_cpu_seconds
from bench._common import REPO_DIR, VENV_BIN, Figure, require_tool, say
from bench._netlink import SERVER_ADDRESS, Impairment, LinkError, TwoHostLink, unavailable
from bench._netns_agent import TOKEN_ENV
from collector.localrun import log_tail, stop_process, wait_for_text

RATES_MBIT = (50, 100, 500, 1000)
# (label, delay each way in ms, loss each way in %): run at every rate where netem exists.
IMPAIRMENTS = (("30 ms RTT", 15.0, 0.0), ("0.1 % loss", 0.0, 0.1))
DEFAULTS = OnNetSettings()
IPERF_STREAMS = 4
# iperf3 measures what the on-net test measures: the same time after the same warm-up.
IPERF_OMIT_S = int(DEFAULTS.warmup_s)
IPERF_SECONDS = int(DEFAULTS.duration_s - DEFAULTS.warmup_s)

ONNET_TARGET = 0.97  # on-net / iperf3, at every rate
CPU_TARGET = 1.5  # agent CPU / iperf3 CPU
RSS_TARGET_MB = 60.0
RSS_TARGET_RATE_MBIT = 1000

COLLECTOR_PORT = 8080
STAND_IN_PORT = 8081
IPERF_PORT = 5201
STARTUP_TIMEOUT_S = 60.0
# The run's one agent moves about 8 GB each way within the collector's 10-minute budget
# window; the default per-agent budget (2.5 GB) is for one test. Stream limits stay default.
BENCH_BUDGET_BYTES = 10**12
AGENT_TIMEOUT_S = 180.0


class BenchError(RuntimeError):
    pass


@dataclass(frozen=True)
class AgentRun:
    """One test in a fresh agent process and what it cost (see bench._netns_agent)."""

    result: ThroughputTest
    cpu_s: float
    rss_before_mb: float
    peak_rss_mb: float
    child_cpu_s: float | None
    child_peak_rss_mb: float | None

    @classmethod
    def parse(cls, report: dict[str, Any]) -> AgentRun:
        child_kb = report.get("child_peak_rss_kb")
        return cls(
            result=ThroughputTest.model_validate_json(report["result"]),
            cpu_s=report["cpu_s"],
            rss_before_mb=report["rss_before_kb"] / 1024,
            peak_rss_mb=report["peak_rss_kb"] / 1024,
            child_cpu_s=report.get("child_cpu_s"),
            child_peak_rss_mb=None if child_kb is None else child_kb / 1024,
        )

    def mbps(self, direction: str) -> float | None:
        bps = self.result.download_bps if direction == "down" else self.result.upload_bps
        return None if bps is None else bps / 1e6


@dataclass(frozen=True)
class IperfRun:
    mbps: float
    cpu_s: float


@dataclass(frozen=True)
class FarSide:
    """What runs in the far namespace, as the agent side reaches it."""

    collector_url: str
    collector_pid: int
    token: str
    proxy_url: str
    ca_file: Path


@dataclass
class Case:
    """Every measurement of one link setting."""

    impairment: Impairment
    label: str
    onnet: AgentRun
    single: AgentRun | None
    internet: AgentRun | None
    iperf: dict[str, IperfRun]
    collector_cpu_s: float


def _start(
    command: list[str], log_path: Path, ready: str, what: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO_DIR,
            env={**os.environ, **(env or {})},
        )
    if not wait_for_text(process, log_path, ready, STARTUP_TIMEOUT_S):
        stop_process(process)
        raise BenchError(f"{what} did not start; log tail:\n{log_tail(log_path)}")
    return process


@contextmanager
def far_side(link: TwoHostLink, workdir: Path) -> Iterator[FarSide]:
    """The collector, iperf3 -s and the speedtest.net stand-in in the far namespace."""
    database_url = f"sqlite:///{workdir / 'collector.db'}"
    token = enroll(database_url)
    settings = {
        "READYNET_COLLECTOR_DATABASE_URL": database_url,
        "READYNET_COLLECTOR_SPEEDTEST_DOWNLOAD_BUDGET_BYTES": str(BENCH_BUDGET_BYTES),
        "READYNET_COLLECTOR_SPEEDTEST_UPLOAD_BUDGET_BYTES": str(BENCH_BUDGET_BYTES),
    }
    ca_file = workdir / "stand-in-ca.pem"
    with ExitStack() as stack:
        collector = _start(
            link.server_command(
                [
                    str(VENV_BIN / "readynet-collector"),
                    "serve",
                    "--host",
                    SERVER_ADDRESS,
                    "--port",
                    str(COLLECTOR_PORT),
                ]
            ),
            workdir / "collector.log",
            "Uvicorn running on",
            "the collector",
            env=settings,
        )
        stack.callback(stop_process, collector)
        if require_tool("iperf3") is None:
            iperf = _start(
                link.server_command(
                    ["iperf3", "-s", "-B", SERVER_ADDRESS, "-p", str(IPERF_PORT), "--forceflush"]
                ),
                workdir / "iperf3-server.log",
                "Server listening",
                "iperf3 -s",
            )
            stack.callback(stop_process, iperf)
        stand_in_log = workdir / "stand-in.log"
        stand_in = _start(
            link.server_command(
                [
                    sys.executable,
                    "-m",
                    "tests.fixtures.speedtest_server",
                    "--host",
                    SERVER_ADDRESS,
                    "--port",
                    str(STAND_IN_PORT),
                    "--ca-file",
                    str(ca_file),
                ]
            ),
            stand_in_log,
            '"proxy_url"',
            "the speedtest.net stand-in",
        )
        stack.callback(stop_process, stand_in)
        info = json.loads(stand_in_log.read_text().splitlines()[0])
        yield FarSide(
            collector_url=f"http://{SERVER_ADDRESS}:{COLLECTOR_PORT}",
            collector_pid=collector.pid,
            token=token,
            proxy_url=info["proxy_url"],
            ca_file=Path(info["ca_file"]),
        )


def agent_run(link: TwoHostLink, far: FarSide, *arguments: str) -> AgentRun:
    """`bench._netns_agent` with `arguments` in the near namespace."""
    command = link.client_command([sys.executable, "-m", "bench._netns_agent", *arguments])
    done = subprocess.run(
        command,
        cwd=REPO_DIR,
        env={**os.environ, TOKEN_ENV: far.token},
        capture_output=True,
        text=True,
        timeout=AGENT_TIMEOUT_S,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise BenchError(f"agent exited {done.returncode}: {done.stderr[-2000:]}")
    run = AgentRun.parse(json.loads(lines[-1]))
    if run.result.error is not None:
        raise BenchError(f"{arguments[0]} test failed: {run.result.error}")
    return run


def onnet_run(link: TwoHostLink, far: FarSide, streams_down: int, streams_up: int) -> AgentRun:
    return agent_run(
        link,
        far,
        "onnet",
        f"--url={far.collector_url}",
        f"--streams-down={streams_down}",
        f"--streams-up={streams_up}",
    )


def internet_run(link: TwoHostLink, far: FarSide) -> AgentRun:
    return agent_run(
        link, far, "internet", f"--proxy-url={far.proxy_url}", f"--ca-file={far.ca_file}"
    )


def iperf3_run(link: TwoHostLink, *, download: bool) -> IperfRun:
    """iperf3 -P 4 from the near namespace; received Mbit/s and the client's CPU seconds."""
    command = link.client_command(
        ["iperf3", "-c", SERVER_ADDRESS, "-p", str(IPERF_PORT), "-P", str(IPERF_STREAMS)]
        + ["-t", str(IPERF_SECONDS), "-O", str(IPERF_OMIT_S), "-J"]
        + (["-R"] if download else [])
    )
    # `ip netns exec` becomes iperf3 (exec, no fork): the reaped child's CPU is iperf3's.
    before = _children_cpu_s()
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=IPERF_SECONDS + IPERF_OMIT_S + 30,
        check=False,
    )
    cpu_s = _children_cpu_s() - before
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise BenchError(f"iperf3 printed no JSON: {done.stderr.strip()}") from exc
    if "error" in report:
        raise BenchError(f"iperf3: {report['error']}")
    return IperfRun(report["end"]["sum_received"]["bits_per_second"] / 1e6, cpu_s)


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(link: TwoHostLink, far: FarSide, impairment: Impairment, label: str) -> Case:
    link.shape(impairment)
    full = not impairment.needs_netem
    collector_before = process_cpu_seconds(far.collector_pid)
    onnet = onnet_run(link, far, DEFAULTS.streams_down, DEFAULTS.streams_up)
    collector_cpu_s = process_cpu_seconds(far.collector_pid) - collector_before
    iperf: dict[str, IperfRun] = {}
    if require_tool("iperf3") is None:
        iperf = {"down": iperf3_run(link, download=True), "up": iperf3_run(link, download=False)}
    # The impaired cases check the on-net target; the comparisons run on the clean link.
    single = onnet_run(link, far, 1, 1) if full else None
    internet = internet_run(link, far) if full else None
    case = Case(impairment, label, onnet, single, internet, iperf, collector_cpu_s)
    _print_case(case)
    return case


def _ratio(value: float | None, reference: float | None) -> str:
    return "n/a" if value is None or not reference else f"{value / reference:.2f}"


def _print_case(case: Case) -> None:
    rate = case.impairment.rate_mbit
    say(f"== {case.label}")
    rows: list[tuple[str, AgentRun | IperfRun | None]] = [
        (f"on-net {DEFAULTS.streams_down}/{DEFAULTS.streams_up} streams", case.onnet),
        ("1 stream (foundation)", case.single),
        ("speedtest-cli", case.internet),
    ]
    for direction in ("down", "up"):
        iperf = case.iperf.get(direction)
        reference = None if iperf is None else iperf.mbps
        for name, run in rows:
            if run is None:
                continue
            assert isinstance(run, AgentRun)
            mbps = run.mbps(direction)
            extra = ""
            if run is not case.internet:
                p90 = (
                    run.result.download_p90_bps
                    if direction == "down"
                    else run.result.upload_p90_bps
                )
                extra = f", p90 {(p90 or 0) / 1e6:.1f}"
            say(
                f"  {direction:<4} {name:<24} {mbps or 0:8.1f} Mbit/s{extra}; "
                f"x link {_ratio(mbps, rate)}, x iperf3 {_ratio(mbps, reference)}"
            )
        if iperf is not None:
            say(
                f"  {direction:<4} {'iperf3 -P 4':<24} {iperf.mbps:8.1f} Mbit/s; "
                f"x link {_ratio(iperf.mbps, rate)}; client CPU {iperf.cpu_s:.2f} s"
            )
    result = case.onnet.result
    say(
        f"  on-net: idle RTT {result.latency_ms or 0:.2f} ms, loaded RTT "
        f"{result.loaded_latency_ms or 0:.2f} ms ({result.responsiveness_rpm or 0:.0f} RPM), "
        f"{result.duration_s:.1f} s, agent_limited {result.agent_limited}"
    )
    iperf_cpu = sum(run.cpu_s for run in case.iperf.values()) if case.iperf else None
    say(
        f"  CPU s: agent {case.onnet.cpu_s:.2f} (on-net test), iperf3 client "
        f"{'n/a' if iperf_cpu is None else f'{iperf_cpu:.2f}'} (down + up), collector "
        f"{case.collector_cpu_s:.2f}"
        + (
            ""
            if case.internet is None or case.internet.child_cpu_s is None
            else f", speedtest-cli child {case.internet.child_cpu_s:.2f}"
        )
    )
    say(
        f"  RSS: agent process {case.onnet.rss_before_mb:.1f} MB before the test, "
        f"peak {case.onnet.peak_rss_mb:.1f} MB"
        + (
            ""
            if case.internet is None or case.internet.child_peak_rss_mb is None
            else f"; speedtest-cli child peak {case.internet.child_peak_rss_mb:.1f} MB"
        )
    )


def figures(case: Case) -> list[Figure]:
    out: list[Figure] = []
    rate = case.impairment.rate_mbit
    name = case.label
    for direction, streams in (("down", DEFAULTS.streams_down), ("up", DEFAULTS.streams_up)):
        iperf = case.iperf.get(direction)
        reference = None if iperf is None else iperf.mbps
        mbps = case.onnet.mbps(direction)
        passed = mbps is not None and reference is not None and mbps >= ONNET_TARGET * reference
        out.append(
            _throughput(
                f"{name} {direction}, {streams} streams",
                "on-net",
                mbps,
                reference,
                rate,
                f"target >= {ONNET_TARGET}: {'PASS' if passed else 'MISS'}",
            )
        )
        for label, run, ours in (
            (f"{name} {direction}, 1 stream", case.single, "1 strm"),
            (f"{name} {direction}, speedtest-cli", case.internet, "st-cli"),
        ):
            if run is not None:
                out.append(_throughput(label, ours, run.mbps(direction), reference, rate, ""))
        if iperf is not None:
            out.append(
                Figure(
                    "onnet",
                    f"{name} {direction}, iperf3 -P 4",
                    "Mbit/s",
                    "iperf3",
                    iperf.mbps,
                    "link",
                    float(rate),
                    False,
                )
            )
    # In CPU milliseconds: the summary prints one decimal, and iperf3 uses a tenth of a second.
    iperf_cpu = sum(run.cpu_s for run in case.iperf.values()) if case.iperf else None
    cpu_ok = iperf_cpu is not None and case.onnet.cpu_s <= CPU_TARGET * iperf_cpu
    out.append(
        Figure(
            "onnet",
            f"{name} CPU, on-net test",
            "ms",
            "agent",
            case.onnet.cpu_s * 1000,
            "iperf3",
            None if iperf_cpu is None else iperf_cpu * 1000,
            True,
            verdict=f"target <= {CPU_TARGET}: {'PASS' if cpu_ok else 'MISS'}",
        )
    )
    child_cpu = None if case.internet is None else case.internet.child_cpu_s
    if child_cpu is not None:
        out.append(
            Figure(
                "onnet",
                f"{name} CPU vs speedtest-cli",
                "ms",
                "agent",
                case.onnet.cpu_s * 1000,
                "st-cli",
                child_cpu * 1000,
                True,
            )
        )
    verdict = ""
    if rate == RSS_TARGET_RATE_MBIT and not case.impairment.needs_netem:
        ok = case.onnet.peak_rss_mb <= RSS_TARGET_MB
        verdict = f"agent target <= {RSS_TARGET_MB:g} MB: {'PASS' if ok else 'MISS'}"
    out.append(
        Figure(
            "onnet",
            f"{name} peak RSS",
            "MB",
            "agent",
            case.onnet.peak_rss_mb,
            "st-cli",
            None if case.internet is None else case.internet.child_peak_rss_mb,
            True,
            verdict=verdict,
        )
    )
    return out


def _throughput(
    label: str,
    ours: str,
    mbps: float | None,
    iperf: float | None,
    rate: int,
    target: str,
) -> Figure:
    link = f"x link {_ratio(mbps, rate)}"
    return Figure(
        "onnet",
        label,
        "Mbit/s",
        ours,
        mbps,
        "iperf3",
        iperf,
        False,
        verdict=f"{link}; {target}" if target else link,
    )


def cases(rates: tuple[int, ...]) -> Iterator[tuple[str, Impairment]]:
    """Each rate on a clean link, then with each netem impairment."""
    for rate in rates:
        yield f"{rate}M", Impairment(rate)
        for label, delay_ms, loss_percent in IMPAIRMENTS:
            yield f"{rate}M {label}", Impairment(rate, delay_ms, loss_percent)


def _failed(label: str, reason: str) -> Figure:
    return Figure("onnet", label, "", "", None, "", None, False, instead=f"FAILED: {reason}")


def _skipped(label: str, reason: str) -> Figure:
    return Figure("onnet", label, "", "", None, "", None, False, instead=f"skipped: {reason}")


def run(rates: tuple[int, ...] = RATES_MBIT) -> list[Figure]:
    started = time.monotonic()
    say(
        f"== onnet: ReadyNet on-net ({DEFAULTS.streams_down}/{DEFAULTS.streams_up} streams, "
        f"{DEFAULTS.duration_s:g} s each way, {DEFAULTS.warmup_s:g} s warm-up) vs iperf3 "
        f"-P {IPERF_STREAMS} vs 1 stream vs speedtest-cli, over a shaped veth between two "
        "namespaces"
    )
    reason = unavailable()
    if reason is not None:
        say(f"  skipped: {reason}")
        return [_skipped("shaped link", reason)]
    if require_tool("iperf3") is not None:
        say(f"  reference skipped: {require_tool('iperf3')} (Debian package iperf3)")
    out: list[Figure] = []
    with (
        tempfile.TemporaryDirectory(prefix="rn-bench-onnet-") as tmp,
        TwoHostLink() as link,
        far_side(link, Path(tmp)) as far,
    ):
        say(
            f"  namespaces {link.server_ns} ({SERVER_ADDRESS}: collector, iperf3 -s, "
            f"speedtest.net stand-in) and {link.client_ns} (agent); "
            + ("netem available" if link.netem_missing is None else "no netem")
        )
        for name, impairment in cases(rates):
            if impairment.needs_netem and link.netem_missing is not None:
                say(f"== {name}: skipped: no netem")
                out.append(_skipped(name, "no netem"))
                continue
            try:
                out += figures(measure(link, far, impairment, name))
            except (BenchError, LinkError) as exc:
                # One failed case must not hide the others' figures.
                first_line = next(iter(str(exc).splitlines()), "")
                say(f"== {name}: FAILED: {exc}")
                out.append(_failed(name, first_line))
    say(f"  onnet took {time.monotonic() - started:.0f} s")
    return out


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwind through every finally: namespaces go too


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.onnet", description=__doc__)
    parser.add_argument(
        "--rates", type=int, nargs="+", default=RATES_MBIT, help="shaped rates in Mbit/s"
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    for figure in run(tuple(args.rates)):
        say(figure.line())


if __name__ == "__main__":
    main()
