"""The busy-line check against net-snmp's real agent, with traffic the test makes itself."""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest

from agent.errors import ProbeError
from agent.settings import DeviceSettings, UplinkSettings
from agent.snmp.background import measure_background
from agent.uplink import Background
from tests.fixtures.snmpd import LOOPBACK_IFINDEX, snmpd  # noqa: F401 (fixture)

SENT_BYTES = 60_000_000


def _blast_over_loopback(seconds: float) -> None:
    """Send SENT_BYTES over a loopback TCP connection, spread over `seconds`."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def sink() -> None:
            conn, _ = server.accept()
            with conn:
                while conn.recv(1 << 20):
                    pass

        reader = threading.Thread(target=sink)
        reader.start()
        with socket.create_connection(("127.0.0.1", port)) as out:
            chunk = b"x" * 1_000_000
            for _ in range(SENT_BYTES // len(chunk)):
                out.sendall(chunk)
                threading.Event().wait(seconds / (SENT_BYTES // len(chunk)))
        reader.join()


async def test_traffic_on_the_uplink_is_measured_and_defers_the_test(
    snmpd: DeviceSettings,  # noqa: F811
) -> None:
    # snmpd, like most devices, caches interface counters for a few seconds: sample longer.
    settings = UplinkSettings(
        device="router", ifindex=LOOPBACK_IFINDEX, sample_s=4, busy_bps=50e6, busy_fraction=1
    )
    blast = asyncio.to_thread(_blast_over_loopback, 1.0)
    background, _ = await asyncio.gather(measure_background(snmpd, settings), blast)
    # Everything sent crossed `lo` inside the sampling interval (other tests may add more).
    assert background.in_bps >= 0.5 * SENT_BYTES * 8 / 4
    assert background.link_bps == 10e6  # what Linux reports for lo
    reason = background.busy(settings)
    assert reason is not None and reason.startswith("uplink carries")


async def test_a_quiet_uplink_lets_the_test_run(snmpd: DeviceSettings) -> None:  # noqa: F811
    settings = UplinkSettings(
        device="router", ifindex=LOOPBACK_IFINDEX, sample_s=0.5, busy_bps=100e9, busy_fraction=1
    )
    background = Background(in_bps=1e6, out_bps=2e6, link_bps=10e6)
    assert background.busy(settings) is None
    measured = await measure_background(snmpd, settings)
    assert measured.in_bps >= 0 and measured.out_bps >= 0


def test_share_of_the_link_decides() -> None:
    settings = UplinkSettings(device="r", ifindex=1, busy_fraction=0.3)
    assert Background(250e6, 10e6, 1e9).busy(settings) is None
    assert Background(350e6, 10e6, 1e9).busy(settings) == (
        "uplink carries 350.0 Mbit/s, 35% of its 1000 Mbit/s (limit 30%)"
    )
    # Unknown link speed and no absolute limit: nothing to compare with, the test runs.
    assert Background(350e6, 10e6, None).busy(settings) is None


async def test_an_interface_without_counters_is_a_probe_error(
    snmpd: DeviceSettings,  # noqa: F811
) -> None:
    settings = UplinkSettings(device="router", ifindex=999_999, sample_s=0.5)
    with pytest.raises(ProbeError, match="no octet counters on ifIndex 999999"):
        await measure_background(snmpd, settings)
