"""Every recording in tests/data/snmprec polled in one `snmp_round`, and the ways a poll fails.

snmpsim serves the real devices' recordings on 127.0.0.1; the expected figures are the ones
tests/data/snmprec/README.md and agent/snmp/VENDOR_OIDS.md list for each file (and, for the
interface fields, the .snmprec lines themselves). Each failure is one device's error while the
other devices of the same round poll as usual.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from agent.settings import DeviceSettings, SnmpAuth, SnmpSettings
from agent.snmp.round import snmp_round
from agent.wire import MAX_SSIDS_PER_POLL, AccessPoint, Batch, SnmpPoll, Ssid
from collector.localrun import LOOPBACK, run_snmpsim
from tests.fixtures.snmpsim import DATA_DIR, SnmpSim, free_udp_port

RECORDINGS = sorted(p.stem for p in DATA_DIR.glob("*.snmprec"))
# Only the shipped profiles, whatever /etc/readynet/profiles holds on this machine.
SHIPPED_ONLY = SnmpSettings(profile_dirs=[])

IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
IF_TYPE = "1.3.6.1.2.1.2.2.1.3"
IF_ADMIN = "1.3.6.1.2.1.2.2.1.7"
IF_OPER = "1.3.6.1.2.1.2.2.1.8"
IF_NAME = "1.3.6.1.2.1.31.1.1.1.1"
IF_HC_IN = "1.3.6.1.2.1.31.1.1.1.6"
IF_HC_OUT = "1.3.6.1.2.1.31.1.1.1.10"
IF_HIGH_SPEED = "1.3.6.1.2.1.31.1.1.1.15"
IF_ALIAS = "1.3.6.1.2.1.31.1.1.1.18"


@dataclass(frozen=True)
class Expected:
    """What a recording's poll holds. `aps` lists rows in full; `ap_rows` only counts them."""

    profile: str
    sys_object_id: str
    interfaces: int
    clients: int | None = None
    aps_up: int | None = None
    aps_total: int | None = None
    aps: list[AccessPoint] | None = None
    ap_rows: int = 0
    ssids: list[Ssid] = field(default_factory=list)


def _ssids(*rows: tuple[str, int | None]) -> list[Ssid]:
    return [Ssid(name=name, clients=clients) for name, clients in rows]


EXPECTED = {
    # 690 APs in the radio table (2 radios each) against 1,386 APs up by the controller's own
    # count; the radio rows' clients add up to 6,695 against 2,654 stations (README).
    "arubaos": Expected(
        "aruba_controller", "1.3.6.1.4.1.14823.1.1.9999", 97, 2654, 1386, None, ap_rows=690
    ),
    "arubaos_aos65": Expected("aruba_controller", "1.3.6.1.4.1.14823.1.1.41", 0, 1, 8, aps=[]),
    "ciscowlc_cbw240ac": Expected(
        "cisco_wlc",
        "1.3.6.1.4.1.9.6.1.37.240.1",
        2,
        clients=23,
        aps_up=4,
        aps=[
            AccessPoint(key="14:16:9d:24:ec:80", name="ap1", clients=1),
            AccessPoint(key="a0:0f:37:1a:08:80", name="ap2", clients=8),
            AccessPoint(key="a0:0f:37:1a:0a:c0", name="ap3", clients=9),
            AccessPoint(key="a0:0f:37:1a:10:e0", name="ap4", clients=5),
        ],
        ssids=_ssids(("MGMT", 0), ("ssid1", 23), ("ssid2", 0), ("ssid3", 0), ("DEFAULT_RLAN", 0)),
    ),
    "edgeos": Expected("ubiquiti_edgeos", "1.3.6.1.4.1.41112.1.5", 26),
    "fortiap_fap831f": Expected(
        "fortiap",
        "1.3.6.1.4.1.12356.120.10.83112",
        44,
        clients=48,
        ssids=_ssids(("GUEST", 32), ("IOT", 0), ("CORP", 16)),
    ),
    "hiveos-wireless_650ax": Expected("aerohive", "1.3.6.1.4.1.26928.1", 13, clients=0),
    "iosxe": Expected("cisco_ios", "1.3.6.1.4.1.9.1.1116", 30),
    # devMac index 2.2.0.102.245.127; only MR products kept.
    "meraki-cloud-controller": Expected(
        "meraki_cloud",
        "1.3.6.1.4.1.29671.1",
        1,
        clients=6,
        aps_up=1,
        aps_total=1,
        aps=[AccessPoint(key="02:02:00:66:f5:7f", name="Gymnasium", clients=6, up=True)],
    ),
    "procurve_2520": Expected("hp_procurve", "1.3.6.1.4.1.11.2.3.7.8.5.2", 44),
    # ifIndex 8 and 9 both broadcast WARKOP-KOPIBOSS (0 + 4); 11 clients = 11 registrations.
    "routeros": Expected(
        "mikrotik",
        "1.3.6.1.4.1.14988.1",
        12,
        clients=11,
        ssids=_ssids(("WARKOP-KOPIBOSS-B", 7), ("WARKOP-KOPIBOSS-A", 0), ("WARKOP-KOPIBOSS", 4)),
    ),
    # NumAP (40) is the total; the cluster node says 36 are connected.
    "ruckuswireless-sz": Expected(
        "ruckus_smartzone",
        "1.3.6.1.4.1.25053.3.1.11.1",
        0,
        clients=146,
        aps_up=36,
        aps_total=40,
        aps=[],
        ssids=_ssids(
            ("private1", 52),
            ("private2", 16),
            ("private3", 9),
            ("private6", 0),
            ("private7", 67),
            ("private8", 2),
        ),
    ),
    # The eight WLAN names are anonymised to the same "<private>"; they are eight WLANs.
    "ruckuswireless_zd1200": Expected(
        "ruckus_zonedirector",
        "1.3.6.1.4.1.25053.3.1.5.15",
        0,
        clients=6,
        aps_up=4,
        aps_total=8,
        aps=[],
        ssids=_ssids(*(("<private>", n) for n in (0, 0, 0, 2, 2, 1, 1, 0))),
    ),
    # SSID homewifi_ac on both radios (4 + 14); the vwire-* mesh VAPs are dropped.
    "unifi_nanohd": Expected(
        "unifi_ap",
        "1.3.6.1.4.1.8072.3.2.10",
        29,
        clients=18,
        ssids=_ssids(("homewifi_ac", 18)),
    ),
}

# Uplinks as an engineer configures them: by ifIndex, by ifDescr, and by a ProCurve port name.
UPLINKS: dict[str, dict[str, Any]] = {
    "iosxe": {"internet": "GigabitEthernet0/0/1", "wan": 25},
    "procurve_2520": {"internet": "3"},
}


def recorded(stem: str, column: str, data_dir: Path = DATA_DIR) -> dict[int, str]:
    """{ifindex: value} of one column, read from the .snmprec file (hex `4x` values decoded)."""
    rows: dict[int, str] = {}
    for line in (data_dir / f"{stem}.snmprec").read_text(errors="replace").splitlines():
        oid, tag, value = line.split("|", 2)
        suffix = oid.removeprefix(column + ".")
        if suffix != oid and suffix.isdigit():
            rows[int(suffix)] = bytes.fromhex(value).decode() if tag.endswith("x") else value
    return rows


@pytest.fixture(scope="module")
def polls(snmpsim: SnmpSim) -> dict[str, SnmpPoll]:
    """All thirteen recordings, polled together in one round."""
    devices = [
        snmpsim.device(stem, timeout_s=5.0, uplinks=UPLINKS.get(stem, {})) for stem in RECORDINGS
    ]
    results = asyncio.run(snmp_round(devices, [], SHIPPED_ONLY))
    assert [p.device for p in results] == RECORDINGS
    return {poll.device: poll for poll in results}


def test_every_recording_has_an_expectation() -> None:
    assert len(RECORDINGS) == 13
    assert sorted(EXPECTED) == RECORDINGS


@pytest.mark.parametrize("stem", RECORDINGS)
def test_each_recording_polls_as_documented(
    polls: dict[str, SnmpPoll], snmpsim: SnmpSim, stem: str
) -> None:
    poll, expected = polls[stem], EXPECTED[stem]

    assert poll.error is None
    assert (poll.device, poll.address) == (stem, f"{LOOPBACK}:{snmpsim.port}")
    assert (poll.profile, poll.sys_object_id) == (expected.profile, expected.sys_object_id)
    assert len(poll.interfaces) == expected.interfaces
    assert (poll.clients, poll.aps_up, poll.aps_total) == (
        expected.clients,
        expected.aps_up,
        expected.aps_total,
    )
    if expected.aps is not None:
        assert poll.aps == expected.aps
    else:
        assert len(poll.aps) == expected.ap_rows
    assert poll.ssids == expected.ssids
    assert poll.duration_s is not None and poll.duration_s > 0
    # Each poll is a valid measurement on the wire.
    [back] = Batch.model_validate_json(Batch(measurements=[poll]).model_dump_json()).measurements
    assert back == poll


def test_aruba_names_its_aps_from_the_radio_table(polls: dict[str, SnmpPoll]) -> None:
    poll = polls["arubaos"]

    by_key = {ap.key: ap for ap in poll.aps}
    # 0.78.53.194.34.232 radios 1 and 2: 18 + 3 clients, both named ar6-bib4le2n.
    assert by_key["00:4e:35:c2:22:e8"] == AccessPoint(
        key="00:4e:35:c2:22:e8", name="ar6-bib4le2n", clients=21
    )
    assert all(ap.name for ap in poll.aps)
    assert len({ap.name for ap in poll.aps}) == 690
    # The per-radio sum is not the controller's count (a client is seen on several radios).
    assert sum(ap.clients or 0 for ap in poll.aps) == 6695
    assert poll.clients == 2654


@pytest.mark.parametrize("stem", ["iosxe", "procurve_2520"])
def test_interface_fields_equal_the_recording(polls: dict[str, SnmpPoll], stem: str) -> None:
    rows = {i.ifindex: i for i in polls[stem].interfaces}

    def column(oid: str) -> dict[int, str]:
        values = recorded(stem, oid)
        assert values, f"{stem} has no {oid}"
        return values

    names = column(IF_NAME)
    assert set(rows) == set(names)
    assert {k: r.name for k, r in rows.items()} == {k: v.strip() for k, v in names.items()}
    aliases = column(IF_ALIAS)
    assert {k: r.alias for k, r in rows.items()} == {
        k: (aliases.get(k, "").strip() or None) for k in rows
    }
    assert {k: r.if_type for k, r in rows.items()} == {
        k: int(v) for k, v in column(IF_TYPE).items()
    }
    assert {k: r.admin_status for k, r in rows.items()} == {
        k: int(v) for k, v in column(IF_ADMIN).items()
    }
    assert {k: r.oper_status for k, r in rows.items()} == {
        k: int(v) for k, v in column(IF_OPER).items()
    }
    assert {k: r.speed_mbps for k, r in rows.items()} == {
        k: int(v) for k, v in column(IF_HIGH_SPEED).items()
    }
    hc_in, hc_out = column(IF_HC_IN), column(IF_HC_OUT)
    assert {k: r.octets_in for k, r in rows.items()} == {k: _int(hc_in.get(k)) for k in rows}
    assert {k: r.octets_out for k, r in rows.items()} == {k: _int(hc_out.get(k)) for k in rows}
    assert {k: r.counter_bits for k, r in rows.items()} == {
        k: 64 if k in hc_in else None for k in rows
    }


def _int(value: str | None) -> int | None:
    return None if value is None else int(value)


def test_iosxe_speed_of_up_ports_only(polls: dict[str, SnmpPoll]) -> None:
    interfaces = polls["iosxe"].interfaces
    speeds, opers = recorded("iosxe", IF_HIGH_SPEED), recorded("iosxe", IF_OPER)

    everything = sum(i.speed_mbps or 0 for i in interfaces)
    up_only = sum(i.speed_mbps or 0 for i in interfaces if i.oper_up)

    # Down ports still report their nominal 1,000 or 10,000 (Null0 is up at 10,000).
    assert everything == sum(int(v) for v in speeds.values()) == 73_200
    assert up_only == sum(int(speeds[k]) for k, v in opers.items() if v == "1") == 26_200
    assert sum(i.oper_up is True for i in interfaces) == sum(v == "1" for v in opers.values()) == 19
    null0 = next(i for i in interfaces if i.name == "Nu0")
    assert (null0.if_type, null0.oper_up, null0.speed_mbps) == (1, True, 10_000)


def test_configured_uplinks_are_marked(polls: dict[str, SnmpPoll]) -> None:
    iosxe = {i.ifindex: i for i in polls["iosxe"].interfaces if i.role}
    assert {k: (i.name, i.role) for k, i in iosxe.items()} == {
        2: ("Gi0/0/1", "internet"),  # configured by its ifDescr, GigabitEthernet0/0/1
        25: ("Te0/0/24", "wan"),
    }
    procurve = [(i.ifindex, i.name, i.role) for i in polls["procurve_2520"].interfaces if i.role]
    assert procurve == [(3, "3", "internet")]


def test_hiveos_keeps_both_interfaces_named_alike(polls: dict[str, SnmpPoll]) -> None:
    named = [i.ifindex for i in polls["hiveos-wireless_650ax"].interfaces if i.name == "wifi1.1"]
    assert named == [20, 21]


# --- failures: each one device's error, while the round goes on ------------------------------


def _healthy(snmpsim: SnmpSim) -> list[DeviceSettings]:
    return [snmpsim.device("iosxe", name="router"), snmpsim.device("ciscowlc_cbw240ac", name="wlc")]


def _assert_healthy(polls: list[SnmpPoll]) -> None:
    router, wlc = polls
    assert (router.device, router.error, router.profile) == ("router", None, "cisco_ios")
    assert len(router.interfaces) == 30
    assert next(i for i in router.interfaces if i.ifindex == 2).octets_in == 19432396613
    assert (wlc.device, wlc.error, wlc.clients, wlc.aps_up, len(wlc.aps)) == (
        "wlc",
        None,
        23,
        4,
        4,
    )


async def test_a_dead_port_is_one_devices_error(snmpsim: SnmpSim) -> None:
    port = free_udp_port()  # nothing listens there
    dead = snmpsim.device("iosxe", name="dead", port=port, timeout_s=0.5, retries=0)

    first, *rest = await snmp_round([dead, *_healthy(snmpsim)], [], SHIPPED_ONLY)

    assert first.error == f"dead ({LOOPBACK}:{port}): No SNMP response received before timeout"
    assert (first.profile, first.interfaces, first.sys_uptime_ticks) == (None, [], None)
    _assert_healthy(rest)


async def test_a_wrong_community_is_one_devices_error_without_the_community(
    snmpsim: SnmpSim,
) -> None:
    community = "Not-The-Iosxe-Community-9"
    wrong = snmpsim.device(
        "iosxe",
        name="wrong",
        auth=SnmpAuth(community=SecretStr(community)),
        timeout_s=0.5,
        retries=0,
    )

    first, *rest = await snmp_round([wrong, *_healthy(snmpsim)], [community], SHIPPED_ONLY)

    assert first.error == (
        f"wrong ({LOOPBACK}:{snmpsim.port}): No SNMP response received before timeout"
    )
    assert community not in first.model_dump_json()
    _assert_healthy(rest)


@asynccontextmanager
async def relay(
    upstream_port: int, *, answers: int | None = None, delay_s: float = 0.0
) -> AsyncIterator[int]:
    """A UDP hop on 127.0.0.1 in front of snmpsim: it passes every request on, and passes back
    the first `answers` answers (all if None), each `delay_s` late. Yields its port."""
    loop = asyncio.get_running_loop()
    client: list[tuple[str, int]] = []
    left = [answers]

    def answer(data: bytes) -> None:
        if client and not front.is_closing():
            front.sendto(data, client[-1])

    class Back(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
            if left[0] is not None:
                if left[0] == 0:
                    return  # silent from now on
                left[0] -= 1
            loop.call_later(delay_s, answer, data)

    class Front(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
            client.append(addr)
            if not back.is_closing():
                back.sendto(data)

    back, _ = await loop.create_datagram_endpoint(Back, remote_addr=(LOOPBACK, upstream_port))
    front, _ = await loop.create_datagram_endpoint(Front, local_addr=(LOOPBACK, 0))
    try:
        yield front.get_extra_info("sockname")[1]
    finally:
        front.close()
        back.close()


async def test_a_device_that_stops_answering_mid_table_is_an_error_not_half_a_poll(
    snmpsim: SnmpSim,
) -> None:
    # Three answers: the system GET and two GETBULK pages of three rows; then silence.
    settings = SnmpSettings(profile_dirs=[], max_repetitions=3)
    async with relay(snmpsim.port, answers=3) as port:
        half = snmpsim.device("iosxe", name="half", port=port, timeout_s=0.5, retries=1)
        first, *rest = await snmp_round([half, *_healthy(snmpsim)], [], settings)

    assert first.error == f"half ({LOOPBACK}:{port}): No SNMP response received before timeout"
    # Nothing of the rows it did send: a poll is whole or an error.
    assert (first.interfaces, first.sys_object_id, first.profile) == ([], None, None)
    _assert_healthy(rest)


async def test_a_slow_device_is_cut_at_its_budget(snmpsim: SnmpSim) -> None:
    # Every answer 0.4 s late: the system GET and the first walk page already take 0.8 s.
    async with relay(snmpsim.port, delay_s=0.4) as port:
        slow = snmpsim.device(
            "iosxe", name="slow", port=port, timeout_s=3.0, retries=1, budget_s=0.5
        )
        started = time.monotonic()
        first, *rest = await snmp_round([slow, *_healthy(snmpsim)], [], SHIPPED_ONLY)
        elapsed = time.monotonic() - started

    assert first.error == (f"slow ({LOOPBACK}:{port}): the poll took longer than its 0.5 s budget")
    assert (first.interfaces, first.profile) == ([], None)
    _assert_healthy(rest)
    # Cut by the budget, long before its own timeouts (3 s, twice) would have ended it.
    assert elapsed < slow.timeout_s * (slow.retries + 1)


async def test_a_dead_device_is_cut_at_its_budget_before_its_timeouts(snmpsim: SnmpSim) -> None:
    dead = snmpsim.device(
        "iosxe", name="dead", port=free_udp_port(), timeout_s=2.0, retries=1, budget_s=0.3
    )

    started = time.monotonic()
    [poll] = await snmp_round([dead], [], SHIPPED_ONLY)
    elapsed = time.monotonic() - started

    assert poll.error == (
        f"dead ({LOOPBACK}:{dead.port}): the poll took longer than its 0.3 s budget"
    )
    assert elapsed < dead.timeout_s


async def test_dead_devices_do_not_delay_the_others(snmpsim: SnmpSim) -> None:
    timeout_s, retries = 1.5, 1
    dead = [
        snmpsim.device(
            "iosxe", name=f"dead{n}", port=free_udp_port(), timeout_s=timeout_s, retries=retries
        )
        for n in range(3)
    ]
    alive = [
        snmpsim.device(stem)
        for stem in ("iosxe", "edgeos", "procurve_2520", "ciscowlc_cbw240ac", "routeros")
    ]
    bound = timeout_s * (retries + 1)  # what one dead device costs

    started = time.monotonic()
    polls = await snmp_round([*dead, *alive], [], SHIPPED_ONLY)
    elapsed = time.monotonic() - started

    assert [p.error is None for p in polls] == [False] * 3 + [True] * 5
    for poll in polls[:3]:
        assert poll.error is not None and poll.error.endswith(
            "No SNMP response received before timeout"
        )
    for poll in polls[3:]:
        # No healthy poll waited for a dead one.
        assert poll.duration_s is not None and poll.duration_s < bound
    # The round costs one dead device's timeouts, not three in a row (3 * bound), plus slack.
    assert bound * 0.9 <= elapsed < 2 * bound


# --- edited copies of recordings, served by a second snmpsim --------------------------------

HC_GAP = range(10, 16)  # ifHCInOctets rows removed from the middle of iosxe's table
CORRUPT_ROW = 10  # the ifIndex whose ifHCInOctets is corrupt in iosxe_corrupt
MANY_SSIDS = MAX_SSIDS_PER_POLL + 200
MTXR_SSID = "1.3.6.1.4.1.14988.1.1.1.3.1.4"
MTXR_CLIENTS = "1.3.6.1.4.1.14988.1.1.1.3.1.6"


def _iosxe_with_a_gap() -> str:
    drop = tuple(f"{IF_HC_IN}.{i}|" for i in HC_GAP)
    lines = (DATA_DIR / "iosxe.snmprec").read_text(errors="surrogateescape").splitlines()
    return "\n".join(line for line in lines if not line.startswith(drop)) + "\n"


def _iosxe_with_a_corrupt_value() -> str:
    """ifHCInOctets.10 is not a number: snmpsim answers endOfMibView for that column there while
    the other columns go on, as a device that answers half a table does."""
    lines = (DATA_DIR / "iosxe.snmprec").read_text(errors="surrogateescape").splitlines()
    corrupt = f"{IF_HC_IN}.{CORRUPT_ROW}|"
    return (
        "\n".join(
            f"{corrupt[:-1]}|70|not-a-counter" if line.startswith(corrupt) else line
            for line in lines
        )
        + "\n"
    )


def _mikrotik_with_many_ssids() -> str:
    """A made-up RouterOS with more AP interfaces than a poll may carry SSID rows."""
    records = [
        ("1.3.6.1.2.1.1.1.0", "4", "router"),
        ("1.3.6.1.2.1.1.2.0", "6", "1.3.6.1.4.1.14988.1"),
        ("1.3.6.1.2.1.1.3.0", "67", "12345"),
        *((f"{MTXR_SSID}.{i}", "4", f"ssid-{i:04d}") for i in range(1, MANY_SSIDS + 1)),
        *((f"{MTXR_CLIENTS}.{i}", "65", "1") for i in range(1, MANY_SSIDS + 1)),
    ]
    records.sort(key=lambda record: tuple(int(arc) for arc in record[0].split(".")))
    return "".join(f"{oid}|{tag}|{value}\n" for oid, tag, value in records)


@pytest.fixture(scope="module")
def edited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpSim]:
    recordings = tmp_path_factory.mktemp("edited")
    (recordings / "iosxe_gap.snmprec").write_text(_iosxe_with_a_gap(), errors="surrogateescape")
    (recordings / "mikrotik_many.snmprec").write_text(_mikrotik_with_many_ssids())
    (recordings / "iosxe_corrupt.snmprec").write_text(
        _iosxe_with_a_corrupt_value(), errors="surrogateescape"
    )
    workdir = tmp_path_factory.mktemp("edited-snmpsim")
    with run_snmpsim(recordings, workdir) as port:
        yield SnmpSim(host=LOOPBACK, port=port, data_dir=workdir / "snmprec")


async def test_rows_missing_mid_table_are_missing_values_not_an_error(
    snmpsim: SnmpSim, edited: SnmpSim
) -> None:
    gap = edited.device("iosxe_gap", name="gap")

    first, *rest = await snmp_round([gap, *_healthy(snmpsim)], [], SHIPPED_ONLY)

    assert (first.error, first.profile, len(first.interfaces)) == (None, "cisco_ios", 30)
    hc_in = recorded("iosxe_gap", IF_HC_IN, edited.data_dir)
    assert sorted(set(recorded("iosxe", IF_HC_IN)) - set(hc_in)) == list(HC_GAP)
    for row in first.interfaces:
        # The walk went past the gap: every other row has its counters.
        assert row.octets_in == _int(hc_in.get(row.ifindex)), row.ifindex
    gap_rows = [i for i in first.interfaces if i.ifindex in HC_GAP]
    assert all(r.octets_in is None and r.octets_out is not None for r in gap_rows)
    assert all(r.counter_bits == 64 for r in gap_rows)
    _assert_healthy(rest)


async def test_a_column_that_ends_mid_table_is_an_error_not_half_a_poll(
    snmpsim: SnmpSim, edited: SnmpSim
) -> None:
    corrupt = edited.device("iosxe_corrupt", name="corrupt")

    first, *rest = await snmp_round([corrupt, *_healthy(snmpsim)], [], SHIPPED_ONLY)

    assert first.error is not None and first.interfaces == []
    assert f"stopped answering column {IF_HC_IN} after {IF_HC_IN}.{CORRUPT_ROW - 1}" in (
        first.error
    )
    assert "answered part of the table" in first.error
    _assert_healthy(rest)


async def test_more_ssids_than_a_poll_carries_keeps_the_total(edited: SnmpSim) -> None:
    [poll] = await snmp_round([edited.device("mikrotik_many")], [], SHIPPED_ONLY)

    assert (poll.error, poll.profile) == (None, "mikrotik")
    assert poll.clients == MANY_SSIDS
    assert len(poll.ssids) == MAX_SSIDS_PER_POLL
    assert poll.ssids[0] == Ssid(name="ssid-0001", clients=1)
    assert Batch(measurements=[poll])
