"""Interface rates computed at the collector from consecutive stored polls, on both databases.

The polls come from real recordings served by snmpsim: an edited copy of a device's recording
stands for the same device some minutes later (counters moved on, wrapped, or the device
restarted), and the agent's own poller reads both. The collector then holds each interface's
5-minute rate, or the reason it has none.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from agent.settings import DeviceSettings, SnmpAuth
from agent.snmp.device import poll_device
from agent.snmp.profile import load_profiles
from agent.wire import AccessPoint, Batch, InterfaceCounters, SnmpPoll
from collector.localrun import LOOPBACK, run_snmpsim
from collector.store.models import InterfaceRate, InterfaceSample, SnmpPollResult
from tests.fixtures.collector import RunningCollector
from tests.fixtures.snmpsim import DATA_DIR

SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
HC_IN = "1.3.6.1.2.1.31.1.1.1.6."
HC_OUT = "1.3.6.1.2.1.31.1.1.1.10."
IN_32 = "1.3.6.1.2.1.2.2.1.10."
POLL_GAP = timedelta(minutes=5)
# Edits: OID prefix -> new value from the old one.
Edit = dict[str, Callable[[int], int]]


def _edited(source: str, edits: Edit) -> str:
    lines = []
    for line in (DATA_DIR / f"{source}.snmprec").read_text(errors="surrogateescape").splitlines():
        oid, tag, value = line.split("|", 2)
        for prefix, change in edits.items():
            if (oid == prefix or oid.startswith(prefix)) and value.isdigit():
                value = str(change(int(value)))
        lines.append(f"{oid}|{tag}|{value}")
    return "\n".join(lines) + "\n"


# Each case: the recording, its edits before and its edits after.
CASES: dict[str, tuple[str, Edit, Edit]] = {
    # 300 s later: 3,750,000 octets more in and 7,500,000 more out on every HC counter.
    "moved": (
        "iosxe",
        {},
        {
            SYS_UPTIME: lambda v: v + 30_000,
            HC_IN: lambda v: v + 3_750_000,
            HC_OUT: lambda v: v + 7_500_000,
        },
    ),
    # The device restarted: uptime and counters started again from small values.
    "reboot": (
        "iosxe",
        {},
        {SYS_UPTIME: lambda v: 6_000, HC_IN: lambda v: v // 1000, HC_OUT: lambda v: v // 1000},
    ),
    # A Counter32 close to its top before, wrapped after (FortiAP has only the ifTable).
    "wrap": ("fortiap_fap831f", {IN_32: lambda v: 2**32 - 1_000}, {IN_32: lambda v: 2_000}),
}


@pytest.fixture(scope="module")
def later(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """An snmpsim serving each case's recordings: `<case>-before` and `<case>-after`."""
    data = tmp_path_factory.mktemp("later-data")
    for case, (source, before, after) in CASES.items():
        (data / f"{case}-before.snmprec").write_text(
            _edited(source, before), errors="surrogateescape"
        )
        (data / f"{case}-after.snmprec").write_text(
            _edited(source, after), errors="surrogateescape"
        )
    with run_snmpsim(data, tmp_path_factory.mktemp("later-run")) as port:
        yield port


# The uplinks each recording's device is configured with: only rows with a role get rates.
UPLINKS: dict[str, dict[str, int | str]] = {
    "iosxe": {"internet": "Gi0/0/1", "wan": 4},
    # lo says 10 Mbit/s, eth1 1 Gbit/s: at that speed a Counter32 can wrap twice in 5 minutes.
    "fortiap_fap831f": {"internet": "lo", "wan": 6},
}
UPLINK_IFINDEXES = {"iosxe": [2, 4], "fortiap_fap831f": [1, 6]}


def _poll(port: int, community: str, at: datetime) -> SnmpPoll:
    recording, _, _ = CASES[community.rsplit("-", 1)[0]]
    device = DeviceSettings(
        name="router",
        address=LOOPBACK,
        port=port,
        auth=SnmpAuth(community=SecretStr(community)),
        uplinks=UPLINKS[recording],
    )
    poll = asyncio.run(poll_device(device, load_profiles([])))
    assert poll.error is None, poll.error
    return poll.model_copy(update={"measured_at": at})


def _post(collector: RunningCollector, token: str, *polls: SnmpPoll) -> None:
    body = Batch(measurements=list(polls)).model_dump_json()
    answer = httpx.post(
        f"{collector.url}/api/v1/results",
        content=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert answer.status_code == 200, answer.text


def _rates(collector: RunningCollector, poll: SnmpPoll) -> dict[int, InterfaceRate]:
    """The rate rows of a stored poll, by ifIndex."""
    with collector.sessions() as session:
        rows = session.execute(
            select(InterfaceSample.ifindex, InterfaceRate)
            .join(SnmpPollResult, SnmpPollResult.poll_id == InterfaceRate.poll_id)
            .join(
                InterfaceSample,
                (InterfaceSample.poll_id == InterfaceRate.poll_id)
                & (InterfaceSample.seq == InterfaceRate.seq),
            )
            .where(SnmpPollResult.measurement_id == poll.id)
        ).all()
        session.expunge_all()
    return {row[0]: row[1] for row in rows}


def _times() -> tuple[datetime, datetime]:
    second = datetime.now(UTC) - timedelta(minutes=1)
    return second - POLL_GAP, second


def test_rates_from_two_polls_five_minutes_apart(
    collector_any_db: RunningCollector, later: int
) -> None:
    collector = collector_any_db
    token = collector.enroll(collector.add_school())
    first_at, second_at = _times()
    first = _poll(later, "moved-before", first_at)
    second = _poll(later, "moved-after", second_at)
    _post(collector, token, first)
    _post(collector, token, second)
    assert {r.no_rate for r in _rates(collector, first).values()} == {"first_sample"}
    rates = _rates(collector, second)
    # 29 rows have counters; the two uplinks get rates, the other ports' counters are only kept.
    assert len([i for i in second.interfaces if i.counter_bits == 64]) == 29
    assert sorted(rates) == UPLINK_IFINDEXES["iosxe"]
    assert {i.ifindex: i.role for i in second.interfaces if i.role} == {2: "internet", 4: "wan"}
    for ifindex in UPLINK_IFINDEXES["iosxe"]:
        rate = rates[ifindex]
        assert rate.no_rate is None
        assert rate.seconds == pytest.approx(300)
        assert rate.in_bps == pytest.approx(3_750_000 * 8 / 300)  # 100 kbit/s
        assert rate.out_bps == pytest.approx(7_500_000 * 8 / 300)


def test_a_restart_gives_no_spike(collector_any_db: RunningCollector, later: int) -> None:
    collector = collector_any_db
    token = collector.enroll(collector.add_school())
    first_at, second_at = _times()
    first = _poll(later, "reboot-before", first_at)
    second = _poll(later, "reboot-after", second_at)
    _post(collector, token, first, second)  # one batch: the rates chain inside it too
    rates = _rates(collector, second)
    assert sorted(rates) == UPLINK_IFINDEXES["iosxe"]
    assert {r.no_rate for r in rates.values()} == {"reboot"}
    assert all(r.in_bps is None and r.out_bps is None for r in rates.values())


def test_a_32_bit_wrap_is_counted_once(collector_any_db: RunningCollector, later: int) -> None:
    collector = collector_any_db
    token = collector.enroll(collector.add_school())
    first_at, second_at = _times()
    first = _poll(later, "wrap-before", first_at)
    second = _poll(later, "wrap-after", second_at)
    assert {i.counter_bits for i in second.interfaces if i.octets_in is not None} == {32}
    _post(collector, token, first)
    _post(collector, token, second)
    rates = _rates(collector, second)
    assert sorted(rates) == UPLINK_IFINDEXES["fortiap_fap831f"]
    assert rates[1].no_rate is None
    assert rates[1].in_bps == pytest.approx(3_000 * 8 / 300)
    assert (rates[6].no_rate, rates[6].in_bps) == ("ambiguous_wrap", None)


def test_a_late_poll_gets_no_rate_and_breaks_none(collector_any_db: RunningCollector) -> None:
    collector = collector_any_db
    token = collector.enroll(collector.add_school())
    start = datetime.now(UTC) - timedelta(hours=1)

    def poll(minutes: int, octets: int) -> SnmpPoll:
        row = InterfaceCounters(
            ifindex=7,
            name="wan0",
            octets_in=octets,
            octets_out=octets,
            counter_bits=64,
            speed_mbps=1000,
            role="wan",
        )
        return SnmpPoll(
            device="edge",
            address="127.0.0.1:161",
            measured_at=start + timedelta(minutes=minutes),
            sys_uptime_ticks=100_000 + minutes * 6_000,
            interfaces=[row],
        )

    first, second, third = poll(0, 0), poll(5, 37_500_000), poll(10, 75_000_000)
    _post(collector, token, first)
    _post(collector, token, third)  # the outbox delivered the newer poll first
    _post(collector, token, second)
    [late] = _rates(collector, second).values() or [None]
    assert late is None
    [spanning] = _rates(collector, third).values()
    assert spanning.seconds == pytest.approx(600)
    assert spanning.in_bps == pytest.approx(75_000_000 * 8 / 600)  # 1 Mbit/s


def test_an_error_poll_and_rows_without_counters_get_no_rate(
    collector_any_db: RunningCollector,
) -> None:
    collector = collector_any_db
    token = collector.enroll(collector.add_school())
    failed = SnmpPoll(device="ap", address="127.0.0.1:161", error="no answer")
    bare = SnmpPoll(
        device="ap",
        address="127.0.0.1:161",
        interfaces=[InterfaceCounters(ifindex=1, name="lo", speed_mbps=0, role="internet")],
    )
    _post(collector, token, failed, bare)
    assert _rates(collector, failed) == {} and _rates(collector, bare) == {}
    with collector.sessions() as session:
        bits = session.scalar(select(InterfaceSample.counter_bits))
    assert bits == 0


def test_readiness_reports_uplink_and_wifi_peaks(collector_any_db: RunningCollector) -> None:
    """Twenty 5-minute intervals on the internet uplink: 19 at 10 Mbit/s and one at 200 (a
    backup), so the 95th percentile is the backup-free 10 and the maximum is 200."""
    collector = collector_any_db
    school = collector.add_school()
    token = collector.enroll(school)
    start = datetime.now(UTC) - timedelta(hours=3)
    octets, polls = 0, []
    for step in range(21):
        if step:
            octets += (200 if step == 7 else 10) * 1_000_000 * 300 // 8
        at = start + step * POLL_GAP
        uplink = InterfaceCounters(
            ifindex=3,
            name="Gi0/0/0",
            octets_in=octets,
            octets_out=octets // 2,
            counter_bits=64,
            speed_mbps=1000,
            role="internet",
        )
        other = InterfaceCounters(
            ifindex=4, name="Gi0/0/1", octets_in=octets, counter_bits=64, speed_mbps=1000
        )
        polls.append(
            SnmpPoll(
                device="edge",
                address="127.0.0.1:161",
                measured_at=at,
                sys_uptime_ticks=1_000_000 + step * 30_000,
                interfaces=[uplink, other],
            )
        )
        polls.append(
            SnmpPoll(
                device="wlc",
                address="127.0.0.1:1161",
                measured_at=at,
                clients=100 + step,
                aps_up=4,
                aps_total=5,
                aps=[AccessPoint(key="00:11:22:33:44:55", name="Library", clients=40 + step)],
            )
        )
    _post(collector, token, *polls)
    body = httpx.get(
        f"{collector.url}/api/v1/schools/{school}/readiness", headers=collector.reader
    ).json()
    [uplink_peak] = body["uplinks"]
    assert uplink_peak["role"] == "internet" and uplink_peak["ifname"] == "Gi0/0/0"
    assert uplink_peak["rates"] == 20 and uplink_peak["gaps"] == 0
    assert uplink_peak["p95_in_mbps"] == pytest.approx(10)
    assert uplink_peak["p95_out_mbps"] == pytest.approx(5)
    assert uplink_peak["max_mbps"] == pytest.approx(200)
    assert uplink_peak["p95_utilisation"] == pytest.approx(0.01)
    assert uplink_peak["suggested_mbps"] == pytest.approx(13.5)
    [wifi] = body["wifi"]
    assert wifi["device"] == "wlc" and wifi["polls"] == 21
    assert wifi["max_clients"] == 120 and wifi["p95_clients"] == 119
    assert (wifi["aps_up"], wifi["aps_total"]) == (4, 5)
    assert (wifi["busiest_ap"], wifi["busiest_ap_clients"]) == ("Library", 60)
