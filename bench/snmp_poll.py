"""SNMP polling: CPU per device poll against net-snmp, 500 devices in one round, RSS, dead devices.

Everything talks to snmpsim on 127.0.0.1 serving copies of tests/data/snmprec (community = file
stem; snmpsim answers at most 64 varbinds per GETBULK). In one run:

- **cpu**: the agent's real poll (`agent.snmp.device.poll_device` on one shared engine, as a
  round runs it), `time.process_time()` around each poll, median of many. The poll's requests are
  captured once through a relay on loopback, and net-snmp reads the same device:
  - *shell* (the target's reference): what a shell script reading the same values costs,
    process starts included: one `snmpget` per GET the poll sends (same OIDs) and one
    `snmpbulkwalk -Cr<R>` per column walked; the bench checks both read the same values;
  - *in-process*: net-snmp's cost of the very requests and varbinds the poll exchanged, without
    process starts: per request and per varbind from two walks of one 1,380-row column in one
    process each (`-Cr1`: a request per varbind; `-Cr64`), less the CPU of a bare process
    (`snmpget` without an OID). A detail line also replays the poll's own requests, one
    `snmpget`/`snmpbulkget -Cn0 -Cr<R>` process each.
  net-snmp's CPU is `getrusage(RUSAGE_CHILDREN)` user + sys around each process, median of 7.
- **fleet**: 500 devices (iosxe, procurve_2520 and edgeos in turn, spread over two snmpsim
  processes) in one `snmp_round`, at concurrency 32 and 8: wall time against the 30 s target, the
  round's own CPU and snmpsim's (single-threaded Python: it is the bottleneck here).
- **rss**: two 500-device jobs in the real poller process (`agent.snmp.poller.poll` starting
  `python -m agent.snmp.child`): its peak RSS (VmHWM) against the 60 MB target, and its imports
  alone; then 1,000 polls in this process on one shared engine, RSS after 1, 10, 100, 500 and
  1,000 polls (flat is the target; this process holds the bench too).
- **dead**: 96 live devices and 4 dead ports (nothing listening), timeout 1 s, 1 retry: the
  round with the dead devices first against max(live round, dead round), and with them last
  against live round + one timeout (a dead device holds one of the 32 slots meanwhile).

Run alone with ``python -m bench.snmp_poll`` (``--parts cpu fleet`` for some parts only).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from pyasn1.codec.ber import decoder
from pydantic import SecretStr
from pysnmp.proto import api

from agent.settings import DeviceSettings, SnmpAuth, SnmpSettings
from agent.snmp import poller
from agent.snmp.device import poll_device
from agent.snmp.profile import ProfileSet, load_profiles
from agent.snmp.round import snmp_round
from agent.snmp.walk import close_engine, get_scalars, new_engine, open_session, walk_columns
from agent.wire import SnmpPoll
from bench._common import LOOPBACK, REPO_DIR, VENV_BIN, Figure, require_tool, say
from collector.localrun import free_port, run_snmpsim

GROUP = "snmp"
DATA_DIR = REPO_DIR / "tests" / "data" / "snmprec"
RECORDINGS = ("iosxe", "procurve_2520", "edgeos", "arubaos")
FLEET_RECORDINGS = ("iosxe", "procurve_2520", "edgeos")
POLLS = 40  # timed polls per recording (arubaos, a 1,386-AP controller: a quarter)
NETSNMP_RUNS = 7  # processes per distinct net-snmp command; the median counts
FLEET_DEVICES = 500
CONCURRENCIES = (32, 8)
SNMPSIM_PROCESSES = 2  # snmpsim is single-threaded; this machine has 2 cores
RSS_POLLS = (1, 10, 100, 500, 1000)
DEAD_LIVE, DEAD_DEAD = 96, 4

CPU_TARGET = 1.0  # ours / net-snmp (shell), per poll
FLEET_TARGET_S = 30.0
RSS_TARGET_MB = 60.0
DEAD_TARGET = 1.2  # round with dead devices first / max(live round, dead round)

TOOL_TIMEOUT_S = 30.0
_V2C = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
_NOT_VALUES = ("No Such", "No more variables")
_CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    pass


# ---------------------------------------------------------------------------------------------
# Devices, snmpsim, processes


def _device(port: int, community: str, name: str | None = None, **fields: Any) -> DeviceSettings:
    return DeviceSettings(
        name=name or community,
        address=LOOPBACK,
        port=port,
        auth=SnmpAuth(community=SecretStr(community)),
        **{"timeout_s": 2.0, "retries": 1, **fields},
    )


def _fleet(ports: Sequence[int], count: int, **fields: Any) -> list[DeviceSettings]:
    """`count` devices, the fleet recordings in turn, spread over the snmpsim processes."""
    return [
        _device(
            ports[i % len(ports)],
            FLEET_RECORDINGS[i % len(FLEET_RECORDINGS)],
            name=f"dev{i:04d}-{FLEET_RECORDINGS[i % len(FLEET_RECORDINGS)]}",
            **fields,
        )
        for i in range(count)
    ]


@dataclass
class Sims:
    """The running snmpsim processes: their ports and pids (for their CPU time)."""

    ports: list[int]
    pids: list[int]

    def cpu_s(self) -> float:
        return sum(_proc_cpu_s(pid) for pid in self.pids)


@contextmanager
def _snmpsims(workdir: Path, count: int, only: Sequence[str]) -> Iterator[Sims]:
    with ExitStack() as stack:
        ports = []
        for n in range(count):
            ports.append(stack.enter_context(run_snmpsim(DATA_DIR, workdir / f"sim{n}", only=only)))
        pids = [pid for pid, cmdline in _children() if "snmpsim" in cmdline]
        if len(pids) != count:
            raise BenchError(f"found {len(pids)} snmpsim processes, expected {count}")
        yield Sims(ports, pids)


def _children() -> list[tuple[int, str]]:
    """(pid, command line) of this process's children, from /proc."""
    found = []
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == me:
            found.append((int(entry.name), cmdline))
    return found


def _proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime + stime


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _status_mb(field_name: str, pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"no {field_name} in /proc/{pid}/status")


def _ms(seconds: float) -> float:
    return seconds * 1000


# ---------------------------------------------------------------------------------------------
# cpu: what one poll sends, captured through a relay


@dataclass(frozen=True)
class Request:
    bulk: bool
    oids: tuple[str, ...]
    non_repeaters: int = 0
    max_repetitions: int = 0


@dataclass
class Traffic:
    requests: list[Request] = field(default_factory=list)
    varbinds: int = 0  # in the responses
    bytes_out: int = 0
    bytes_in: int = 0


class _Relay(asyncio.DatagramProtocol):
    """Between a poller and snmpsim on loopback: forwards both ways, notes every request.

    Polls through it are sequential (one device), so answers go to the last asker."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.traffic = Traffic()
        self.transport: asyncio.DatagramTransport | None = None
        self.client: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        assert self.transport is not None
        message, _ = decoder.decode(data, asn1Spec=_V2C.Message())
        pdu = _V2C.apiMessage.get_pdu(message)
        if addr != self.upstream:
            oids = tuple(str(oid) for oid, _ in _V2C.apiPDU.get_varbinds(pdu))
            if pdu.isSameTypeWith(_V2C.GetBulkRequestPDU()):
                request = Request(
                    True,
                    oids,
                    int(_V2C.apiBulkPDU.get_non_repeaters(pdu)),
                    int(_V2C.apiBulkPDU.get_max_repetitions(pdu)),
                )
            else:
                request = Request(False, oids)
            self.traffic.requests.append(request)
            self.traffic.bytes_out += len(data)
            self.client = addr
            self.transport.sendto(data, self.upstream)
        else:
            self.traffic.varbinds += len(_V2C.apiPDU.get_varbinds(pdu))
            self.traffic.bytes_in += len(data)
            self.transport.sendto(data, self.client)


async def _capture(
    sim_port: int, community: str, profiles: ProfileSet, engine: Any
) -> tuple[Traffic, SnmpPoll]:
    loop = asyncio.get_running_loop()
    transport, relay = await loop.create_datagram_endpoint(
        lambda: _Relay((LOOPBACK, sim_port)), local_addr=(LOOPBACK, 0)
    )
    try:
        relay_port = transport.get_extra_info("sockname")[1]
        poll = await poll_device(_device(relay_port, community), profiles, engine=engine)
    finally:
        transport.close()
    if poll.error is not None:
        raise BenchError(f"{community}: the poll failed: {poll.error}")
    return relay.traffic, poll


async def _timed_polls(
    device: DeviceSettings, profiles: ProfileSet, engine: Any, polls: int
) -> tuple[list[float], list[float]]:
    """CPU and wall seconds of each of `polls` polls, one after the other."""
    cpu: list[float] = []
    wall: list[float] = []
    for _ in range(polls):
        started_cpu, started = time.process_time(), time.perf_counter()
        poll = await poll_device(device, profiles, engine=engine)
        cpu.append(time.process_time() - started_cpu)
        wall.append(time.perf_counter() - started)
        if poll.error is not None:
            raise BenchError(f"{device.name}: the poll failed: {poll.error}")
    return cpu, wall


async def _values_read(device: DeviceSettings, traffic: Traffic) -> set[str]:
    """The OIDs (with a value) that the poll's GETs and walk read, through walk.py itself."""
    gets = [r for r in traffic.requests if not r.bulk]
    bulks = [r for r in traffic.requests if r.bulk]
    found: set[str] = set()
    async with open_session(device) as session:
        for request in gets:
            values = await get_scalars(session, list(request.oids))
            found.update(oid for oid, value in values.items() if value is not None)
        if bulks:
            table = await walk_columns(session, list(bulks[0].oids), bulks[0].max_repetitions)
            found.update(f"{column}.{suffix}" for column, rows in table.items() for suffix in rows)
    return found


def _netsnmp_run(args: list[str]) -> tuple[float, str]:
    """Run one net-snmp command; its CPU seconds (user + sys) and stdout."""
    before = _children_cpu_s()
    done = subprocess.run(args, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False)
    cpu = _children_cpu_s() - before
    if "Timeout" in done.stderr or (done.returncode != 0 and "Missing object" not in done.stderr):
        raise BenchError(f"{' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
    return cpu, done.stdout


def _netsnmp_median(args: list[str], runs: int = NETSNMP_RUNS) -> tuple[float, str]:
    samples = [_netsnmp_run(args) for _ in range(runs)]
    return statistics.median(cpu for cpu, _ in samples), samples[0][1]


def _values_in(output: str) -> set[str]:
    # `-On -Oq` lines look like `.1.3.6.1.2.1.31.1.1.1.1.2 "Gi0/0/1"`; a missing OID prints
    # "No Such Object/Instance ..." and the end of the MIB view "No more variables ...".
    found = set()
    for line in output.splitlines():
        oid, _, value = line.partition(" ")
        if oid.startswith(".") and not value.startswith(_NOT_VALUES):
            found.add(oid.lstrip("."))
    return found


def _base(community: str, target: str) -> list[str]:
    return ["-v2c", "-c", community, "-t", "5", "-r", "1", "-On", "-Oq", target]


def _netsnmp_shell(community: str, target: str, traffic: Traffic) -> tuple[float, set[str], int]:
    """A shell script reading the same values: snmpget per GET, snmpbulkwalk per column."""
    cpu = 0.0
    values: set[str] = set()
    processes = 0
    bulks = [r for r in traffic.requests if r.bulk]
    reps = bulks[0].max_repetitions if bulks else 25
    commands = [
        ["snmpget", *_base(community, target), *r.oids] for r in traffic.requests if not r.bulk
    ]
    if bulks:
        commands += [
            ["snmpbulkwalk", f"-Cr{reps}", *_base(community, target), column]
            for column in bulks[0].oids
        ]
    for command in commands:
        spent, out = _netsnmp_median(command)
        cpu += spent
        values |= _values_in(out)
        processes += 1
    return cpu, values, processes


def _netsnmp_requests(community: str, target: str, traffic: Traffic) -> float:
    """net-snmp's CPU for the poll's own requests, one process each (start-up included)."""
    medians: dict[Request, float] = {}
    for request in traffic.requests:
        if request in medians:
            continue
        if request.bulk:
            command = [
                "snmpbulkget",
                f"-Cn{request.non_repeaters}",
                f"-Cr{request.max_repetitions}",
                *_base(community, target),
                *request.oids,
            ]
        else:
            command = ["snmpget", *_base(community, target), *request.oids]
        medians[request] = _netsnmp_median(command)[0]
    return sum(medians[request] for request in traffic.requests)


# A long column for net-snmp's in-process costs: Aruba's per-radio client counts (1,380 rows of
# INTEGER) in the arubaos recording; snmpsim answers at most 64 varbinds per GETBULK.
_LONG_COLUMN = ("arubaos", "1.3.6.1.4.1.14823.2.2.1.5.2.1.5.1.7", 1380)
_SNMPSIM_MAX_VARBINDS = 64


@dataclass(frozen=True)
class NetSnmpCosts:
    """What a running net-snmp process spends: per process start, per request, per varbind."""

    start_s: float
    request_s: float
    varbind_s: float

    def requests(self, traffic: Traffic) -> float:
        return len(traffic.requests) * self.request_s + traffic.varbinds * self.varbind_s


def _netsnmp_costs(target: str) -> NetSnmpCosts:
    """Start-up from `snmpget` without an OID (config read, arguments parsed, exit); per request
    and per varbind from two walks of one long column in one process each, at -Cr1 (a request
    per varbind) and -Cr64 (64 varbinds per request), less that start-up."""
    start, _ = _netsnmp_median(["snmpget", *_base("public", target)], runs=3 * NETSNMP_RUNS)
    community, column, rows = _LONG_COLUMN
    shapes = []
    for reps in (1, _SNMPSIM_MAX_VARBINDS):
        command = ["snmpbulkwalk", f"-Cr{reps}", *_base(community, target), column]
        cpu, out = _netsnmp_median(command, runs=2 * NETSNMP_RUNS)
        if len(_values_in(out)) != rows:
            raise BenchError(f"snmpbulkwalk -Cr{reps} read {len(_values_in(out))} of {rows} rows")
        requests = rows // reps + 1  # the last one answers past the column's end
        shapes.append((cpu - start, requests, requests * reps))
    (c1, r1, v1), (c2, r2, v2) = shapes
    determinant = r1 * v2 - r2 * v1
    request_s = (c1 * v2 - c2 * v1) / determinant
    varbind_s = (r1 * c2 - r2 * c1) / determinant
    return NetSnmpCosts(start, max(request_s, 0.0), max(varbind_s, 0.0))


def _cpu_part(runner: asyncio.Runner, port: int, profiles: ProfileSet, polls: int) -> list[Figure]:
    say(
        f"-- cpu: poll_device on one shared engine, median of {polls} polls "
        "(arubaos: a quarter), against net-snmp"
    )
    target = f"{LOOPBACK}:{port}"
    costs = _netsnmp_costs(target)
    say(
        f"  net-snmp: {_ms(costs.start_s):.2f} ms CPU to start a process (snmpget, no OID); in "
        f"one process {costs.request_s * 1e6:.1f} us per request + {costs.varbind_s * 1e6:.2f} "
        "us per varbind (snmpbulkwalk -Cr1 and -Cr64 of 1,380 INTEGERs, less the start)"
    )
    figures = []
    engine = new_engine()
    try:
        for community in RECORDINGS:
            n = polls if community != "arubaos" else max(3, polls // 4)
            traffic, poll = runner.run(_capture(port, community, profiles, engine))
            device = _device(port, community)
            runner.run(_timed_polls(device, profiles, engine, 2))  # warm-up
            cpu, wall = runner.run(_timed_polls(device, profiles, engine, n))
            ours = statistics.median(cpu)
            ours_values = runner.run(_values_read(device, traffic))

            shell, shell_values, processes = _netsnmp_shell(community, target, traffic)
            replayed = _netsnmp_requests(community, target, traffic)
            in_process = costs.requests(traffic)
            same = "same values" if ours_values == shell_values else "DIFFERENT values"
            say(
                f"  {community}: profile {poll.profile}, {len(poll.interfaces)} interfaces, "
                f"{len(poll.aps)} APs; {len(traffic.requests)} requests "
                f"({sum(r.bulk for r in traffic.requests)} GETBULK), {traffic.varbinds} varbinds "
                f"answered, {traffic.bytes_out} B out / {traffic.bytes_in} B in; "
                f"{len(ours_values)} values read ({same} as the net-snmp shell run)"
            )
            if ours_values != shell_values:
                only_ours = sorted(ours_values - shell_values)[:3]
                only_theirs = sorted(shell_values - ours_values)[:3]
                say(f"    only ours: {only_ours} only net-snmp: {only_theirs}")
            say(
                f"    ours {_ms(ours):.2f} ms CPU/poll (min {_ms(min(cpu)):.2f}; "
                f"{ours / max(traffic.varbinds, 1) * 1e6:.1f} us/varbind; wall "
                f"{_ms(statistics.median(wall)):.1f} ms); net-snmp: shell {_ms(shell):.1f} ms "
                f"({processes} processes), the same requests replayed {_ms(replayed):.1f} ms "
                f"({len(traffic.requests)} processes), in one process {_ms(in_process):.2f} ms"
            )
            figures.append(
                Figure(
                    GROUP,
                    f"{community} CPU/poll, shell",
                    "ms",
                    "ours",
                    _ms(ours),
                    "net-snmp",
                    _ms(shell),
                    lower_is_better=True,
                    verdict=_verdict(ours / shell, CPU_TARGET, f"target <= {CPU_TARGET:g}"),
                )
            )
            figures.append(
                Figure(
                    GROUP,
                    f"{community} CPU/poll, in-process",
                    "ms",
                    "ours",
                    _ms(ours),
                    "net-snmp",
                    _ms(in_process),
                    lower_is_better=True,
                    verdict="(same requests and varbinds, no process start)",
                )
            )
    finally:
        close_engine(engine)
    return figures


def _verdict(ratio: float, target: float, text: str) -> str:
    return f"{text}: {'PASS' if ratio <= target else 'MISS'}"


# ---------------------------------------------------------------------------------------------
# fleet: 500 devices in one round


def _round(
    runner: asyncio.Runner, devices: list[DeviceSettings], settings: SnmpSettings, sims: Sims
) -> tuple[float, float, float, list[SnmpPoll]]:
    """Wall s, this process's CPU s, snmpsim's CPU s and the polls of one snmp_round."""
    sim_cpu, cpu, started = sims.cpu_s(), time.process_time(), time.perf_counter()
    polls = runner.run(snmp_round(devices, [], settings))
    wall = time.perf_counter() - started
    return wall, time.process_time() - cpu, sims.cpu_s() - sim_cpu, polls


def _fleet_part(runner: asyncio.Runner, sims: Sims, devices: int) -> list[Figure]:
    say(
        f"-- fleet: {devices} devices ({', '.join(FLEET_RECORDINGS)} in turn) in one snmp_round, "
        f"{len(sims.ports)} snmpsim processes"
    )
    fleet = _fleet(sims.ports, devices)
    figures = []
    for concurrency in CONCURRENCIES:
        settings = SnmpSettings(profile_dirs=[], concurrency=concurrency)
        wall, cpu, sim_cpu, polls = _round(runner, fleet, settings, sims)
        failed = [p for p in polls if p.error is not None]
        interfaces = sum(len(p.interfaces) for p in polls)
        busiest = sim_cpu / len(sims.pids) / wall
        say(
            f"  concurrency {concurrency}: {wall:.2f} s wall, {interfaces} interfaces, "
            f"{len(failed)} failed; round CPU {cpu:.2f} s ({_ms(cpu / devices):.2f} ms/device, "
            f"{cpu / wall:.0%} of a core); snmpsim CPU {sim_cpu:.2f} s "
            f"({busiest:.0%} of a core each){' <- the bottleneck' if busiest > 0.8 else ''}; "
            f"RSS now {_status_mb('VmRSS'):.1f} MB"
        )
        if failed:
            say(f"    first failure: {failed[0].error}")
        figures.append(
            Figure(
                GROUP,
                f"{devices} devices, concurrency {concurrency}",
                "s",
                "round",
                wall,
                "target",
                FLEET_TARGET_S,
                lower_is_better=True,
                verdict=_verdict(wall, FLEET_TARGET_S, f"target <= {FLEET_TARGET_S:g} s")
                + (f", {len(failed)} FAILED polls" if failed else ""),
            )
        )
    return figures


# ---------------------------------------------------------------------------------------------
# rss: the poller process, and 1,000 polls in this one

# The real poller (`python -m agent.snmp.child`), which on exit also writes its VmHWM to a file.
_CHILD_WRAPPER = """
import atexit, sys
path = sys.argv.pop(1)
def _hwm():
    with open(path, "w") as out:
        out.write(open("/proc/self/status").read())
atexit.register(_hwm)
from agent.snmp.child import main
sys.exit(main())
"""


def _rss_part(runner: asyncio.Runner, sims: Sims, devices: int, workdir: Path) -> list[Figure]:
    say(f"-- rss: two {devices}-device jobs in the poller process; 1,000 polls in this one")
    fleet = _fleet(sims.ports, devices)
    settings = SnmpSettings(profile_dirs=[])
    peaks = []
    for job in (1, 2):
        status = workdir / f"child-status-{job}"
        command = (sys.executable, "-c", _CHILD_WRAPPER, str(status))
        started = time.perf_counter()
        polls = runner.run(poller.poll(fleet, settings, command=command))
        wall = time.perf_counter() - started
        failed = sum(p.error is not None for p in polls)
        text = status.read_text() if status.exists() else ""
        hwm = _field_mb(text, "VmHWM")
        peaks.append(hwm)
        say(
            f"  poller job {job}: {len(polls)} polls ({failed} failed) in {wall:.2f} s, "
            f"peak RSS {hwm:.1f} MB, RSS at exit {_field_mb(text, 'VmRSS'):.1f} MB"
        )
    # The poller's own floor: its imports, before any device.
    floor = subprocess.run(
        [
            sys.executable,
            "-c",
            "import agent.snmp.child, agent.snmp.round, agent.snmp.walk;"
            "print(open('/proc/self/status').read())",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    say(f"  the poller's imports alone: {_field_mb(floor, 'VmRSS'):.1f} MB")

    curve = runner.run(_thousand_polls(sims))
    points = ", ".join(f"{n}: {mb:.1f}" for n, mb in curve)
    growth = curve[-1][1] - curve[1][1]
    say(
        f"  this process, one shared engine, RSS (MB) after n polls of iosxe: {points}; "
        f"peak {_status_mb('VmHWM'):.1f} MB; growth from 10 to 1,000 polls {growth:+.1f} MB"
    )
    peak = max(peaks)
    return [
        Figure(
            GROUP,
            f"poller peak RSS, {devices} devices",
            "MB",
            "poller",
            peak,
            "target",
            RSS_TARGET_MB,
            lower_is_better=True,
            verdict=_verdict(peak, RSS_TARGET_MB, f"target <= {RSS_TARGET_MB:g} MB"),
        ),
        Figure(
            GROUP,
            "RSS after 1,000 polls / after 10",
            "MB",
            "1000",
            curve[-1][1],
            "10",
            curve[1][1],
            lower_is_better=True,
            verdict=f"flat: {growth:+.1f} MB",
        ),
    ]


def _field_mb(status: str, name: str) -> float:
    for line in status.splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _thousand_polls(sims: Sims) -> list[tuple[int, float]]:
    """RSS after 1, 10, 100, 500 and 1,000 polls of iosxe, 32 at a time, on one engine."""
    profiles = load_profiles([])
    devices = [_device(port, "iosxe") for port in sims.ports]
    gate = asyncio.Semaphore(32)
    engine = new_engine()
    done = 0
    curve = []

    async def one(n: int) -> None:
        async with gate:
            poll = await poll_device(devices[n % len(devices)], profiles, engine=engine)
        if poll.error is not None:
            raise BenchError(f"poll {n} failed: {poll.error}")

    try:
        for upto in RSS_POLLS:
            await asyncio.gather(*(one(n) for n in range(done, upto)))
            done = upto
            curve.append((upto, _status_mb("VmRSS")))
    finally:
        close_engine(engine)
    return curve


# ---------------------------------------------------------------------------------------------
# dead: a dead device costs its own timeout


def _dead_part(runner: asyncio.Runner, sims: Sims) -> list[Figure]:
    fields = {"timeout_s": 1.0, "retries": 1}
    live = _fleet(sims.ports, DEAD_LIVE, **fields)
    dead = [
        _device(free_port(socket.SOCK_DGRAM), "iosxe", name=f"dead{i}", **fields)
        for i in range(DEAD_DEAD)
    ]
    say(
        f"-- dead: {DEAD_LIVE} live devices and {DEAD_DEAD} dead ports (nothing listening), "
        "timeout 1 s, 1 retry, concurrency 32"
    )
    settings = SnmpSettings(profile_dirs=[])
    live_s, *_ = _round(runner, live, settings, sims)
    dead_s, _, _, dead_polls = _round(runner, dead, settings, sims)
    # Dead devices first: they wait out their timeouts while the live ones are polled. Dead
    # devices last: each starts when a slot frees up, so the round can end one timeout later.
    first_s, _, _, first = _round(runner, dead + live, settings, sims)
    last_s, _, _, last = _round(runner, live + dead, settings, sims)
    failed_live = sum(p.error is not None for p in first[DEAD_DEAD:] + last[:DEAD_LIVE])
    if any(p.error is None for p in dead_polls + first[:DEAD_DEAD] + last[DEAD_LIVE:]):
        raise BenchError("a dead port answered")
    serial_s = DEAD_DEAD * dead_s
    say(
        f"  live only {live_s:.2f} s; dead only {dead_s:.2f} s (1 s x 2 tries, all at once); "
        f"dead first {first_s:.2f} s against max {max(live_s, dead_s):.2f} s; dead last "
        f"{last_s:.2f} s against live + one timeout {live_s + dead_s:.2f} s; dead devices one "
        f"after the other would add {serial_s:.0f} s. Live polls failed: {failed_live}. "
        f"A dead poll says: {dead_polls[0].error}"
    )
    failed = f", {failed_live} live polls FAILED" if failed_live else ""
    return [
        Figure(
            GROUP,
            f"{DEAD_DEAD} dead first of {DEAD_LIVE + DEAD_DEAD}",
            "s",
            "round",
            first_s,
            "max",
            max(live_s, dead_s),
            lower_is_better=True,
            verdict=_verdict(
                first_s / max(live_s, dead_s), DEAD_TARGET, f"target <= {DEAD_TARGET:g}x max"
            )
            + failed,
        ),
        Figure(
            GROUP,
            f"{DEAD_DEAD} dead last of {DEAD_LIVE + DEAD_DEAD}",
            "s",
            "round",
            last_s,
            "sum",
            live_s + dead_s,
            lower_is_better=True,
            verdict=_verdict(last_s / (live_s + dead_s), 1.1, "target <= 1.1x live + one timeout")
            + failed,
        ),
    ]


# ---------------------------------------------------------------------------------------------

PARTS = ("cpu", "fleet", "rss", "dead")


def run(
    polls: int = POLLS, devices: int = FLEET_DEVICES, parts: Sequence[str] = PARTS
) -> list[Figure]:
    """Every part in one run; one figure per measurement (or one skipped figure)."""
    say(f"== snmp: the agent's SNMP poll vs net-snmp, {devices} devices, RSS, dead devices")
    missing = require_tool("snmpbulkwalk") or require_tool("snmpbulkget")
    missing = missing or require_tool("snmpget")
    if missing is None and not (VENV_BIN / "snmpsim-command-responder").exists():
        missing = "snmpsim-command-responder not in the venv (pip install -e '.[dev]')"
    if missing is not None:
        say(f"  skipped: {missing}")
        return [Figure(GROUP, "poll", "ms", "ours", None, "net-snmp", None, True, instead=missing)]
    figures: list[Figure] = []
    profiles = load_profiles([])
    steps: list[tuple[str, Callable[[], list[Figure]]]] = []
    with (
        tempfile.TemporaryDirectory(prefix="rn-bench-snmp-") as tmp,
        _snmpsims(Path(tmp), SNMPSIM_PROCESSES, RECORDINGS) as sims,
        asyncio.Runner() as runner,
    ):
        say(f"  snmpsim on {', '.join(f'{LOOPBACK}:{p}' for p in sims.ports)}")
        # snmpsim indexes a recording on its first request: not inside any figure.
        for port in sims.ports:
            warm = [_device(port, r, timeout_s=10) for r in RECORDINGS]
            runner.run(snmp_round(warm, [], SnmpSettings(profile_dirs=[])))
        steps = [
            ("cpu", lambda: _cpu_part(runner, sims.ports[0], profiles, polls)),
            ("fleet", lambda: _fleet_part(runner, sims, devices)),
            ("rss", lambda: _rss_part(runner, sims, devices, Path(tmp))),
            ("dead", lambda: _dead_part(runner, sims)),
        ]
        for name, step in steps:
            if name in parts:
                figures += step()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--polls", type=int, default=POLLS)
    parser.add_argument("--devices", type=int, default=FLEET_DEVICES)
    options = parser.parse_args()
    figures = run(options.polls, options.devices, options.parts)
    say("")
    for figure in figures:
        say(figure.line())


if __name__ == "__main__":
    main()
