"""`make demo`: the whole system on one machine, on loopback only.

Starts snmpsim serving real device recordings, a collector on SQLite, enrols one agent for a demo
school as a technician would (`agent enroll` prints a one-time code, `readynet-agent enroll`
exchanges it for the token), adds a viewer with an API token (every read needs one), runs the
agent's measurement round several times (the readiness rule wants 10+ tests), then prints the
readiness summary, the agent list and where to look.
Every process it starts is a real ReadyNet command (`readynet-collector ...`, `readynet-agent
enroll` and `once`), so the demo exercises what ships.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import yaml

from collector.localrun import free_port, run_snmpsim, stop_process, venv_script, wait_for_http

# The simulated school network: (device name, snmpsim community = recording file stem).
DEMO_DEVICES = (("core-router", "iosxe"), ("edge-router", "edgeos"), ("library-ap", "unifi_nanohd"))
DEMO_SCHOOL = {"name": "Demo Elementary", "students": 450, "staff": 50}
DEMO_VIEWER = "demo-viewer@district.example"


LOOPBACK_BUDGET_BYTES = 10_000_000_000_000  # 10 TB: an idle loopback moves 40+ Gbit/s


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    workdir: Path = args.workdir.resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    env = {
        **os.environ,
        "READYNET_COLLECTOR_DATABASE_URL": f"sqlite:///{workdir / 'collector.db'}",
        # Loopback moves gigabits: ten rounds would spend a school's speed-test budget.
        "READYNET_COLLECTOR_SPEEDTEST_DOWNLOAD_BUDGET_BYTES": str(LOOPBACK_BUDGET_BYTES),
        "READYNET_COLLECTOR_SPEEDTEST_UPLOAD_BUDGET_BYTES": str(LOOPBACK_BUDGET_BYTES),
    }
    with ExitStack() as stack:
        snmp_port = stack.enter_context(_snmpsim(args.snmprec, workdir))
        school_id, code, token_file = _set_up_collector(env, workdir)
        port = args.port if _tcp_port_free(args.port) else free_port()
        url = f"http://127.0.0.1:{port}"
        stack.enter_context(_serve(env, port, workdir / "collector.log"))
        config = _write_agent_config(workdir, snmp_port)
        agent = str(venv_script("readynet-agent"))
        _run([agent, "enroll", "--collector", url, "--code", code, "--config", str(config)], env)
        for round_number in range(1, args.rounds + 1):
            print(f"--- agent round {round_number}/{args.rounds}", flush=True)
            _run([agent, "once", "--config", str(config)], env)
        _print_summary(url, school_id, token_file)
        print("\n=== Agents ===")
        _run([str(venv_script("readynet-collector")), "agent", "list"], env)
        if args.stay and sys.stdin.isatty():
            print("\nServing. Press Ctrl-C to stop.", flush=True)
            _wait_for_interrupt()
        else:
            print("\n(stdin is not a terminal or --exit given: stopping now.)")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m collector.demo", description=__doc__)
    parser.add_argument("--workdir", type=Path, default=Path(".demo"))
    parser.add_argument("--snmprec", type=Path, default=Path("tests/data/snmprec"))
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--exit", dest="stay", action="store_false", help="stop after the summary")
    return parser


def _run(command: list[str], env: dict[str, str], *, echo: bool = True) -> str:
    proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if echo:
        sys.stdout.write(proc.stdout)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"demo step failed: {' '.join(command[1:])}")
    return proc.stdout


def _set_up_collector(env: dict[str, str], workdir: Path) -> tuple[int, str, Path]:
    collector = str(venv_script("readynet-collector"))
    _run([collector, "migrate"], env)
    name, students, staff = DEMO_SCHOOL["name"], DEMO_SCHOOL["students"], DEMO_SCHOOL["staff"]
    add = [collector, "school", "add", "--name", f"{name}", "--students", f"{students}"]
    school_id = int(_run([*add, "--staff", f"{staff}"], env, echo=False))
    enroll = [collector, "agent", "enroll", "--school", f"{school_id}", "--name", "demo-pi"]
    code = _run(enroll, env, echo=False).splitlines()[0]
    print(
        f"school {school_id}: {name} ({students} students, {staff} staff); "
        f"enrolment code for agent demo-pi: {code}"
    )
    # Every read needs a user's token: a viewer for the summary, the reader and Prometheus.
    _run([collector, "user", "add", "--name", DEMO_VIEWER, "--role", "viewer"], env, echo=False)
    create = [collector, "token", "create", "--user", DEMO_VIEWER, "--name", "demo"]
    token_file = workdir / "viewer-token"
    token_file.write_text(_run(create, env, echo=False).strip())
    token_file.chmod(0o600)
    print(f"user {DEMO_VIEWER} (viewer, scope all); its API token in {token_file}")
    return school_id, code, token_file


def _tcp_port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextmanager
def _snmpsim(snmprec: Path, workdir: Path) -> Iterator[int]:
    communities = [community for _, community in DEMO_DEVICES]
    with run_snmpsim(snmprec, workdir, only=communities) as port:
        print(f"snmpsim serving {len(DEMO_DEVICES)} recorded devices on udp://127.0.0.1:{port}")
        yield port


@contextmanager
def _serve(env: dict[str, str], port: int, log_path: Path) -> Iterator[None]:
    log = log_path.open("w")
    proc = subprocess.Popen(
        [
            str(venv_script("readynet-collector")),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        if not wait_for_http(proc, f"http://127.0.0.1:{port}/healthz", timeout_s=60):
            raise SystemExit(f"the collector did not start; see {log_path}")
        print(f"collector serving on http://127.0.0.1:{port} (log: {log_path})")
        yield
    finally:
        stop_process(proc)
        log.close()


def _write_agent_config(workdir: Path, snmp_port: int) -> Path:
    """agent.yaml without collector or token: `readynet-agent enroll` adds both."""
    config = {
        "state_dir": str(workdir / "agent-state"),
        # Small transfers keep the demo quick; loopback is far faster than any school link.
        "onnet": {"duration_s": 1.5, "warmup_s": 0.5, "request_bytes": 8_000_000},
        "latency": {"interval_s": 0.05},
        # Loopback only: the internet test would go to speedtest.net.
        "internet": {"enabled": False},
        "devices": [
            {"name": name, "address": "127.0.0.1", "port": snmp_port, "auth": {"community": c}}
            for name, c in DEMO_DEVICES
        ],
    }
    path = workdir / "agent.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


def _print_summary(url: str, school_id: int, token_file: Path) -> None:
    auth = {"Authorization": f"Bearer {token_file.read_text()}"}
    readiness = httpx.get(
        f"{url}/api/v1/schools/{school_id}/readiness", headers=auth, timeout=10
    ).json()
    print(f"\n=== Readiness: {readiness['school']} ({readiness['users']} students and staff) ===")
    print(
        f"profile {readiness['profile']}: {readiness['tests']} tests over "
        f"{', '.join(readiness['paths'])} in the last {readiness['window_days']} days, "
        f"judged on the {readiness['measure']}"
    )
    for target in readiness["targets"]:
        measured = target["measured_mbps"]
        shown = "n/a" if measured is None else f"{measured:,.1f}"
        print(
            f"  {target['target_id']:<18} required {target['required_mbps']:>8,.1f} Mbps"
            f"   measured {shown:>10} Mbps   {target['verdict'].upper()}"
        )
    print("\nWhere to look:")
    print(f"  readiness report  {url}/api/v1/schools/{school_id}/readiness")
    print(f"  metrics           {url}/metrics")
    print(f"  API docs          {url}/docs")
    print("Reads need the viewer's token, e.g.:")
    print(
        f'  curl -H "Authorization: Bearer $(cat {token_file})" '
        f"{url}/api/v1/schools/{school_id}/readiness"
    )


def _wait_for_interrupt() -> None:
    try:
        signal.pause()
    except KeyboardInterrupt:
        print("\nstopping")


if __name__ == "__main__":
    raise SystemExit(main())
