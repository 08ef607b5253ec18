"""SnmpProbe and agent.snmp.walk against real snmpsim serving real devices' recordings.

Expected values come from the recordings themselves (tests/data/snmprec, see its README).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from pyasn1.codec.ber import decoder, encoder
from pysnmp.proto import api

from agent.errors import DeviceError
from agent.probes.snmp import SnmpProbe
from agent.snmp.background import IF_HC_IN_OCTETS, IF_HC_OUT_OCTETS, IF_HIGH_SPEED
from agent.snmp.device import SYS_OBJECT_ID, SYS_UPTIME
from agent.snmp.walk import get_scalars, open_session, walk_columns
from agent.wire import Batch, SnmpPoll
from tests.fixtures.snmpsim import DATA_DIR, LOOPBACK, SnmpSim, free_udp_port

IF_PHYS_ADDRESS = "1.3.6.1.2.1.2.2.1.6"  # IF-MIB::ifPhysAddress


def recorded_column(community: str, column: str) -> dict[int, str]:
    """{ifindex: raw value} of one table column, read straight from the .snmprec file."""
    prefix = column + "."
    rows: dict[int, str] = {}
    text = (DATA_DIR / f"{community}.snmprec").read_text(errors="replace")
    for line in text.splitlines():
        oid, _tag, value = line.split("|", 2)
        suffix = oid.removeprefix(prefix)
        if suffix != oid and suffix.isdigit():
            rows[int(suffix)] = value
    return rows


async def poll(device: Any) -> SnmpPoll:
    [result] = await SnmpProbe(device).run()
    assert isinstance(result, SnmpPoll)
    return result


@pytest.mark.parametrize(
    ("community", "interfaces", "hc_rows", "uptime_ticks", "object_id"),
    [
        ("iosxe", 30, 29, 857980, "1.3.6.1.4.1.9.1.1116"),
        ("edgeos", 26, 26, 16436942, "1.3.6.1.4.1.41112.1.5"),
        ("procurve_2520", 44, 44, 1084104545, "1.3.6.1.4.1.11.2.3.7.8.5.2"),
        ("unifi_nanohd", 29, 29, 54502347, "1.3.6.1.4.1.8072.3.2.10"),
        ("routeros", 12, 12, 2020400, "1.3.6.1.4.1.14988.1"),
        ("hiveos-wireless_650ax", 13, 13, 22448129, "1.3.6.1.4.1.26928.1"),
        ("ciscowlc_cbw240ac", 2, 2, 39682400, "1.3.6.1.4.1.9.6.1.37.240.1"),
        # Counter32 only (ifTable), no sysUpTime.
        ("fortiap_fap831f", 44, 0, None, "1.3.6.1.4.1.12356.120.10.83112"),
        ("meraki-cloud-controller", 1, 0, None, "1.3.6.1.4.1.29671.1"),
        # A controller recording with no IF-MIB at all: an empty poll, not an error.
        ("arubaos_aos65", 0, 0, 174816600, "1.3.6.1.4.1.14823.1.1.41"),
    ],
)
async def test_poll_matches_recording(
    snmpsim: SnmpSim,
    community: str,
    interfaces: int,
    hc_rows: int,
    uptime_ticks: int | None,
    object_id: str,
) -> None:
    result = await poll(snmpsim.device(community))

    assert result.error is None
    assert result.device == community
    assert result.address == f"{LOOPBACK}:{snmpsim.port}"
    assert result.sys_uptime_ticks == uptime_ticks
    assert result.sys_object_id == object_id
    assert len(result.interfaces) == interfaces
    assert sum(i.counter_bits == 64 and i.octets_in is not None for i in result.interfaces) == (
        hc_rows
    )
    indexes = [i.ifindex for i in result.interfaces]
    assert indexes == sorted(set(indexes))
    assert all(i.name for i in result.interfaces)


async def test_iosxe_counters_equal_the_recording(snmpsim: SnmpSim) -> None:
    result = await poll(snmpsim.device("iosxe"))
    by_index = {i.ifindex: i for i in result.interfaces}

    gi001 = by_index[2]
    assert (gi001.name, gi001.octets_in, gi001.octets_out) == ("Gi0/0/1", 19432396613, 21328802079)
    assert (gi001.counter_bits, gi001.speed_mbps) == (64, 100)
    assert by_index[25].name == "Te0/0/24"
    assert by_index[25].speed_mbps == 10000
    # Gi0 (management) has a name and ifHighSpeed but no HC counters in the recording.
    assert (by_index[29].name, by_index[29].octets_in, by_index[29].speed_mbps) == (
        "Gi0",
        None,
        1000,
    )
    hc_in = {i.ifindex: i.octets_in for i in result.interfaces if i.octets_in is not None}
    hc_out = {i.ifindex: i.octets_out for i in result.interfaces if i.octets_out is not None}
    speeds = {i.ifindex: i.speed_mbps for i in result.interfaces}
    assert hc_in == {k: int(v) for k, v in recorded_column("iosxe", IF_HC_IN_OCTETS).items()}
    assert hc_out == {k: int(v) for k, v in recorded_column("iosxe", IF_HC_OUT_OCTETS).items()}
    assert speeds == {k: int(v) for k, v in recorded_column("iosxe", IF_HIGH_SPEED).items()}
    # The poll is a valid wire measurement.
    assert Batch.model_validate_json(Batch(measurements=[result]).model_dump_json())


async def test_meraki_falls_back_to_counter32_iftable(snmpsim: SnmpSim) -> None:
    result = await poll(snmpsim.device("meraki-cloud-controller"))

    assert result.sys_uptime_ticks is None
    [interface] = result.interfaces
    assert interface.ifindex == 11
    assert interface.counter_bits == 32
    assert (interface.octets_in, interface.octets_out) == (2268799121, 2204618213)
    assert interface.speed_mbps is None
    # Its ifDescr is binary (4x-encoded 42010aa40033), so it comes back as hex.
    assert interface.name == "0x42010aa40033"


async def test_fortiap_speed_from_ifspeed_in_mbps(snmpsim: SnmpSim) -> None:
    result = await poll(snmpsim.device("fortiap_fap831f"))

    lo = result.interfaces[0]
    assert (lo.ifindex, lo.name, lo.counter_bits) == (1, "lo", 32)
    assert (lo.octets_in, lo.octets_out) == (281661940, 281661940)
    assert lo.speed_mbps == 10  # ifSpeed 10000000 bps


async def test_dead_port_is_an_error_result(snmpsim: SnmpSim) -> None:
    port = free_udp_port()  # nothing listens there
    device = snmpsim.device("iosxe", name="dead-switch", port=port, timeout_s=0.3, retries=0)

    started = time.monotonic()
    result = await poll(device)

    assert result.error is not None
    assert f"dead-switch ({LOOPBACK}:{port})" in result.error
    assert result.interfaces == []
    assert result.sys_uptime_ticks is None
    assert time.monotonic() - started < 5


async def test_wrong_community_is_an_error_result(snmpsim: SnmpSim) -> None:
    device = snmpsim.device("no-such-recording", timeout_s=0.3, retries=0)

    result = await poll(device)

    assert result.error is not None
    assert "no-such-recording" in result.error
    assert "No SNMP response" in result.error
    assert result.interfaces == []


async def test_walk_drops_a_dead_column_and_continues_the_others(snmpsim: SnmpSim) -> None:
    # iosxe's ifPhysAddress values are anonymised non-hex text: snmpsim answers noSuchInstance.
    async with open_session(snmpsim.device("iosxe")) as session:
        table = await walk_columns(session, [IF_PHYS_ADDRESS, IF_HC_IN_OCTETS])

    assert table[IF_PHYS_ADDRESS] == {}
    hc_in = table[IF_HC_IN_OCTETS]
    assert len(hc_in) == 29
    assert hc_in["2"] == 19432396613
    assert hc_in == {str(k): int(v) for k, v in recorded_column("iosxe", IF_HC_IN_OCTETS).items()}


@pytest.mark.parametrize("max_repetitions", [1, 3, 50])
async def test_walk_result_does_not_depend_on_page_size(
    snmpsim: SnmpSim, max_repetitions: int
) -> None:
    columns = [IF_HC_IN_OCTETS, IF_HC_OUT_OCTETS, IF_HIGH_SPEED]
    async with open_session(snmpsim.device("edgeos")) as session:
        table = await walk_columns(session, columns, max_repetitions=max_repetitions)

    for column in columns:
        expected = {str(k): int(v) for k, v in recorded_column("edgeos", column).items()}
        assert table[column] == expected


async def test_get_scalars_maps_absent_oids_to_none(snmpsim: SnmpSim) -> None:
    async with open_session(snmpsim.device("meraki-cloud-controller")) as session:
        values = await get_scalars(session, [SYS_UPTIME, SYS_OBJECT_ID, "1.3.6.1.2.1.1.1.0"])

    assert values == {
        SYS_UPTIME: None,
        SYS_OBJECT_ID: "1.3.6.1.4.1.29671.1",
        "1.3.6.1.2.1.1.1.0": "Cisco Meraki Cloud Controller",  # SNMPv2-MIB::sysDescr.0
    }


class _EchoAgent(asyncio.DatagramProtocol):
    """A broken SNMPv2c agent: it answers every OID with that same OID, so a walk never advances."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        v2c = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
        request, _ = decoder.decode(data, asn1Spec=v2c.Message())
        response = v2c.apiMessage.get_response(request)
        asked = v2c.apiPDU.get_varbinds(v2c.apiMessage.get_pdu(request))
        answer = [(oid, v2c.Counter32(7)) for oid, _ in asked]
        v2c.apiPDU.set_varbinds(v2c.apiMessage.get_pdu(response), answer)
        self.transport.sendto(encoder.encode(response), addr)


@pytest.fixture
async def echo_agent_port() -> AsyncIterator[int]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(_EchoAgent, local_addr=(LOOPBACK, 0))
    try:
        yield transport.get_extra_info("sockname")[1]
    finally:
        transport.close()


async def test_walk_refuses_an_agent_whose_oids_do_not_increase(
    snmpsim: SnmpSim, echo_agent_port: int
) -> None:
    device = snmpsim.device("public", name="loopy", port=echo_agent_port)
    async with open_session(device) as session:
        with pytest.raises(DeviceError, match=r"loopy .*OID not increasing in column"):
            await walk_columns(session, [IF_HC_IN_OCTETS])

    result = await poll(device)
    assert result.error is not None
    assert "OID not increasing" in result.error
    assert result.interfaces == []
