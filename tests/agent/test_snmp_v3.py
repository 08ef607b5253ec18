"""SNMPv3 (USM) polls against real agents: net-snmp's snmpd and snmpsim, both on 127.0.0.1.

What a technician gets wrong (the auth key, the priv key, the user name) must come back as a
poll with an error that says so, in no more time than the device's timeout and retries allow,
and without any key in it.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from agent.settings import DeviceSettings, SnmpSettings
from agent.snmp.device import poll_device
from agent.snmp.profile import ProfileSet, load_profiles
from agent.snmp.round import snmp_round
from agent.wire import SnmpPoll
from collector.localrun import LOOPBACK, stop_process, venv_script, wait_for_text
from tests.fixtures.snmpd import (
    LOOPBACK_IFINDEX,
    V3_USERS,
    SnmpdV3,
    V3User,
    run_snmpd,
    snmpd_v3,  # noqa: F401 (fixture)
    v3_config,
)
from tests.fixtures.snmpsim import DATA_DIR, free_udp_port

NET_SNMP_OBJECT_ID = "1.3.6.1.4.1.8072.3.2.10"  # NET-SNMP-TC::linux
# Beyond timeout_s * (retries + 1): pysnmp's timer ticks (up to 0.1 s a try), the first poll in
# a process loading its base MIB modules (0.3 s), and a busy test machine.
ALLOWANCE_S = 1.0
WRONG_KEYS = ("wrong-Auth-Qx81", "wrong-Priv-Ub52")
EVERY_KEY = [key for user in V3_USERS for key in user.secrets()] + list(WRONG_KEYS)


@pytest.fixture(scope="module")
def profiles() -> ProfileSet:
    return load_profiles([])


def assert_no_key_in(poll: SnmpPoll) -> None:
    # The whole result as it would be queued and sent, not only its error.
    text = poll.model_dump_json()
    for key in EVERY_KEY:
        assert key not in text


@pytest.mark.parametrize("user", [u.name for u in V3_USERS])
async def test_each_user_polls_the_host_interfaces(
    snmpd_v3: SnmpdV3,  # noqa: F811
    profiles: ProfileSet,
    user: str,
) -> None:
    """SHA/AES and SHA-256/AES authPriv, SHA authNoPriv, SHA with AES-256 as net-snmp and as Cisco
    extend its key."""
    poll = await poll_device(snmpd_v3.device(user), profiles)

    assert poll.error is None
    assert poll.profile == "if_mib"
    assert poll.sys_object_id == NET_SNMP_OBJECT_ID
    assert isinstance(poll.sys_uptime_ticks, int)
    loopback = {i.ifindex: i for i in poll.interfaces}[LOOPBACK_IFINDEX]
    assert loopback.name == "lo"
    assert loopback.oper_up is True
    assert loopback.counter_bits == 64
    assert loopback.octets_in is not None and loopback.octets_in > 0
    assert_no_key_in(poll)


async def test_a_forced_profile_is_used_over_v3(
    snmpd_v3: SnmpdV3,  # noqa: F811
    profiles: ProfileSet,
) -> None:
    # unifi_ap matches net-snmp's Linux sysObjectID only with its probe; forced, it is taken.
    poll = await poll_device(snmpd_v3.device("rn-shaaes", profile="unifi_ap"), profiles)

    assert poll.error is None
    assert poll.profile == "unifi_ap"
    assert any(i.name == "lo" for i in poll.interfaces)


@dataclass(frozen=True)
class Mistake:
    user: str
    auth: dict[str, Any]
    says: tuple[str, ...]


MISTAKES = {
    "wrong auth key": Mistake(
        "rn-shaaes",
        {"auth_key": SecretStr(WRONG_KEYS[0])},
        ("SNMPv3 credentials refused", "Wrong SNMP PDU digest"),
    ),
    "wrong auth protocol": Mistake(
        "rn-shaaes",
        {"auth_protocol": "SHA256"},
        ("SNMPv3 credentials refused", "Wrong SNMP PDU digest"),
    ),
    "unknown user": Mistake(
        "rn-shaaes",
        {"user": "rn-nobody"},
        ("SNMPv3 credentials refused", "Unknown USM user"),
    ),
    "privacy asked of an authNoPriv user": Mistake(
        "rn-authonly",
        {"security_level": "authPriv", "priv_key": SecretStr(WRONG_KEYS[1])},
        ("SNMPv3 credentials refused", "Unsupported SNMP security level"),
    ),
    # A device drops what it cannot decrypt without a report: only the timeout tells, so the
    # error says the device did answer discovery and which settings to check.
    "wrong priv key": Mistake(
        "rn-shaaes",
        {"priv_key": SecretStr(WRONG_KEYS[1])},
        ("No SNMP response received before timeout", "SNMPv3 discovery", "priv key"),
    ),
    "wrong priv protocol": Mistake(
        "rn-shaaes",
        {"priv_protocol": "DES"},
        ("No SNMP response received before timeout", "SNMPv3 discovery", "priv protocol"),
    ),
    "context the device does not serve": Mistake(
        "rn-shaaes",
        {"context": "no-such-context"},
        ("No SNMP response received before timeout", "SNMPv3 discovery", "context"),
    ),
}


@pytest.mark.parametrize("case", list(MISTAKES))
async def test_wrong_credentials_are_a_clear_error_within_the_timeout(
    snmpd_v3: SnmpdV3,  # noqa: F811
    profiles: ProfileSet,
    case: str,
) -> None:
    mistake = MISTAKES[case]
    device = snmpd_v3.device(mistake.user, mistake.auth, timeout_s=1.0, retries=1)

    started = time.monotonic()
    poll = await poll_device(device, profiles)
    elapsed = time.monotonic() - started

    assert poll.error is not None
    assert poll.error.startswith(f"{device.name} ({LOOPBACK}:{snmpd_v3.port}): ")
    for words in mistake.says:
        assert words in poll.error
    assert poll.profile is None and poll.interfaces == []
    assert elapsed <= device.timeout_s * (device.retries + 1) + ALLOWANCE_S
    assert_no_key_in(poll)


async def test_a_dead_v3_device_is_a_plain_timeout(profiles: ProfileSet) -> None:
    """No discovery answer: nothing suggests the keys are at fault."""
    device = DeviceSettings(
        name="gone",
        address=LOOPBACK,
        port=free_udp_port(),
        auth=V3_USERS[0].auth(),
        timeout_s=0.5,
        retries=1,
    )
    started = time.monotonic()
    poll = await poll_device(device, profiles)
    elapsed = time.monotonic() - started

    assert (
        poll.error == f"gone ({LOOPBACK}:{device.port}): No SNMP response received before timeout"
    )
    assert elapsed <= device.timeout_s * (device.retries + 1) + ALLOWANCE_S


async def test_same_user_name_with_other_keys_on_two_devices_in_one_round(
    snmpd_v3: SnmpdV3,  # noqa: F811
    tmp_path: Path,
) -> None:
    """pysnmp's engine keeps one set of keys per user name: the round takes turns."""
    first = V3_USERS[0]
    twin = V3User(first.name, "authPriv", "SHA", "auth-Jr6tTwin", "AES", "priv-Ny3cTwin")
    with run_snmpd(tmp_path, v3_config([twin])) as twin_port:
        twin_device = DeviceSettings(
            name="twin", address=LOOPBACK, port=twin_port, auth=twin.auth(), timeout_s=1.0
        )
        devices = [snmpd_v3.device(first.name), twin_device, snmpd_v3.device("rn-sha256")]
        secrets = [s for d in devices for s in d.auth.secrets()]

        polls = await snmp_round(devices, secrets, SnmpSettings(profile_dirs=[]))

    assert [p.device for p in polls] == [d.name for d in devices]
    assert [p.error for p in polls] == [None, None, None]
    assert all(any(i.name == "lo" for i in p.interfaces) for p in polls)
    for poll in polls:
        text = poll.model_dump_json()
        assert not [s for s in secrets if s in text]


async def test_a_round_with_a_wrong_key_fails_only_that_device(
    snmpd_v3: SnmpdV3,  # noqa: F811
) -> None:
    good = snmpd_v3.device("rn-shaaes")
    bad = snmpd_v3.device(
        "rn-sha256", {"auth_key": SecretStr(WRONG_KEYS[0])}, name="bad", timeout_s=0.5
    )
    secrets = [*good.auth.secrets(), *bad.auth.secrets()]

    polls = await snmp_round([good, bad], secrets, SnmpSettings(profile_dirs=[]))

    assert polls[0].error is None
    assert polls[1].error is not None and "SNMPv3 credentials refused" in polls[1].error
    assert_no_key_in(polls[1])


# snmpsim as an SNMPv3 agent: one USM user; the recording is chosen by the context name.
SIM_USER = V3User("rn-sim", "authPriv", "SHA", "auth-Fg4kSim", "AES", "priv-Rb7mSim")
SIM_RECORDINGS = ("iosxe", "ciscowlc_cbw240ac")


@dataclass(frozen=True)
class SnmpSimV3:
    port: int

    def device(self, context: str, **auth: Any) -> DeviceSettings:
        return DeviceSettings(
            name=context,
            address=LOOPBACK,
            port=self.port,
            auth=SIM_USER.auth(context=context, **auth),
            timeout_s=1.0,
            retries=1,
        )


@pytest.fixture(scope="module")
def snmpsim_v3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpSimV3]:
    """snmpsim serving two recordings to SIM_USER over SNMPv3 (needs `cryptography` for AES)."""
    workdir = tmp_path_factory.mktemp("snmpsim-v3")
    data_dir = workdir / "snmprec"
    data_dir.mkdir()
    for stem in SIM_RECORDINGS:
        (data_dir / f"{stem}.snmprec").write_bytes((DATA_DIR / f"{stem}.snmprec").read_bytes())
    port = free_udp_port()
    log = workdir / "snmpsim.log"
    assert SIM_USER.auth_key is not None and SIM_USER.priv_key is not None
    with log.open("wb") as out:
        # Every option after --v3-engine-id configures that engine, the endpoint included.
        process = subprocess.Popen(
            [
                str(venv_script("snmpsim-command-responder")),
                f"--cache-dir={workdir / 'cache'}",
                "--v3-engine-id=auto",
                f"--v3-user={SIM_USER.name}",
                f"--v3-auth-key={SIM_USER.auth_key}",
                f"--v3-auth-proto={SIM_USER.auth_protocol}",
                f"--v3-priv-key={SIM_USER.priv_key}",
                f"--v3-priv-proto={SIM_USER.priv_protocol}",
                f"--data-dir={data_dir}",
                f"--agent-udpv4-endpoint={LOOPBACK}:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "SNMPSIM_ALLOW_ROOT": "true"},
        )
    try:
        ready = f"Listening at UDP/IPv4 endpoint {LOOPBACK}:{port}"
        assert wait_for_text(process, log, ready, 60), log.read_text()
        yield SnmpSimV3(port)
    finally:
        stop_process(process)


async def test_snmpsim_v3_context_selects_the_recording(
    snmpsim_v3: SnmpSimV3, profiles: ProfileSet
) -> None:
    router, controller = await snmp_round(
        [snmpsim_v3.device("iosxe"), snmpsim_v3.device("ciscowlc_cbw240ac")],
        SIM_USER.secrets(),
        SnmpSettings(profile_dirs=[]),
        profiles,
    )

    assert router.error is None
    assert router.profile == "cisco_ios"
    assert router.sys_object_id == "1.3.6.1.4.1.9.1.1116"
    assert router.sys_uptime_ticks == 857980
    assert len(router.interfaces) == 30
    assert controller.error is None
    assert controller.profile == "cisco_wlc"
    assert controller.clients == 23
    assert sorted(ap.name for ap in controller.aps if ap.name) == ["ap1", "ap2", "ap3", "ap4"]


async def test_snmpsim_v3_wrong_auth_key_and_unknown_context(
    snmpsim_v3: SnmpSimV3, profiles: ProfileSet
) -> None:
    wrong_key = snmpsim_v3.device("iosxe", auth_key=SecretStr(WRONG_KEYS[0]))
    no_recording = snmpsim_v3.device("no-such-recording")

    started = time.monotonic()
    refused = await poll_device(wrong_key, profiles)
    unknown = await poll_device(no_recording, profiles)
    elapsed = time.monotonic() - started

    assert refused.error is not None and "SNMPv3 credentials refused" in refused.error
    assert unknown.error is not None and "SNMPv3 discovery" in unknown.error
    assert elapsed <= 2 * (1.0 * 2) + ALLOWANCE_S
    for poll in (refused, unknown):
        text = poll.model_dump_json()
        assert not [key for key in [*SIM_USER.secrets(), *WRONG_KEYS] if key in text]
