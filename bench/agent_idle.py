"""The agent daemon between jobs: resident memory and CPU of `readynet-agent run` over time.

A real collector (SQLite) and snmpsim serving three recorded devices run on 127.0.0.1; the agent
daemon runs as on a Pi: its own process, in a virtual environment holding only the agent's
dependencies (copied offline from this one: the development extras pull in packages such as rich
and click that httpx then imports, 4.4 MB the field never has), with the shipped
defaults except where it must point at loopback: SNMP polls every 5 minutes, delivery every
60 s, and a school day on Sundays only so that no throughput test falls inside the run (this
measures the idle daemon; the on-net benchmark measures it under test). RSS is read from /proc
every few seconds; CPU is user + system time over the run, as a share of one core.

Targets (issue 7): idle RSS <= 50 MB, CPU <= 1 % of a core. Reference: the same figures of the
collector next to it (the rest of the process tree is not the agent's).

Run alone with ``python -m bench.agent_idle [--seconds N]`` (default 600).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from importlib.metadata import distribution
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from sqlalchemy import func, select

from agent.outbox import Outbox
from bench._collector import (
    BenchError,
    enroll,
    peak_rss_bytes,
    process_cpu_seconds,
    start_collector,
)
from bench._common import LOOPBACK, REPO_DIR, Figure, say
from collector.localrun import log_tail, run_snmpsim, stop_process
from collector.store.db import make_engine
from collector.store.models import Measurement

SECONDS = 600
SAMPLE_EVERY_S = 5
RSS_TARGET_MB = 50.0
CPU_TARGET = 0.01
DEVICES = ("iosxe", "edgeos", "procurve_2520")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"no VmRSS for pid {pid}")


def _agent_only_python(workdir: Path) -> Path:
    """A venv with readynet's own dependencies (no extras), copied from this environment."""
    venv = workdir / "agent-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python*/site-packages"))
    for name in _dependency_closure("readynet") - {"readynet"}:
        dist = distribution(name)
        for file in dist.files or []:
            source = Path(str(dist.locate_file(file)))
            if file.parts[0] == ".." or not source.is_file():
                continue  # console scripts and the like, outside site-packages
            target = site / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    (site / "readynet-repo.pth").write_text(f"{REPO_DIR}\n")
    return venv / "bin" / "python"


def _dependency_closure(root: str) -> set[str]:
    seen: set[str] = set()
    todo = [root]
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        for text in distribution(name).requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return seen


def _successful_polls(database_url: str) -> int:
    engine = make_engine(database_url, workers=1)
    try:
        with engine.connect() as connection:
            query = select(func.count()).where(
                Measurement.kind == "snmp_poll", Measurement.error.is_(None)
            )
            return int(connection.scalar(query) or 0)
    finally:
        engine.dispose()


def _queued_polls(state_dir: Path) -> int:
    """Successful polls still in the agent's outbox (delivery runs once a minute)."""
    with Outbox(state_dir / "outbox.sqlite3") as outbox:
        return sum(
            1 for m in outbox.pending(limit=10_000) if m.kind == "snmp_poll" and m.error is None
        )


def _config(workdir: Path, url: str, token: str, snmp_port: int) -> Path:
    config = {
        "collector_url": url,
        "token": token,
        "state_dir": str(workdir / "agent-state"),
        # Loopback only: no speedtest.net, and no test inside the measured run.
        "internet": {"enabled": False},
        # No first round after "install" either: the run measures the daemon between jobs.
        "first_round_s": None,
        "schedule": {"school_day": {"timezone": "UTC", "weekdays": ["sun"]}},
        "devices": [
            {"name": stem, "address": LOOPBACK, "port": snmp_port, "auth": {"community": stem}}
            for stem in DEVICES
        ],
    }
    if time.gmtime().tm_wday == 6:  # a Sunday: keep the test day out of reach
        config["schedule"] = {"school_day": {"timezone": "UTC", "weekdays": ["sat"]}}
    path = workdir / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def measure(seconds: float, workdir: Path) -> list[Figure]:
    database_url = f"sqlite:///{workdir / 'collector.db'}"
    token = enroll(database_url)
    recordings = REPO_DIR / "tests" / "data" / "snmprec"
    with (
        run_snmpsim(recordings, workdir / "snmpsim", only=DEVICES) as snmp_port,
        start_collector(database_url, workdir) as collector,
    ):
        config = _config(workdir, collector.url, token, snmp_port)
        python = _agent_only_python(workdir)
        log_path = workdir / "agent.log"
        with log_path.open("wb") as log:
            agent = subprocess.Popen(
                [str(python), "-m", "agent", "run", "--config", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            # Start-up (imports, first poll, first delivery) is not idle: measure after it.
            time.sleep(15)
            if agent.poll() is not None:
                raise BenchError(f"the agent stopped; log tail:\n{log_tail(log_path)}")
            started, agent_cpu, collector_cpu = (
                time.monotonic(),
                process_cpu_seconds(agent.pid),
                process_cpu_seconds(collector.pid),
            )
            rss = []
            while time.monotonic() - started < seconds:
                rss.append(_rss_mb(agent.pid))
                time.sleep(SAMPLE_EVERY_S)
            elapsed = time.monotonic() - started
            agent_share = (process_cpu_seconds(agent.pid) - agent_cpu) / elapsed
            collector_share = (process_cpu_seconds(collector.pid) - collector_cpu) / elapsed
            peak = (peak_rss_bytes(agent.pid) or 0) / 2**20
            collector_rss = _rss_mb(collector.pid)
        finally:
            stop_process(agent)
    polls = _successful_polls(database_url) + _queued_polls(workdir / "agent-state")
    if polls < len(DEVICES):
        raise BenchError(
            f"only {polls} successful SNMP polls arrived; agent log:\n{log_tail(log_path)}"
        )
    say(
        f"  agent daemon over {elapsed:.0f} s idle: RSS {min(rss):.1f}-{max(rss):.1f} MB "
        f"(peak since start {peak:.1f} MB), CPU {agent_share:.2%} of a core; "
        f"collector beside it: RSS {collector_rss:.1f} MB, CPU {collector_share:.2%}"
    )
    rss_ok = max(rss) <= RSS_TARGET_MB
    cpu_ok = agent_share <= CPU_TARGET
    return [
        Figure(
            "idle",
            "agent daemon RSS",
            "MB",
            "agent",
            max(rss),
            "collector",
            collector_rss,
            True,
            verdict=f"target <= {RSS_TARGET_MB:g} MB: {'PASS' if rss_ok else 'MISS'}",
        ),
        Figure(
            "idle",
            "agent daemon CPU",
            "%",
            "agent",
            agent_share * 100,
            "collector",
            collector_share * 100,
            True,
            verdict=f"target <= {CPU_TARGET:.0%}: {'PASS' if cpu_ok else 'MISS'}",
        ),
    ]


def run(seconds: float = SECONDS) -> list[Figure]:
    say(f"== agent idle: readynet-agent run for {seconds:.0f} s between jobs")
    with tempfile.TemporaryDirectory(prefix="rn-bench-idle-") as tmp:
        return measure(seconds, Path(tmp))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.agent_idle", description=__doc__)
    parser.add_argument("--seconds", type=float, default=SECONDS)
    args = parser.parse_args(argv)
    for figure in run(args.seconds):
        say(figure.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
