"""`read_interfaces` and `read_wifi` on small hand-made tables: what each vendor quirk turns into.

The tables have the shape `agent.snmp.walk.walk_columns` returns: column OID → {index suffix →
value}, values as the device typed them (int or str).
"""

from __future__ import annotations

from typing import Any

import pytest

from agent.settings import UplinkRole
from agent.snmp.profile import DeviceProfile, Interfaces, load_profiles
from agent.snmp.readout import ColumnRows, read_interfaces, read_wifi
from agent.snmp.walk import SnmpValue
from agent.wire import UINT32_MAX, UINT64_MAX, AccessPoint, Ssid

PROFILES = load_profiles([])
IF_MIB = PROFILES.interfaces(PROFILES.base)

IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
IF_TYPE = "1.3.6.1.2.1.2.2.1.3"
IF_SPEED = "1.3.6.1.2.1.2.2.1.5"
IF_ADMIN = "1.3.6.1.2.1.2.2.1.7"
IF_OPER = "1.3.6.1.2.1.2.2.1.8"
IF_IN = "1.3.6.1.2.1.2.2.1.10"
IF_OUT = "1.3.6.1.2.1.2.2.1.16"
IF_NAME = "1.3.6.1.2.1.31.1.1.1.1"
IF_HC_IN = "1.3.6.1.2.1.31.1.1.1.6"
IF_HC_OUT = "1.3.6.1.2.1.31.1.1.1.10"
IF_HIGH_SPEED = "1.3.6.1.2.1.31.1.1.1.15"
IF_ALIAS = "1.3.6.1.2.1.31.1.1.1.18"


def test_the_base_profile_reads_these_columns() -> None:
    assert IF_MIB == Interfaces(
        name=[IF_NAME, IF_DESCR],
        alias=IF_ALIAS,
        if_type=IF_TYPE,
        admin_status=IF_ADMIN,
        oper_status=IF_OPER,
        octets_in_64=IF_HC_IN,
        octets_out_64=IF_HC_OUT,
        octets_in_32=IF_IN,
        octets_out_32=IF_OUT,
        speed_mbps=IF_HIGH_SPEED,
        speed_bps=IF_SPEED,
    )


def one_row(cells: dict[str, SnmpValue], ifindex: int = 1) -> ColumnRows:
    return {column: {str(ifindex): value} for column, value in cells.items()}


# --- interfaces ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        pytest.param(
            {IF_HC_IN: 2**40, IF_HC_OUT: 2**41, IF_IN: 7, IF_OUT: 8},
            (2**40, 2**41, 64),
            id="64-bit-preferred-over-32",
        ),
        pytest.param({IF_IN: 7, IF_OUT: 8}, (7, 8, 32), id="32-bit-fallback"),
        pytest.param({IF_HC_IN: 0, IF_HC_OUT: 0}, (0, 0, 64), id="64-bit-zeros-are-counters"),
        # One width per row: both directions must wrap at the same point.
        pytest.param({IF_HC_IN: 5, IF_IN: 7, IF_OUT: 8}, (5, None, 64), id="64-bit-in-only"),
        pytest.param({IF_DESCR: "eth0"}, (None, None, None), id="no-counters-no-width"),
        pytest.param(
            {IF_HC_IN: "", IF_HC_OUT: "n/a", IF_IN: 7, IF_OUT: 8},
            (7, 8, 32),
            id="64-bit-not-numbers-fall-back",
        ),
        pytest.param(
            {IF_HC_IN: UINT64_MAX, IF_HC_OUT: UINT64_MAX + 1},
            (UINT64_MAX, None, 64),
            id="64-bit-range",
        ),
        pytest.param(
            {IF_IN: UINT32_MAX, IF_OUT: UINT32_MAX + 1}, (UINT32_MAX, None, 32), id="32-bit-range"
        ),
        pytest.param({IF_IN: -1, IF_OUT: "12"}, (None, 12, 32), id="negative-and-text-32-bit"),
    ],
)
def test_counters_and_their_width(
    cells: dict[str, SnmpValue], expected: tuple[int | None, int | None, int | None]
) -> None:
    [row] = read_interfaces(one_row(cells), IF_MIB, {})
    assert (row.octets_in, row.octets_out, row.counter_bits) == expected


@pytest.mark.parametrize(
    ("cells", "speed_mbps"),
    [
        ({IF_HIGH_SPEED: 10000, IF_SPEED: 4294967295}, 10000),
        ({IF_HIGH_SPEED: 0, IF_SPEED: 1_000_000_000}, 0),  # ifHighSpeed 0 is kept: unknown
        ({IF_SPEED: 1_000_000_000}, 1000),
        ({IF_SPEED: 1_499_999}, 1),
        ({IF_SPEED: 1_500_000}, 2),  # rounded to the nearest Mbit/s, as ifHighSpeed is
        ({IF_SPEED: 500_000}, 1),
        ({IF_SPEED: 499_999}, 0),
        ({IF_SPEED: 0}, 0),
        ({IF_SPEED: 573_000_000}, 573),  # a FortiAP radio's PHY rate
        ({IF_SPEED: 4294967295}, 4295),  # saturated ifSpeed: > 4.29 Gbit/s
        ({IF_HIGH_SPEED: "", IF_SPEED: 100_000_000}, 100),
        ({IF_HIGH_SPEED: UINT32_MAX + 1}, None),
        ({IF_DESCR: "lo"}, None),
    ],
)
def test_speed_in_mbps(cells: dict[str, SnmpValue], speed_mbps: int | None) -> None:
    [row] = read_interfaces(one_row(cells), IF_MIB, {})
    assert row.speed_mbps == speed_mbps


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        ({IF_NAME: "Gi0/0/1", IF_DESCR: "GigabitEthernet0/0/1"}, "Gi0/0/1"),
        ({IF_NAME: "  ", IF_DESCR: "GigabitEthernet0/0/1"}, "GigabitEthernet0/0/1"),
        ({IF_DESCR: " eth0 "}, "eth0"),
        ({IF_NAME: 12, IF_DESCR: "eth0"}, "eth0"),
        ({IF_HC_IN: 1}, "if7"),
        ({IF_NAME: "x" * 300}, "x" * 200),
    ],
)
def test_names(cells: dict[str, SnmpValue], expected: str) -> None:
    [row] = read_interfaces(one_row(cells, ifindex=7), IF_MIB, {})
    assert row.name == expected


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        pytest.param(
            {IF_ALIAS: " uplink to district ", IF_TYPE: 6, IF_ADMIN: 1, IF_OPER: 1},
            ("uplink to district", 6, 1, 1),
            id="all-given",
        ),
        pytest.param(
            {IF_ALIAS: "", IF_TYPE: 0, IF_ADMIN: 2, IF_OPER: 7},
            (None, None, 2, 7),
            id="empty-alias-type-0-lowerLayerDown",
        ),
        pytest.param(
            {IF_ALIAS: "a" * 300, IF_TYPE: 2**31, IF_ADMIN: 0, IF_OPER: 8},
            ("a" * 255, None, None, None),
            id="out-of-range",
        ),
        pytest.param(
            {IF_TYPE: "6", IF_ADMIN: "up", IF_OPER: "1"},
            (None, 6, None, 1),
            id="numbers-as-text",
        ),
        pytest.param({IF_DESCR: "eth0"}, (None, None, None, None), id="none-given"),
    ],
)
def test_alias_type_and_status(
    cells: dict[str, SnmpValue], expected: tuple[str | None, int | None, int | None, int | None]
) -> None:
    [row] = read_interfaces(one_row(cells), IF_MIB, {})
    assert (row.alias, row.if_type, row.admin_status, row.oper_status) == expected


def test_oper_up_is_status_one_only() -> None:
    table: ColumnRows = {IF_OPER: {"1": 1, "2": 2, "3": 5, "4": 9}}
    rows = read_interfaces(table, IF_MIB, {})
    assert [(r.ifindex, r.oper_up) for r in rows] == [(1, True), (2, False), (3, False), (4, None)]


def test_rows_come_from_every_column_sorted_by_ifindex() -> None:
    table: ColumnRows = {
        IF_NAME: {"10": "Te0/1", "2": "Gi0/2"},
        IF_HC_IN: {"2": 5, "30": 6},  # 30: counters but no name
        IF_OPER: {"4152": 1, "2": 1},
        IF_DESCR: {"1.5": "not an ifIndex", "x": "nor this"},
        "1.3.6.1.4.1.99999.1": {"99": 1},  # not an interface column
    }
    rows = read_interfaces(table, IF_MIB, {})
    assert [(r.ifindex, r.name) for r in rows] == [
        (2, "Gi0/2"),
        (10, "Te0/1"),
        (30, "if30"),
        (4152, "if4152"),
    ]
    assert read_interfaces({}, IF_MIB, {}) == []


def test_values_outside_the_wire_types_never_fail_the_readout() -> None:
    # ifIndex is 1..2**31-1 and speeds are Gauge32: a broken agent's answers are dropped.
    table: ColumnRows = {
        IF_DESCR: {"0": "zero", "2147483647": "top", "2147483648": "beyond"},
        IF_SPEED: {"2147483647": 2**63},
    }
    rows = read_interfaces(table, IF_MIB, {})
    assert [(r.ifindex, r.name, r.speed_mbps) for r in rows] == [(2147483647, "top", None)]


ROUTER: ColumnRows = {
    IF_NAME: {"1": "Gi0/0/0", "2": "Gi0/0/1", "3": "2", "4": "Gi0"},
    IF_DESCR: {
        "1": "GigabitEthernet0/0/0",
        "2": "GigabitEthernet0/0/1",
        "3": "Port 2",
        "4": "GigabitEthernet0",
    },
}


@pytest.mark.parametrize(
    ("uplinks", "roles"),
    [
        pytest.param({"internet": 1, "wan": 2}, {1: "internet", 2: "wan"}, id="by-ifindex"),
        pytest.param({"internet": "Gi0/0/1"}, {2: "internet"}, id="by-ifname"),
        pytest.param({"wan": "GigabitEthernet0/0/0"}, {1: "wan"}, id="by-ifdescr"),
        # A name is a name: "2" is ifName "2" (a ProCurve port), not ifIndex 2.
        pytest.param({"internet": "2"}, {3: "internet"}, id="numeric-name"),
        pytest.param({"internet": 2}, {2: "internet"}, id="numeric-index"),
        pytest.param({"internet": 99, "wan": "Gi9/9"}, {}, id="nothing-matches"),
        pytest.param({}, {}, id="no-uplinks"),
    ],
)
def test_uplink_roles(uplinks: dict[UplinkRole, int | str], roles: dict[int, str]) -> None:
    rows = read_interfaces(ROUTER, IF_MIB, uplinks)
    assert {r.ifindex: r.role for r in rows if r.role is not None} == roles
    assert [r.ifindex for r in rows] == [1, 2, 3, 4]


# --- Wi-Fi -----------------------------------------------------------------------------------

COUNT = "1.3.6.1.4.1.99999.1.1"  # a made-up vendor's per-row client count
NAME = "1.3.6.1.4.1.99999.1.2"
STATUS = "1.3.6.1.4.1.99999.1.3"
NAME2 = "1.3.6.1.4.1.99999.1.4"
PRODUCT = "1.3.6.1.4.1.99999.1.5"
TOTAL = "1.3.6.1.4.1.99999.2.0"  # a scalar total
TOTAL2 = "1.3.6.1.4.1.99999.3.0"


def profile(**fields: Any) -> DeviceProfile:
    return DeviceProfile.model_validate(
        {"name": "acme", "match": {"sys_object_id": ["1.3.6.1.4.1.99999"]}, **fields}
    )


SSIDS = {"name": {"oid": NAME}, "clients": {"oid": COUNT}}


@pytest.mark.parametrize(
    ("values", "clients"),
    [
        pytest.param({"1": 4, "2": 14}, [4, 14], id="integers-and-counter32"),
        pytest.param({"1": "4", "2": " 14 "}, [4, 14], id="numbers-as-text"),
        pytest.param({"1": "", "2": 3}, [None, 3], id="empty-string"),
        pytest.param({"1": "n/a", "2": -2}, [None, None], id="not-a-count"),
        pytest.param({"1": UINT32_MAX + 5}, [UINT32_MAX], id="clamped-to-gauge32"),
    ],
)
def test_client_counts_are_read_leniently(
    values: dict[str, SnmpValue], clients: list[int | None]
) -> None:
    table: ColumnRows = {NAME: {k: f"ssid{k}" for k in values}, COUNT: values}

    wifi = read_wifi(table, {}, profile(ssids=SSIDS))

    assert [s.clients for s in wifi.ssids] == clients
    present = [c for c in clients if c is not None]
    assert wifi.clients == (min(sum(present), UINT32_MAX) if present else None)


def test_per_radio_clients_add_up_into_their_ap() -> None:
    # Cisco-style: the AP table is indexed by the AP's MAC, the radio table by MAC + slot.
    ap1, ap2 = "20.22.157.36.236.128", "160.15.55.26.8.128"
    table: ColumnRows = {
        NAME: {ap1: "ap1", ap2: "ap2"},
        COUNT: {f"{ap1}.0": 1, f"{ap1}.1": 0, f"{ap2}.0": 3, f"{ap2}.1": 5, f"{ap2}.2": ""},
    }
    aps = {"key_arcs": 6, "key_format": "mac", "name": {"oid": NAME}, "clients": {"oid": COUNT}}

    wifi = read_wifi(table, {}, profile(aps=aps))

    assert wifi.aps == [
        AccessPoint(key="14:16:9d:24:ec:80", name="ap1", clients=1),
        AccessPoint(key="a0:0f:37:1a:08:80", name="ap2", clients=8),
    ]
    # No status column: every AP listed counts as up; how many exist is unknown.
    assert (wifi.clients, wifi.aps_up, wifi.aps_total) == (9, 2, None)


@pytest.mark.parametrize(
    ("key_arcs", "key_format", "suffix", "key"),
    [
        (6, "mac", "0.11.134.1.2.3.1", "00:0b:86:01:02:03"),
        (None, "mac", "0.11.134.1.2.3", "00:0b:86:01:02:03"),
        (None, "mac", "0.11.134.1.2.3.1", "0.11.134.1.2.3.1"),  # not six arcs: raw
        (None, "mac", "0.11.134.1.2.300", "0.11.134.1.2.300"),  # not octets: raw
        (None, "raw", "0.11.134.1.2.3", "0.11.134.1.2.3"),
        (1, "raw", "2.7", "2"),
        (None, "string", "5.71.85.69.83.84", "GUEST"),
        (None, "string", "4.71.85.69.83.84", "4.71.85.69.83.84"),  # wrong length: raw
        (None, "string", "2.7.8", "2.7.8"),  # not printable: raw
        (None, "string", "0", "0"),  # the empty string: raw, a key is never empty
    ],
)
def test_row_keys(key_arcs: int | None, key_format: str, suffix: str, key: str) -> None:
    aps = {"key_arcs": key_arcs, "key_format": key_format, "clients": {"oid": COUNT}}
    wifi = read_wifi({COUNT: {suffix: 1}}, {}, profile(aps=aps))
    assert [ap.key for ap in wifi.aps] == [key]


def test_group_by_name_sums_an_ssid_broadcast_by_several_radios() -> None:
    # UniFi-style: one VAP per SSID per radio.
    table: ColumnRows = {
        NAME: {"1": "school", "2": "guest", "3": "school", "4": "guest", "5": "iot"},
        COUNT: {"1": 4, "2": "", "3": 14, "4": ""},
    }
    grouped = {**SSIDS, "group_by_name": True}

    assert read_wifi(table, {}, profile(ssids=grouped)).ssids == [
        Ssid(name="school", clients=18),
        Ssid(name="guest", clients=None),
        Ssid(name="iot", clients=None),
    ]
    ungrouped = read_wifi(table, {}, profile(ssids=SSIDS))
    assert [(s.name, s.clients) for s in ungrouped.ssids] == [
        ("school", 4),
        ("guest", None),
        ("school", 14),
        ("guest", None),
        ("iot", None),
    ]
    assert ungrouped.clients == 18


def test_an_ssid_without_a_name_is_named_by_its_key() -> None:
    # Rows come in the order their keys first appear, name column first.
    wifi = read_wifi({COUNT: {"7": 2}, NAME: {"8": ""}}, {}, profile(ssids=SSIDS))
    assert wifi.ssids == [Ssid(name="8", clients=None), Ssid(name="7", clients=2)]


def test_keep_and_drop_filter_rows_before_anything_is_derived() -> None:
    mac1, mac2, mac3 = "2.2.0.102.245.127", "2.2.0.102.245.128", "2.2.0.102.245.129"
    table: ColumnRows = {
        NAME: {mac1: "Gymnasium", mac2: "Core switch", mac3: "Library"},
        COUNT: {mac1: 6, mac2: 40, mac3: 3},
        STATUS: {mac1: 1, mac2: 1, mac3: 0},
        PRODUCT: {mac1: "MR16-HW", mac2: "MS220-8P", mac3: "MR46"},
    }
    aps = {
        "key_format": "mac",
        "name": {"oid": NAME},
        "clients": {"oid": COUNT},
        "up": {"oid": STATUS, "up_values": [1]},
        "labels": {"product": {"oid": PRODUCT}},
        "keep": {"product": "^MR"},
    }

    wifi = read_wifi(table, {}, profile(aps=aps))

    assert [(a.name, a.clients, a.up) for a in wifi.aps] == [
        ("Gymnasium", 6, True),
        ("Library", 3, False),
    ]
    assert (wifi.clients, wifi.aps_up, wifi.aps_total) == (9, 1, 2)
    dropped = read_wifi(table, {}, profile(aps={**aps, "drop": {"name": "^Lib"}}))
    assert [a.name for a in dropped.aps] == ["Gymnasium"]
    assert (dropped.clients, dropped.aps_up, dropped.aps_total) == (6, 1, 1)


def test_a_filter_on_a_missing_label_drops_the_row() -> None:
    aps = {"clients": {"oid": COUNT}, "labels": {"product": {"oid": PRODUCT}}}
    table: ColumnRows = {COUNT: {"1": 2, "2": 3}, PRODUCT: {"2": "MR16"}}
    wifi = read_wifi(table, {}, profile(aps={**aps, "keep": {"product": "^MR"}}))
    assert [a.key for a in wifi.aps] == ["2"]


@pytest.mark.parametrize(
    ("values", "up_values", "up"),
    [
        ({"1": 1, "2": 2}, [1], [True, False]),
        ({"1": "1", "2": "2"}, [1], [True, False]),  # a status typed as text
        ({"1": "Online", "2": "Disconnect", "3": "Connect"}, ["Connect", "Online"], [1, 0, 1]),
        ({"1": 2, "2": 4}, [2, 4], [True, True]),
    ],
)
def test_up_values(values: dict[str, SnmpValue], up_values: list[int | str], up: list[Any]) -> None:
    aps = {"up": {"oid": STATUS, "up_values": up_values}}
    wifi = read_wifi({STATUS: values}, {}, profile(aps=aps))
    assert [a.up for a in wifi.aps] == [bool(u) for u in up]
    assert wifi.aps_up == sum(bool(u) for u in up)
    assert wifi.aps_total == len(values)


def test_the_first_name_column_that_names_a_row_wins() -> None:
    # Aruba-style: wlanAPName where the controller answers its AP table, else the radio table's
    # copy of the name (one per radio, the same on both).
    ap1, ap2 = "0.78.53.194.34.232", "4.189.136.193.157.132"
    table: ColumnRows = {
        NAME: {ap1: "lobby", ap2: ""},
        NAME2: {f"{ap1}.1": "radio-name", f"{ap2}.1": "ar1-ind5ib0c", f"{ap2}.2": "other"},
        COUNT: {f"{ap1}.1": 18, f"{ap1}.2": 3, f"{ap2}.1": 3},
    }
    aps = {
        "key_arcs": 6,
        "key_format": "mac",
        "name": [{"oid": NAME}, {"oid": NAME2}],
        "clients": {"oid": COUNT},
    }

    wifi = read_wifi(table, {}, profile(aps=aps))

    assert [(a.key, a.name, a.clients) for a in wifi.aps] == [
        ("00:4e:35:c2:22:e8", "lobby", 21),
        ("04:bd:88:c1:9d:84", "ar1-ind5ib0c", 3),
    ]


TABLE: ColumnRows = {
    NAME: {"1": "a", "2": "b", "3": "c"},
    COUNT: {"1": 5, "2": 7, "3": 0},
    STATUS: {"1": 1, "2": 1, "3": 2},
}
AP_ROWS = {
    "name": {"oid": NAME},
    "clients": {"oid": COUNT},
    "up": {"oid": STATUS, "up_values": [1]},
}


@pytest.mark.parametrize(
    ("fields", "scalars", "expected"),
    [
        pytest.param(
            {"totals": {"clients": {"get": TOTAL}, "aps_up": {"get": TOTAL2}}, "aps": AP_ROWS},
            {TOTAL: 40, TOTAL2: 3},
            (40, 3, 3),
            id="get-beats-derived",
        ),
        pytest.param(
            {"totals": {"clients": {"get": TOTAL}, "aps_up": {"get": TOTAL2}}, "aps": AP_ROWS},
            {TOTAL: None, TOTAL2: ""},
            (12, 2, 3),
            id="absent-scalars-fall-back-to-rows",
        ),
        pytest.param(
            {"totals": {"clients": {"get": TOTAL}}, "aps": AP_ROWS},
            {TOTAL: UINT32_MAX + 1},
            (12, 2, 3),
            id="scalar-out-of-range",
        ),
        pytest.param(
            {"totals": {"clients": {"sum": COUNT}, "aps_total": {"sum": STATUS}}},
            {},
            (12, None, 4),
            id="sum-of-a-column",
        ),
        pytest.param(
            {"totals": {"clients": {"sum": "1.3.6.1.4.1.99999.9"}}, "aps": AP_ROWS},
            {},
            (12, 2, 3),
            id="sum-of-an-absent-column-falls-back",
        ),
        pytest.param({"aps": AP_ROWS}, {}, (12, 2, 3), id="derived-from-aps"),
        pytest.param(
            {"aps": AP_ROWS, "ssids": {"name": {"oid": NAME}, "clients": {"oid": PRODUCT}}},
            {},
            (12, 2, 3),
            id="ssids-without-counts-fall-back-to-aps",
        ),
        pytest.param(
            {"aps": {"name": {"oid": NAME}, "clients": {"oid": COUNT}}},
            {},
            (12, 3, None),
            id="no-status-column",
        ),
        pytest.param({}, {}, (None, None, None), id="no-wifi-at-all"),
    ],
)
def test_totals_from_get_sum_or_rows(
    fields: dict[str, Any],
    scalars: dict[str, SnmpValue | None],
    expected: tuple[int | None, int | None, int | None],
) -> None:
    wifi = read_wifi(TABLE, scalars, profile(**fields))
    assert (wifi.clients, wifi.aps_up, wifi.aps_total) == expected


def test_clients_come_from_ssids_before_aps() -> None:
    table: ColumnRows = {**TABLE, NAME2: {"1": "school"}, PRODUCT: {"1": 30}}
    ssids = {"name": {"oid": NAME2}, "clients": {"oid": PRODUCT}}
    wifi = read_wifi(table, {}, profile(aps=AP_ROWS, ssids=ssids))
    assert wifi.clients == 30
    assert sum(a.clients or 0 for a in wifi.aps) == 12


# --- shipped profiles on tables shaped like their devices' ------------------------------------

UNIFI_ESSID = "1.3.6.1.4.1.41112.1.6.1.2.1.6"
UNIFI_STATIONS = "1.3.6.1.4.1.41112.1.6.1.2.1.8"


def test_unifi_counts_no_mesh_uplink_stations_as_clients() -> None:
    # A mesh parent: its vwire VAPs carry the mesh child APs, which are not clients.
    table: ColumnRows = {
        UNIFI_ESSID: {"1": "school", "2": "vwire-d4aebb3212a82cd8", "3": "school", "4": "vwire-x"},
        UNIFI_STATIONS: {"1": 4, "2": 2, "3": 14, "4": 1},
    }

    wifi = read_wifi(table, {}, PROFILES.get("unifi_ap"))

    assert wifi.ssids == [Ssid(name="school", clients=18)]
    assert wifi.clients == 18


def test_fortiap_groups_vaps_by_ssid() -> None:
    ssid, count = "1.3.6.1.4.1.12356.120.7.1.1.4", "1.3.6.1.4.1.12356.120.7.1.1.45"
    table: ColumnRows = {
        ssid: {"0.1": "GUEST", "0.2": "IOT", "1.0": "CORP", "1.1": "GUEST", "1.2": "IOT"},
        count: {"0.1": 3, "0.2": 0, "1.0": 16, "1.1": 29, "1.2": 0},
    }

    wifi = read_wifi(table, {}, PROFILES.get("fortiap"))

    assert [(s.name, s.clients) for s in wifi.ssids] == [("GUEST", 32), ("IOT", 0), ("CORP", 16)]
    assert wifi.clients == 48


def test_aruba_essid_rows_are_keyed_by_their_string_index() -> None:
    essid, stations = "1.3.6.1.4.1.14823.2.2.1.5.2.1.8.1.1", "1.3.6.1.4.1.14823.2.2.1.5.2.1.8.1.2"
    guest = "5.71.85.69.83.84"
    table: ColumnRows = {essid: {guest: "GUEST"}, stations: {guest: 12}}
    scalars: dict[str, SnmpValue | None] = {
        "1.3.6.1.4.1.14823.2.2.1.1.3.2.0": 2654,
        "1.3.6.1.4.1.14823.2.2.1.1.3.1.0": 1386,
    }

    wifi = read_wifi(table, scalars, PROFILES.get("aruba_controller"))

    assert wifi.ssids == [Ssid(name="GUEST", clients=12)]
    # The controller's own totals, not the rows' sums.
    assert (wifi.clients, wifi.aps_up, wifi.aps_total) == (2654, 1386, None)
