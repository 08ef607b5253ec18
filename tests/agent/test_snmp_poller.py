"""The SNMP poller process: the daemon's polls and uplink readings, out of its own process."""

from __future__ import annotations

import subprocess
import sys

from pydantic import SecretStr

from agent.probes.snmp import SnmpProbe
from agent.settings import DeviceSettings, SnmpAuth, UplinkSettings
from agent.snmp import poller
from agent.snmp.child import PollerRequest
from tests.fixtures.snmpd import LOOPBACK_IFINDEX, snmpd  # noqa: F401 (fixture)
from tests.fixtures.snmpsim import SnmpSim, free_udp_port

SECRET = "Poller-Secret-Community-7"


def _dead(name: str = "gone") -> DeviceSettings:
    return DeviceSettings(
        name=name,
        address="127.0.0.1",
        port=free_udp_port(),
        auth=SnmpAuth(community=SecretStr(SECRET)),
        timeout_s=0.2,
        retries=0,
    )


async def test_polls_in_the_poller_equal_polls_in_process(snmpsim: SnmpSim) -> None:
    devices = [snmpsim.device("iosxe", name="router"), snmpsim.device("edgeos", name="edge")]
    remote = await poller.poll(devices)
    local = [poll for device in devices for poll in await SnmpProbe(device).run()]
    assert [p.device for p in remote] == ["router", "edge"]
    for far, near in zip(remote, local, strict=True):
        assert far.error is None
        assert far.interfaces == near.interfaces  # type: ignore[union-attr]
        assert far.sys_object_id == near.sys_object_id  # type: ignore[union-attr]


async def test_a_dead_device_is_a_poll_with_an_error_and_no_secret(snmpsim: SnmpSim) -> None:
    [alive, dead] = await poller.poll([snmpsim.device("iosxe", name="router"), _dead()])
    assert alive.error is None
    assert dead.error is not None and dead.error.startswith("gone (127.0.0.1:")
    assert SECRET not in dead.error


async def test_a_poller_that_crashes_or_hangs_gives_error_polls() -> None:
    devices = [_dead("a"), _dead("b")]
    crash = (sys.executable, "-c", f"import sys; print('{SECRET}', file=sys.stderr); sys.exit(3)")
    polls = await poller.poll(devices, command=crash)
    assert [p.device for p in polls] == ["a", "b"]
    for p in polls:
        assert p.error is not None
        assert p.error.startswith("the SNMP poller failed (exit 3): ")
        assert SECRET not in p.error
    hang = (sys.executable, "-c", "import time; time.sleep(60)")
    original, poller.STARTUP_ALLOWANCE_S = poller.STARTUP_ALLOWANCE_S, 0.5
    try:
        [stuck] = await poller.poll([_dead("c")], command=hang)
    finally:
        poller.STARTUP_ALLOWANCE_S = original
    assert stuck.error is not None and "did not finish within" in stuck.error


async def test_uplink_reading_through_the_poller(snmpd: DeviceSettings) -> None:  # noqa: F811
    uplink = UplinkSettings(device="router", ifindex=LOOPBACK_IFINDEX, sample_s=0.5)
    reading = await poller.background(snmpd, uplink)
    assert reading.in_bps >= 0 and reading.link_bps == 10e6


def test_the_community_reaches_the_poller_only_on_stdin() -> None:
    request = PollerRequest(task="poll", devices=[_dead()])
    assert SECRET in request.payload()
    # Anywhere else (logs, errors, a plain dump) it stays masked.
    assert SECRET not in request.model_dump_json()
    assert SECRET not in str(request)


def test_the_daemon_never_loads_pysnmp() -> None:
    code = (
        "import sys, agent.cli, agent.daemon; "
        "print(sorted(m for m in sys.modules if m.startswith(('pysnmp', 'pyasn1'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
