"""`readynet-agent snmp probe`: the real command against snmpsim recordings and a real snmpd.

Most cases call `agent.cli.main` in this process (the output captured); the ones about the
environment, exit statuses and tracebacks run the installed entry point as a user would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

# Loaded before any timing: the command imports pysnmp on its first poll, which is not the poll.
import agent.snmp.device  # noqa: F401
from agent.cli import main
from collector.localrun import LOOPBACK
from tests.fixtures.snmpd import (
    LOOPBACK_IFINDEX,
    V3_USERS,
    SnmpdV3,
    snmpd_v3,  # noqa: F401 (fixture)
)
from tests.fixtures.snmpsim import SnmpSim, free_udp_port

AGENT = str(Path(sys.executable).parent / "readynet-agent")
TOP_KEYS = {
    "profile",
    "sys_object_id",
    "sys_uptime_ticks",
    "interfaces",
    "clients",
    "aps_up",
    "aps_total",
    "aps",
    "ssids",
    "error",
}
INTERFACE_KEYS = {
    "ifindex",
    "name",
    "alias",
    "oper_up",
    "speed_mbps",
    "octets_in",
    "octets_out",
    "counter_bits",
}
AP_KEYS = {"key", "name", "clients", "up"}
SSID_KEYS = {"name", "clients"}
# Beyond timeout_s * (retries + 1): pysnmp's timer ticks (up to 0.1 s a try), the first poll in
# a process loading its base MIB modules (0.3 s), and a busy test machine.
ALLOWANCE_S = 1.0
SHA_AES = V3_USERS[0]
ENV_SECRETS = ("READYNET_SNMP_COMMUNITY", "READYNET_SNMP_V3_AUTH_KEY", "READYNET_SNMP_V3_PRIV_KEY")


@pytest.fixture(autouse=True)
def no_credentials_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_SECRETS:
        monkeypatch.delenv(name, raising=False)


def probe(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["snmp", "probe", *args])
    out, err = capsys.readouterr()
    return status, out, err


def probe_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    status, out, err = probe(capsys, *args, "--format", "json")
    assert err == ""
    document: dict[str, Any] = json.loads(out)
    return status, document


def assert_documented_shape(document: dict[str, Any]) -> None:
    assert set(document) == TOP_KEYS
    assert all(set(row) == INTERFACE_KEYS for row in document["interfaces"])
    assert all(set(row) == AP_KEYS for row in document["aps"])
    assert all(set(row) == SSID_KEYS for row in document["ssids"])


def sim(snmpsim: SnmpSim, recording: str) -> list[str]:
    return [snmpsim.host, "--port", str(snmpsim.port), "--community", recording]


def test_json_of_a_wireless_controller(
    snmpsim: SnmpSim, capsys: pytest.CaptureFixture[str]
) -> None:
    status, document = probe_json(capsys, *sim(snmpsim, "ciscowlc_cbw240ac"))

    assert status == 0
    assert_documented_shape(document)
    assert document["error"] is None
    assert document["profile"] == "cisco_wlc"
    assert document["sys_object_id"] == "1.3.6.1.4.1.9.6.1.37.240.1"
    assert document["sys_uptime_ticks"] == 39682400
    assert document["clients"] == 23
    assert document["aps_up"] == 4
    assert [ap["name"] for ap in document["aps"]] == ["ap1", "ap2", "ap3", "ap4"]
    assert sum(ap["clients"] for ap in document["aps"]) == 23
    assert {"name": "ssid1", "clients": 23} in document["ssids"]
    assert document["interfaces"][0] == {
        "ifindex": 1,
        "name": "GigabitEthernet0/0/1",
        "alias": None,
        "oper_up": True,
        "speed_mbps": 1000,
        "octets_in": 0,
        "octets_out": 0,
        "counter_bits": 64,
    }


def test_table_of_a_router(snmpsim: SnmpSim, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = probe(capsys, *sim(snmpsim, "iosxe"))

    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"device       {snmpsim.host}:{snmpsim.port} (SNMPv2c)"
    assert lines[1].startswith("profile      cisco_ios - ")
    assert lines[1].endswith("(matched on sysObjectID / sysDescr)")
    assert "sysObjectID  1.3.6.1.4.1.9.1.1116" in lines
    assert "uptime       0d 02:22:59 (857980 ticks)" in lines
    assert "interfaces (30)" in lines
    header = lines.index("interfaces (30)") + 1
    assert lines[header].split() == [
        "ifIndex",
        "name",
        "alias",
        "oper",
        "Mbit/s",
        "octets",
        "in",
        "octets",
        "out",
        "bits",
    ]
    gi1 = next(line.split() for line in lines[header:] if line.split()[:2] == ["2", "Gi0/0/1"])
    assert gi1[3:6] == ["up", "100", "19432396613"]
    # A router has no Wi-Fi: no client, AP or SSID lines.
    assert not [line for line in lines if line.startswith(("clients", "APs", "SSIDs", "access"))]
    assert "iosxe" not in out  # the community


def test_a_forced_profile_is_said_so(snmpsim: SnmpSim, capsys: pytest.CaptureFixture[str]) -> None:
    args = [*sim(snmpsim, "ciscowlc_cbw240ac"), "--profile", "if_mib"]
    status, out, _ = probe(capsys, *args)
    _, document = probe_json(capsys, *args)

    assert status == 0
    assert "profile      if_mib - " in out and "(forced with --profile)" in out
    assert document["profile"] == "if_mib"
    assert document["aps"] == [] and document["clients"] is None
    assert len(document["interfaces"]) == 2


def test_v3_against_snmpd_keys_from_the_environment(
    snmpd_v3: SnmpdV3,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user = snmpd_v3.users["rn-sha256"]
    assert user.auth_key is not None and user.priv_key is not None
    monkeypatch.setenv("READYNET_SNMP_V3_AUTH_KEY", user.auth_key)
    monkeypatch.setenv("READYNET_SNMP_V3_PRIV_KEY", user.priv_key)
    args = [LOOPBACK, "--port", str(snmpd_v3.port), "--v3-user", user.name]
    args += ["--v3-auth-proto", "SHA-256", "--v3-priv-proto", "AES"]

    status, out, err = probe(capsys, *args)
    json_status, document = probe_json(capsys, *args)

    assert (status, json_status, err) == (0, 0, "")
    assert out.splitlines()[0].endswith("(SNMPv3 user rn-sha256, authPriv, SHA256, AES)")
    assert "no vendor profile matched" in out
    assert_documented_shape(document)
    assert document["profile"] == "if_mib"
    loopback = next(i for i in document["interfaces"] if i["ifindex"] == LOOPBACK_IFINDEX)
    assert (loopback["name"], loopback["oper_up"], loopback["counter_bits"]) == ("lo", True, 64)
    assert user.auth_key not in out + json.dumps(document)
    assert user.priv_key not in out + json.dumps(document)


def test_v3_auth_no_priv_with_keys_on_the_command_line(
    snmpd_v3: SnmpdV3,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    user = snmpd_v3.users["rn-authonly"]
    assert user.auth_key is not None
    status, document = probe_json(
        capsys,
        LOOPBACK,
        "--port",
        str(snmpd_v3.port),
        "--v3-user",
        user.name,
        "--v3-level",
        "authNoPriv",
        "--v3-auth-key",
        user.auth_key,
    )

    assert status == 0
    assert document["error"] is None
    assert any(i["name"] == "lo" for i in document["interfaces"])


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (
            ["--v3-auth-key", "wrong-Auth-Qx81"],
            "SNMPv3 credentials refused (Wrong SNMP PDU digest)",
        ),
        (["--v3-priv-key", "wrong-Priv-Ub52"], "though the device answered SNMPv3 discovery"),
    ],
)
def test_v3_wrong_key_exits_1_with_the_error(
    snmpd_v3: SnmpdV3,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    change: list[str],
    says: str,
) -> None:
    assert SHA_AES.auth_key is not None and SHA_AES.priv_key is not None
    keys = {"--v3-auth-key": SHA_AES.auth_key, "--v3-priv-key": SHA_AES.priv_key}
    keys[change[0]] = change[1]
    args = [LOOPBACK, "--port", str(snmpd_v3.port), "--v3-user", SHA_AES.name]
    args += [part for pair in keys.items() for part in pair]
    args += ["--timeout", "0.5", "--retries", "1"]

    started = time.monotonic()
    status, document = probe_json(capsys, *args)
    elapsed = time.monotonic() - started

    assert status == 1
    assert_documented_shape(document)
    assert says in document["error"]
    assert document["profile"] is None and document["interfaces"] == []
    assert elapsed <= 0.5 * 2 + ALLOWANCE_S
    assert not [key for key in [*keys.values(), *SHA_AES.secrets()] if key in json.dumps(document)]


def test_dead_port_exits_1_within_the_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_udp_port()
    started = time.monotonic()
    status, document = probe_json(
        capsys, LOOPBACK, "--port", str(port), "--community", "c-9x", "--timeout", "0.4"
    )
    elapsed = time.monotonic() - started

    assert status == 1
    assert_documented_shape(document)
    assert document == {
        **dict.fromkeys(TOP_KEYS),
        "interfaces": [],
        "aps": [],
        "ssids": [],
        "error": f"{LOOPBACK} ({LOOPBACK}:{port}): No SNMP response received before timeout",
    }
    assert elapsed <= 0.4 * 2 + ALLOWANCE_S


def test_dead_port_table(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_udp_port()
    status, out, _ = probe(
        capsys, LOOPBACK, "--port", str(port), "--community", "c-9x", "--timeout", "0.2"
    )

    assert status == 1
    assert out.splitlines() == [
        f"device  {LOOPBACK}:{port} (SNMPv2c)",
        f"error   {LOOPBACK} ({LOOPBACK}:{port}): No SNMP response received before timeout",
    ]


def run_agent(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # No agent.yaml, no token: the probe needs neither.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("READYNET_")}
    return subprocess.run(
        [AGENT, *args], capture_output=True, text=True, timeout=60, env={**clean, **(env or {})}
    )


def test_the_installed_command_reads_the_community_from_the_environment(
    snmpsim: SnmpSim,
) -> None:
    done = run_agent(
        "snmp",
        "probe",
        snmpsim.host,
        "--port",
        str(snmpsim.port),
        "--format",
        "json",
        env={"READYNET_SNMP_COMMUNITY": "ciscowlc_cbw240ac"},
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["profile"] == "cisco_wlc"


BAD_ARGUMENTS = {
    "no community": ([], "error: give --community (or set READYNET_SNMP_COMMUNITY)"),
    "v2c and v3": (
        ["--community", "c", "--v3-user", "u"],
        "error: give either --community (SNMPv2c) or --v3-user (SNMPv3), not both",
    ),
    "v3 option without user": (
        ["--community", "c", "--v3-priv-key", "s3cret-Priv-77"],
        "error: --v3-priv-key needs --v3-user (SNMPv3)",
    ),
    "authPriv without priv key": (
        ["--v3-user", "u", "--v3-auth-key", "s3cret-Auth-77"],
        "error: authPriv needs --v3-priv-key (or READYNET_SNMP_V3_PRIV_KEY)",
    ),
    "short key": (
        ["--v3-user", "u", "--v3-auth-key", "s3cr3t!", "--v3-priv-key", "s3cret-Priv-77"],
        "error: --v3-auth-key must have at least 8 characters (RFC 3414); the value is not shown",
    ),
    "port out of range": (
        ["--community", "c", "--port", "70000"],
        "error: --port: Input should be less than or equal to 65535",
    ),
    "unknown profile": (["--community", "c", "--profile", "nope"], "error: --profile: no device"),
    "unknown auth protocol": (
        ["--v3-user", "u", "--v3-auth-proto", "SHA1"],
        "error: argument --v3-auth-proto: 'SHA1' is not one of MD5, SHA, SHA224",
    ),
    "unknown format": (["--community", "c", "--format", "xml"], "error: argument --format"),
    "unknown option": (["--community", "c", "--bogus"], "error: unrecognized arguments: --bogus"),
    "timeout not a number": (
        ["--community", "c", "--timeout", "soon"],
        "error: argument --timeout: invalid float value: 'soon'",
    ),
}


@pytest.mark.parametrize("case", list(BAD_ARGUMENTS))
def test_bad_arguments_exit_2_with_one_error_line(case: str) -> None:
    extra, says = BAD_ARGUMENTS[case]
    # A port nobody listens on: nothing may be sent before the arguments are checked.
    done = run_agent("snmp", "probe", LOOPBACK, "--port", str(free_udp_port()), *extra)

    assert done.returncode == 2
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith(says), line
    assert "s3cr3t!" not in done.stderr


def test_missing_host_exits_2() -> None:
    done = run_agent("snmp", "probe", "--community", "c")

    assert done.returncode == 2
    assert done.stderr == (
        "error: the following arguments are required: HOST (see readynet-agent snmp probe --help)\n"
    )
