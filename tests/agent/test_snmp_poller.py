"""The SNMP poller process: the daemon's polls and uplink readings, out of its own process."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

from pydantic import SecretStr

from agent.probes.snmp import SnmpProbe
from agent.settings import DeviceSettings, SnmpAuth, UplinkSettings
from agent.snmp import poller
from agent.snmp.child import PollerRequest
from agent.wire import SnmpPoll
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
        # The deadline is the allowance plus the device's budget: a short one keeps this quick.
        stuck_device = _dead("c").model_copy(update={"budget_s": 1.0})
        [stuck] = await poller.poll([stuck_device], command=hang)
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


def _fake_poller(lines: list[str], then: str) -> tuple[str, ...]:
    """A poller that writes `lines` to stdout (each flushed), then runs `then`."""
    script = "import sys, time\n"
    for line in lines:
        script += f"sys.stdout.write({line + chr(10)!r}); sys.stdout.flush()\n"
    return (sys.executable, "-c", script + then)


def _poll_line(index: int, device: DeviceSettings) -> str:
    poll = SnmpPoll(device=device.name, address=f"{device.address}:{device.port}")
    return json.dumps({"index": index, "poll": json.loads(poll.model_dump_json())})


async def test_polls_written_before_a_crash_or_hang_are_kept() -> None:
    devices = [_dead(name).model_copy(update={"budget_s": 1.0}) for name in ("a", "b", "c")]
    crash = _fake_poller(
        [_poll_line(1, devices[1])], f"print('{SECRET}', file=sys.stderr); sys.exit(3)"
    )
    a, b, c = await poller.poll(devices, command=crash)
    assert b.error is None and b.device == "b"
    for p in (a, c):
        assert p.error is not None and p.error.startswith("the SNMP poller failed (exit 3): ")
        assert SECRET not in p.error
    hang = _fake_poller([_poll_line(2, devices[2]), _poll_line(0, devices[0])], "time.sleep(60)")
    original, poller.STARTUP_ALLOWANCE_S = poller.STARTUP_ALLOWANCE_S, 0.5
    try:
        started = time.monotonic()
        a, b, c = await poller.poll(devices, command=hang)
    finally:
        poller.STARTUP_ALLOWANCE_S = original
    assert time.monotonic() - started < 10
    assert a.error is None and c.error is None
    assert b.error is not None and "did not finish within" in b.error


async def test_a_poller_that_answers_nonsense_is_stopped() -> None:
    devices = [_dead(name).model_copy(update={"budget_s": 1.0}) for name in ("a", "b")]
    cases = [
        ["not json"],
        [_poll_line(5, devices[0])],  # no such device
        [_poll_line(0, devices[1])],  # another device's poll
        [_poll_line(0, devices[0]), _poll_line(0, devices[0])],  # twice
    ]
    for lines in cases:
        polls = await poller.poll(devices, command=_fake_poller(lines, "time.sleep(60)"))
        errors = [p.error for p in polls]
        assert all(e is not None and "answered nonsense" in e for e in errors[1:]), lines
    # A poller that says it is done without every poll: the missing ones are errors.
    done = _fake_poller([_poll_line(1, devices[1]), '{"done": true}'], "")
    a, b = await poller.poll(devices, command=done)
    assert a.error == "the SNMP poller gave no poll of this device" and b.error is None
    # A poller that says it failed after some polls: its reason for the rest.
    failed = _fake_poller([_poll_line(0, devices[0]), '{"error": "boom"}'], "sys.exit(1)")
    a, b = await poller.poll(devices, command=failed)
    assert a.error is None and b.error == "boom"


async def test_the_poller_writes_each_poll_when_it_is_done(snmpsim: SnmpSim) -> None:
    slow = _dead("slow").model_copy(update={"timeout_s": 3.0})
    request = PollerRequest(task="poll", devices=[slow, snmpsim.device("iosxe", name="fast")])
    process = await asyncio.create_subprocess_exec(
        *poller.CHILD_COMMAND,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        limit=poller.LINE_LIMIT_BYTES,
    )
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(request.payload().encode())
    process.stdin.close()
    lines = []
    async with asyncio.timeout(60):
        while line := await process.stdout.readline():
            lines.append((time.monotonic(), json.loads(line)))
        assert await process.wait() == 0
    assert [answer.get("index") for _, answer in lines] == [1, 0, None]
    assert lines[-1][1] == {
        "index": None,
        "poll": None,
        "done": True,
        "background": None,
        "error": None,
    }
    # The fast device's poll came out while the slow one was still waiting for its answer.
    assert lines[1][0] - lines[0][0] > 1.0
    assert lines[0][1]["poll"]["device"] == "fast" and lines[0][1]["poll"]["error"] is None
    assert lines[1][1]["poll"]["error"].startswith("slow (127.0.0.1:")


def test_a_poller_of_v2c_devices_never_loads_pysnmp(snmpsim: SnmpSim, tmp_path: Path) -> None:
    """Nor an HTTP client: the poller's memory is what it polls with (about 41 MB of imports)."""
    loaded = tmp_path / "loaded"
    wrapper = (
        "import atexit, json, sys\n"
        "def _loaded():\n"
        f"    with open({str(loaded)!r}, 'w') as out:\n"
        "        heavy = ('pysnmp', 'pyasn1', 'httpx', 'rich', 'click')\n"
        "        json.dump(sorted(m for m in sys.modules if m.startswith(heavy)), out)\n"
        "atexit.register(_loaded)\n"
        "from agent.snmp.child import main\n"
        "sys.exit(main())\n"
    )
    devices = [snmpsim.device("iosxe", name="router"), _dead()]
    polls = asyncio.run(poller.poll(devices, command=(sys.executable, "-c", wrapper)))
    assert polls[0].error is None and polls[1].error is not None
    assert json.loads(loaded.read_text()) == []
