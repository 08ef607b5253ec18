"""The agent's side of `bench.onnet`: one probe in a fresh agent process, and what it cost.

`bench.onnet` starts this inside the near network namespace
(``ip netns exec <ns> python -m bench._netns_agent onnet|internet ...``). The process is set
up as the agent daemon's: it imports `agent.cli` (everything ``readynet-agent run`` loads:
the scheduler, the SNMP poller, the probes) and builds each probe from `AgentSettings` as a
measurement round does, so the resident set measured is the daemon's, not the benchmark's.
The agent token comes in ``READYNET_BENCH_TOKEN`` so it is not on a command line.

The last line of stdout is one JSON object: the probe's result, the CPU seconds this process
(and, for the internet test, its speedtest-cli child) spent in the probe, this process's resident
set before the probe and its peak (VmHWM), and the speedtest-cli child's peak as the internet
probe logs it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import agent.cli  # noqa: F401  (the daemon's modules, for its resident set)
from agent.probes.base import ProbeResult
from agent.probes.internet import InternetProbe, InternetSettings
from agent.probes.onnet import OnNetProbe
from agent.settings import AgentSettings, OnNetSettings

TOKEN_ENV = "READYNET_BENCH_TOKEN"
_CHILD_PEAK = re.compile(r"peaked at (\d+) kB RSS")


def status_kb(field: str) -> int:
    """A kB figure of this process from /proc/self/status (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def cpu_s(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


class ChildPeak(logging.Handler):
    """Keeps the speedtest-cli child's peak RSS that `InternetProbe` logs."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.kb: int | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if match := _CHILD_PEAK.search(record.getMessage()):
            self.kb = int(match[1])


def onnet(args: argparse.Namespace, state_dir: Path) -> tuple[ProbeResult, dict[str, Any]]:
    settings = AgentSettings(
        collector_url=args.url,
        # A lab link between two namespaces the bench made: plain http is the point there.
        allow_insecure_http=True,
        token=os.environ[TOKEN_ENV],
        state_dir=state_dir,
        onnet=OnNetSettings(
            streams_down=args.streams_down,
            streams_up=args.streams_up,
            duration_s=args.duration_s,
            warmup_s=args.warmup_s,
            loaded_ping_interval_s=args.loaded_ping_interval_s,
        ),
    )
    probe = OnNetProbe(
        collector_url=settings.collector_url,
        token=settings.token.get_secret_value(),
        settings=settings.onnet,
    )
    [result] = asyncio.run(probe.run())
    return result, {}


def internet(args: argparse.Namespace, state_dir: Path) -> tuple[ProbeResult, dict[str, Any]]:
    settings = InternetSettings(
        proxy_url=args.proxy_url,
        ca_file=args.ca_file,
        timeout_s=args.timeout_s,
        deadline_s=args.deadline_s,
    )
    peak = ChildPeak()
    logger = logging.getLogger("agent.probes.internet")
    logger.setLevel(logging.INFO)
    logger.addHandler(peak)
    children_before = cpu_s(resource.RUSAGE_CHILDREN)
    [result] = asyncio.run(InternetProbe(settings=settings).run())
    return result, {
        "child_cpu_s": cpu_s(resource.RUSAGE_CHILDREN) - children_before,
        "child_peak_rss_kb": peak.kb,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench._netns_agent", description=__doc__)
    sub = parser.add_subparsers(required=True, dest="test")
    on = sub.add_parser("onnet", help="OnNetProbe against a collector")
    on.add_argument("--url", required=True, help="collector base URL")
    on.add_argument("--streams-down", type=int, required=True)
    on.add_argument("--streams-up", type=int, required=True)
    on.add_argument("--duration-s", type=float, default=OnNetSettings().duration_s)
    on.add_argument("--warmup-s", type=float, default=OnNetSettings().warmup_s)
    on.add_argument(
        "--loaded-ping-interval-s", type=float, default=OnNetSettings().loaded_ping_interval_s
    )
    on.set_defaults(run=onnet)
    net = sub.add_parser("internet", help="InternetProbe (speedtest-cli) through a stand-in")
    net.add_argument("--proxy-url", required=True)
    net.add_argument("--ca-file", type=Path, required=True)
    net.add_argument("--timeout-s", type=float, default=10.0)
    net.add_argument("--deadline-s", type=float, default=120.0)
    net.set_defaults(run=internet)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="rn-bench-agent-") as state_dir:
        rss_before_kb = status_kb("VmRSS")
        cpu_before = cpu_s(resource.RUSAGE_SELF)
        started = time.monotonic()
        result, extra = args.run(args, Path(state_dir))
        report = {
            "result": result.model_dump_json(),
            "cpu_s": cpu_s(resource.RUSAGE_SELF) - cpu_before,
            "wall_s": time.monotonic() - started,
            "rss_before_kb": rss_before_kb,
            "peak_rss_kb": status_kb("VmHWM"),
            **extra,
        }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
