"""One SNMP poll: the agent's `SnmpProbe.run()` (pysnmp) against net-snmp's CLI, over one snmpsim.

Both sides read the same recordings from the same snmpsim on 127.0.0.1: sysUpTime.0 and
sysObjectID.0 in one GET, then the eight IF-MIB columns the probe walks with GETBULK
(max-repetitions 25). The probe walks the eight columns together in one multi-column walk and
builds a fresh SNMP engine per poll, as the agent does; the reference runs `snmpget` once and
`snmpbulkwalk` once per column, one process each, as a shell script would. So the net-snmp figure
includes nine process starts per poll. Polls alternate (ours, reference, ours, ...) so drift in the
machine's load hits both alike; the figure is the median wall time per poll.

Run alone with ``python -m bench.snmp_poll``.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from pydantic import SecretStr

from agent.probes.snmp import INTERFACE_COLUMNS, SYS_OBJECT_ID, SYS_UPTIME, SnmpProbe
from agent.settings import DeviceSettings, SnmpAuth
from agent.snmp.walk import get_scalars, open_session, walk_columns
from agent.wire import SnmpPoll
from bench._common import (
    LOOPBACK,
    REPO_DIR,
    VENV_BIN,
    Figure,
    require_tool,
    say,
)
from collector.localrun import run_snmpsim

RECORDINGS = ("iosxe", "procurve_2520", "edgeos")
POLLS = 20
MAX_REPETITIONS = 25
DATA_DIR = REPO_DIR / "tests" / "data" / "snmprec"
STARTUP_TIMEOUT_S = 60.0
TOOL_TIMEOUT_S = 15.0
_START_ATTEMPTS = 3
_SCALARS = [SYS_UPTIME, SYS_OBJECT_ID]
_NOT_VALUES = ("No Such", "No more variables")


class BenchError(RuntimeError):
    pass


def _device(port: int, community: str) -> DeviceSettings:
    return DeviceSettings(
        name=community,
        address=LOOPBACK,
        port=port,
        auth=SnmpAuth(community=SecretStr(community)),
        timeout_s=2.0,
        retries=1,
    )


async def _probe_poll(device: DeviceSettings) -> SnmpPoll:
    [result] = await SnmpProbe(device).run()
    if not isinstance(result, SnmpPoll):
        raise BenchError(f"SnmpProbe returned {type(result).__name__}, not SnmpPoll")
    if result.error is not None:
        raise BenchError(f"SnmpProbe failed on {device.name}: {result.error}")
    return result


async def _probe_oids(device: DeviceSettings) -> set[str]:
    """The OIDs the probe's own walk reads, through the same functions `SnmpProbe.run` calls."""
    async with open_session(device) as session:
        scalars = await get_scalars(session, _SCALARS)
        table = await walk_columns(session, INTERFACE_COLUMNS, max_repetitions=MAX_REPETITIONS)
    oids = {oid for oid, value in scalars.items() if value is not None}
    oids.update(f"{column}.{suffix}" for column, rows in table.items() for suffix in rows)
    return oids


def _netsnmp(args: list[str]) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise BenchError(f"{' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def _netsnmp_poll(port: int, community: str) -> list[str]:
    """One poll the net-snmp way; returns the OIDs it read (numeric, no leading dot)."""
    target = f"{LOOPBACK}:{port}"
    found: list[str] = []
    out = _netsnmp(["snmpget", "-v2c", "-c", community, "-On", target, *_SCALARS])
    found.extend(_oids(out, _SCALARS))
    for column in INTERFACE_COLUMNS:
        out = _netsnmp(
            [
                "snmpbulkwalk",
                "-v2c",
                "-c",
                community,
                f"-Cr{MAX_REPETITIONS}",
                "-On",
                target,
                column,
            ]
        )
        found.extend(_oids(out, [column]))
    return found


def _oids(output: str, roots: list[str]) -> list[str]:
    # `-On` lines look like `<ifName column OID>.2 = STRING: "Gi0/0/1"`. A column the device
    # lacks prints
    # "No Such Instance/Object" at the column's own OID, and an endOfMibView answer prints
    # "No more variables left in this MIB View" (once per repetition): neither is a value read.
    found = []
    for line in output.splitlines():
        oid, sep, value = line.partition(" = ")
        oid = oid.lstrip(".")
        if not sep or value.startswith(_NOT_VALUES):
            continue
        if any(oid == root or oid.startswith(root + ".") for root in roots):
            found.append(oid)
    return found


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _measure(runner: asyncio.Runner, port: int, community: str, polls: int) -> Figure:
    device = _device(port, community)
    # Warm-up, outside the timing: imports, the shared MIB view, snmpsim's first look-up.
    poll = runner.run(_probe_poll(device))
    ours = runner.run(_probe_oids(device))
    theirs = _netsnmp_poll(port, community)
    cells = len(poll.interfaces) * len(INTERFACE_COLUMNS)
    same = "same OIDs" if ours == set(theirs) else "DIFFERENT OIDs"
    say(
        f"  {community}: varbinds pysnmp {len(ours)}, net-snmp {len(theirs)} ({same}); "
        f"{len(poll.interfaces)} interfaces x {len(INTERFACE_COLUMNS)} columns = "
        f"{cells} cells at most"
    )
    if ours != set(theirs):
        only_ours, only_theirs = sorted(ours - set(theirs)), sorted(set(theirs) - ours)
        say(f"    only pysnmp: {only_ours[:5]} only net-snmp: {only_theirs[:5]}")

    ours_s: list[float] = []
    theirs_s: list[float] = []
    for _ in range(polls):
        started = time.perf_counter()
        runner.run(_probe_poll(device))
        ours_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        _netsnmp_poll(port, community)
        theirs_s.append(time.perf_counter() - started)

    # What one net-snmp process costs on its own: start, one GET round trip, exit.
    bare: list[float] = []
    for _ in range(5):
        started = time.perf_counter()
        _netsnmp(["snmpget", "-v2c", "-c", community, "-On", f"{LOOPBACK}:{port}", SYS_UPTIME])
        bare.append(time.perf_counter() - started)

    figure = Figure(
        group="snmp",
        label=f"{community} poll, median of {polls}",
        unit="ms",
        ours_name="pysnmp",
        value=_median_ms(ours_s),
        reference_name="net-snmp",
        reference=_median_ms(theirs_s),
        lower_is_better=True,
        note=(
            f"{len(ours)} varbinds each ({same}); net-snmp = 9 processes per poll, "
            f"one bare snmpget process {_median_ms(bare):.1f} ms"
        ),
    )
    say(
        f"  {community}: pysnmp {figure.value:.1f} ms/poll (min {min(ours_s) * 1000:.1f}), "
        f"net-snmp {figure.reference:.1f} ms/poll (min {min(theirs_s) * 1000:.1f}), "
        f"ratio {figure.ratio:.2f}; one bare snmpget process {_median_ms(bare):.1f} ms"
    )
    return figure


def run(polls: int = POLLS) -> list[Figure]:
    """Time `polls` polls per recording; one figure per recording (or one skipped figure)."""
    say(f"== snmp: SnmpProbe.run() vs net-snmp snmpget + 8 x snmpbulkwalk, {polls} polls each")
    missing = require_tool("snmpbulkwalk") or require_tool("snmpget")
    if missing is None and not (VENV_BIN / "snmpsim-command-responder").exists():
        missing = "snmpsim-command-responder not in the venv (pip install -e '.[dev]')"
    if missing is not None:
        say(f"  skipped: {missing}")
        return [
            Figure(
                "snmp",
                "poll",
                "ms",
                "pysnmp",
                None,
                "net-snmp",
                None,
                True,
                instead=f"skipped: {missing}",
            )
        ]
    figures = []
    with (
        tempfile.TemporaryDirectory(prefix="rn-bench-snmp-") as tmp,
        run_snmpsim(DATA_DIR, Path(tmp), only=RECORDINGS) as port,
        asyncio.Runner() as runner,
    ):
        say(f"  snmpsim on {LOOPBACK}:{port}")
        for community in RECORDINGS:
            figures.append(_measure(runner, port, community, polls))
    return figures


if __name__ == "__main__":
    for figure in run():
        say(figure.line())
