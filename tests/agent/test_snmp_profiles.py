"""Device profiles: the strict YAML loader, a district's own directory, and the choice of a profile.

The loader's errors are read by a district's network engineer, so their text is checked exactly:
the file, the key's path and what is wrong with it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import ConfigError
from agent.probes.snmp import SnmpProbe
from agent.settings import DeviceSettings, SnmpSettings
from agent.snmp.profile import (
    BASE_PROFILE,
    SHIPPED_DIR,
    ProfileSet,
    load_profile,
    load_profiles,
)
from agent.snmp.round import snmp_round
from agent.wire import SnmpPoll
from collector.localrun import LOOPBACK
from tests.fixtures.snmpsim import SnmpSim, free_udp_port

SHIPPED = sorted(SHIPPED_DIR.glob("*.yaml"))
SHIPPED_NAMES = [
    "aerohive",
    "aruba_controller",
    "aruba_instant",
    "cisco_ios",
    "cisco_wlc",
    "fortiap",
    "fortigate",
    "hp_procurve",
    "if_mib",
    "juniper",
    "meraki_cloud",
    "mikrotik",
    "ruckus_smartzone",
    "ruckus_unleashed",
    "ruckus_zonedirector",
    "ubiquiti_edgeos",
    "unifi_ap",
]
IF_NAME = "1.3.6.1.2.1.31.1.1.1.1"
IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
IF_HC_IN_OCTETS = "1.3.6.1.2.1.31.1.1.1.6"
ZD_MODEL = "1.3.6.1.4.1.25053.1.2.1.1.1.1.9.0"  # ruckusZDSystemModel.0
UNLEASHED_NUM_AP = "1.3.6.1.4.1.25053.1.15.1.1.1.15.1.0"  # ruckusUnleashedSystemStatsNumAP.0
RUCKUS_5_15 = "1.3.6.1.4.1.25053.3.1.5.15"  # ZD1200 and Unleashed masters alike
C9800_DESCR = (
    "Cisco IOS Software [Dublin], C9800 Software (C9800_IOSXE-K9), Version 17.12.1, "
    "RELEASE SOFTWARE (fc5)"
)


@pytest.fixture(scope="module")
def shipped() -> ProfileSet:
    return load_profiles([])


def write(directory: Path, stem: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stem}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# --- the shipped profiles ------------------------------------------------------------------


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_profile_loads(shipped: ProfileSet, path: Path) -> None:
    profile = load_profile(path)

    assert profile.name == path.stem
    assert (profile.match is None) == (profile.name == BASE_PROFILE)
    assert shipped.get(profile.name) == profile
    # Every profile reads the base IF-MIB columns (none of the shipped ones replaces them).
    columns = shipped.interfaces(profile)
    assert columns.name == [IF_NAME, IF_DESCR]
    assert columns.octets_in_64 == IF_HC_IN_OCTETS
    assert profile.description


def test_the_shipped_set_is_the_seventeen_profiles(shipped: ProfileSet) -> None:
    assert sorted(shipped.profiles) == SHIPPED_NAMES
    assert [p.stem for p in SHIPPED] == SHIPPED_NAMES
    assert shipped.base.name == BASE_PROFILE
    assert shipped.base.interfaces is not None


def test_an_unknown_name_lists_the_known_ones(shipped: ProfileSet) -> None:
    with pytest.raises(ConfigError) as caught:
        shipped.get("cisco_nexus")
    assert str(caught.value) == (
        f"no device profile named 'cisco_nexus' (known: {', '.join(SHIPPED_NAMES)})"
    )


# --- strictness: the file, the key's path, and what is wrong ------------------------------

_MATCH = "match: {sys_object_id: [1.3.6.1.4.1.99999]}\n"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param(
            f"name: bad\n{_MATCH}colour: blue\n",
            "colour: Extra inputs are not permitted",
            id="unknown-top-level-key",
        ),
        pytest.param(
            f"name: bad\n{_MATCH}aps:\n  colums: {{oid: 1.3.6.1.4.1.99999.1}}\n",
            "aps.colums: Extra inputs are not permitted",
            id="unknown-key-in-a-table",
        ),
        pytest.param(
            f"name: bad\n{_MATCH}interfaces:\n  octets_in: 1.3.6.1.2.1.2.2.1.10\n",
            "interfaces.octets_in: Extra inputs are not permitted",
            id="unknown-interface-column",
        ),
        pytest.param(
            f"name: bad\n{_MATCH}aps:\n  clients: {{oid: 1.3.6.1.4.1.99999.x}}\n",
            "aps.clients.oid: not a numeric OID: '1.3.6.1.4.1.99999.x'",
            id="malformed-column-oid",
        ),
        pytest.param(
            "name: bad\nmatch: {sys_object_id: [1.3.6.1.4.1.9, 1.3.6..1]}\n",
            "match.sys_object_id.1: not a numeric OID: '1.3.6..1'",
            id="malformed-oid-in-a-list",
        ),
        pytest.param(
            f"name: bad\n{_MATCH}totals:\n  clients: {{get: 1.3}}\n",
            "totals.clients.get: not a numeric OID: 1.3 (YAML read a number: quote the OID)",
            id="oid-read-as-a-number",
        ),
        pytest.param(
            f"name: bad\n{_MATCH}totals:\n  clients: {{get: '1'}}\n",
            "totals.clients.get: not a numeric OID: '1'",
            id="one-arc-oid",
        ),
        pytest.param(
            "name: bad\nmatch: {sys_descr: ['(unclosed']}\n",
            "match.sys_descr.0: not a regular expression: '(unclosed' "
            "(missing ), unterminated subpattern at position 0)",
            id="bad-regex",
        ),
        pytest.param(
            f"name: bad\n{_MATCH}ssids:\n  name: {{oid: 1.3.6.1.4.1.99999.1}}\n"
            "  drop: {name: '[a-'}\n",
            "ssids.drop.name: not a regular expression: '[a-' "
            "(unterminated character set at position 0)",
            id="bad-regex-in-a-filter",
        ),
        pytest.param(
            f"name: bad\n{_MATCH}aps:\n  keep: {{product: '^MR'}}\n",
            "aps: keep: 'product' is not name nor one of labels",
            id="filter-on-an-unknown-label",
        ),
        pytest.param(
            f"name: bad\n{_MATCH}aps:\n  labels: {{Product-Code: {{oid: 1.3.6.1.4.1.99999.9}}}}\n",
            "aps.labels.Product-Code.[key]: String should match pattern '^[a-z][a-z0-9_]{0,63}$'",
            id="bad-label-name",
        ),
        pytest.param(
            f"name: bad\n{_MATCH}aps:\n  labels: {{clients: {{oid: 1.3.6.1.4.1.99999.9}}}}\n",
            "aps: labels: clients is a column of its own, not a label",
            id="label-named-like-a-column",
        ),
        pytest.param(
            f"name: bad\n{_MATCH}aps:\n  up: {{oid: 1.3.6.1.4.1.99999.3}}\n",
            "aps: up needs up_values",
            id="up-without-up-values",
        ),
        pytest.param(
            f"name: bad\n{_MATCH}totals:\n  aps_up: {{get: 1.3.6.1.4.1.99999.1.0, "
            "sum: 1.3.6.1.4.1.99999.2}\n",
            "totals.aps_up: give exactly one of get and sum",
            id="total-with-get-and-sum",
        ),
        pytest.param(
            f"name: bad\n{_MATCH}priority: 101\n",
            "priority: Input should be less than or equal to 100",
            id="priority-out-of-range",
        ),
        pytest.param(
            "name: bad\nmatch: {probe: 1.3.6.1.4.1.99999.1.0}\n",
            "match: match needs sys_object_id or sys_descr",
            id="match-on-nothing",
        ),
        pytest.param(
            f"name: bad\n{_MATCH}aps:\n  colums: {{}}\n  key_arcs: 0\n",
            "aps.key_arcs: Input should be greater than or equal to 1; "
            "aps.colums: Extra inputs are not permitted",
            id="every-problem-at-once",
        ),
    ],
)
def test_a_bad_key_names_the_file_and_the_key_path(tmp_path: Path, text: str, problem: str) -> None:
    path = write(tmp_path, "bad", text)

    with pytest.raises(ConfigError) as caught:
        load_profile(path)

    assert str(caught.value) == f"{path}: {problem}"


@pytest.mark.parametrize(
    ("stem", "text", "problem"),
    [
        pytest.param(
            "ruckus",
            f"name: ruckus_sz\n{_MATCH}",
            "name: 'ruckus_sz' must be the file's name (ruckus)",
            id="name-is-not-the-file-name",
        ),
        pytest.param(
            "acme", "name: acme\n", "match: every profile but if_mib needs one", id="no-match"
        ),
        pytest.param(
            "Acme AP",
            f"name: Acme AP\n{_MATCH}",
            "name: String should match pattern '^[a-z][a-z0-9_]{0,63}$'",
            id="name-not-an-identifier",
        ),
        pytest.param(
            "acme",
            "- name: acme\n- name: other\n",
            "a profile is a mapping of keys, not list",
            id="a-list-not-a-mapping",
        ),
        pytest.param(
            "acme", "just some words\n", "a profile is a mapping of keys, not str", id="a-string"
        ),
        pytest.param("acme", "# nothing yet\n", "the file is empty", id="empty-file"),
    ],
)
def test_a_bad_document_names_the_file(tmp_path: Path, stem: str, text: str, problem: str) -> None:
    path = write(tmp_path, stem, text)

    with pytest.raises(ConfigError) as caught:
        load_profile(path)

    assert str(caught.value) == f"{path}: {problem}"


def test_invalid_yaml_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "acme", "name: acme\nmatch: {sys_descr: [Acme\n")

    with pytest.raises(ConfigError) as caught:
        load_profile(path)

    message = str(caught.value)
    assert message.startswith(f"{path}: not valid YAML: while parsing a flow sequence")
    assert "line 2, column" in message


def test_a_file_that_is_not_utf8_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "acme.yaml"
    path.write_bytes(b"name: acme\ndescription: caf\xe9\n")

    with pytest.raises(ConfigError) as caught:
        load_profile(path)

    assert str(caught.value).startswith(f"{path}: cannot read: 'utf-8' codec can't decode")


# --- a district's own directory ------------------------------------------------------------

ACME = """\
name: acme_ap
description: ACME school access point
match:
  sys_object_id: [1.3.6.1.4.1.99999.1]
totals:
  clients: {get: 1.3.6.1.4.1.99999.2.1.0}
"""


def test_a_district_directory_adds_a_profile_and_replaces_a_shipped_one(tmp_path: Path) -> None:
    district = tmp_path / "profiles"
    write(district, "acme_ap", ACME)
    write(
        district,
        "cisco_ios",
        "name: cisco_ios\ndescription: our routers\nmatch:\n  sys_descr: ['^Cisco IOS']\n",
    )
    # Not a profile: only *.yaml files are read.
    (district / "notes.txt").write_text("name: [broken\n")

    profiles = load_profiles([district, tmp_path / "missing"])

    assert sorted(profiles.profiles) == sorted([*SHIPPED_NAMES, "acme_ap"])
    acme = profiles.get("acme_ap")
    assert acme.totals.clients is not None
    assert acme.totals.clients.get == "1.3.6.1.4.1.99999.2.1.0"
    assert profiles.choose(sys_object_id="1.3.6.1.4.1.99999.1.7", sys_descr="x") == acme
    ours = profiles.get("cisco_ios")
    assert ours.description == "our routers"
    assert ours.match is not None and ours.match.sys_object_id == []
    # The replacement matches on sysDescr alone now, so any sysObjectID goes.
    assert profiles.choose(sys_object_id="1.3.6.1.4.1.9.12.3", sys_descr="Cisco IOS XE") == ours
    # The shipped set is untouched by the district's.
    assert load_profiles([]).get("cisco_ios").description.startswith("Cisco IOS / IOS-XE")


def test_a_later_directory_wins(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    write(first, "acme_ap", ACME)
    write(second, "acme_ap", ACME.replace("ACME school access point", "second"))

    assert load_profiles([first, second]).get("acme_ap").description == "second"
    assert load_profiles([second, first]).get("acme_ap").description == "ACME school access point"


def test_a_district_profile_may_replace_interface_columns(tmp_path: Path) -> None:
    write(
        tmp_path,
        "acme_ap",
        ACME + "interfaces:\n  name: [1.3.6.1.2.1.2.2.1.2]\n  speed_mbps: 1.3.6.1.4.1.99999.3.1\n",
    )
    profiles = load_profiles([tmp_path])

    columns = profiles.interfaces(profiles.get("acme_ap"))

    assert columns.name == [IF_DESCR]
    assert columns.speed_mbps == "1.3.6.1.4.1.99999.3.1"
    # The rest is inherited from if_mib.
    assert columns.octets_in_64 == IF_HC_IN_OCTETS
    assert columns.oper_status == "1.3.6.1.2.1.2.2.1.8"


def test_a_bad_district_file_fails_the_whole_set(tmp_path: Path) -> None:
    write(tmp_path, "acme_ap", ACME)
    bad = write(tmp_path, "broken", f"name: broken\n{_MATCH}aps: {{colums: 1}}\n")

    with pytest.raises(ConfigError) as caught:
        load_profiles([tmp_path])

    assert str(caught.value) == f"{bad}: aps.colums: Extra inputs are not permitted"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("name: if_mib\n", "the base profile 'if_mib' declares no interfaces"),
        (
            "name: if_mib\ninterfaces: {name: [1.3.6.1.2.1.2.2.1.2]}\n",
            None,
        ),
    ],
    ids=["without-interfaces", "with-interfaces"],
)
def test_a_district_may_replace_the_base_only_with_interfaces(
    tmp_path: Path, text: str, problem: str | None
) -> None:
    write(tmp_path, "if_mib", text)

    if problem is None:
        base = load_profiles([tmp_path]).base
        assert base.interfaces is not None and base.interfaces.name == [IF_DESCR]
        return
    with pytest.raises(ConfigError) as caught:
        load_profiles([tmp_path])
    assert str(caught.value) == problem


async def test_a_round_with_broken_profiles_gives_every_device_that_error(tmp_path: Path) -> None:
    bad = write(tmp_path, "broken", "name: broken\nmatch: {sys_descr: ['(']}\n")
    devices = [
        DeviceSettings(name=name, address=LOOPBACK, port=free_udp_port(), timeout_s=0.2)
        for name in ("core", "wlc")
    ]

    polls = await snmp_round(devices, [], SnmpSettings(profile_dirs=[tmp_path]))

    assert [p.device for p in polls] == ["core", "wlc"]
    for poll in polls:
        assert poll.error == (
            f"device profiles: {bad}: match.sys_descr.0: not a regular expression: '(' "
            "(missing ), unterminated subpattern at position 0)"
        )
        assert poll.profile is None


# --- the choice of a profile ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("sys_object_id", "sys_descr", "expected"),
    [
        # Prefixes compare whole arcs: ...9.1 is not a prefix of ...9.10 nor of ...9.12.
        ("1.3.6.1.4.1.9.1.1116", "Cisco IOS Software, ASR1000 Software", "cisco_ios"),
        ("1.3.6.1.4.1.9.1", "Cisco IOS Software", "cisco_ios"),
        ("1.3.6.1.4.1.9.10.1116", "Cisco IOS Software", BASE_PROFILE),
        ("1.3.6.1.4.1.9.12.3.1.3.1", "Cisco IOS Software, Nexus", BASE_PROFILE),
        ("1.3.6.1.4.1.9", "Cisco IOS Software", BASE_PROFILE),
        # Both rules of a match must hold: a Cisco sysObjectID alone is not IOS.
        ("1.3.6.1.4.1.9.1.2171", "Cisco Adaptive Security Appliance", BASE_PROFILE),
        (".1.3.6.1.4.1.9.1.1116", "Cisco IOS Software", "cisco_ios"),
        ("1.3.6.1.4.1.14823.1.1.41", "ArubaOS (MODEL: Aruba7030-US)", "aruba_controller"),
        ("1.3.6.1.4.1.14823.1.1.9999", "ArubaOS Version 6.4.4.4", "aruba_controller"),
        ("1.3.6.1.4.1.14823.1.10.1", "ArubaOS", BASE_PROFILE),
        ("1.3.6.1.4.1.6486.800.1.1.2.2.2.3", "AOS-W", "aruba_controller"),
        ("1.3.6.1.4.1.14823.1.2.66", "ArubaOS (MODEL: 515), Version 8.10", "aruba_instant"),
        ("1.3.6.1.4.1.14823.1.2.66", "Linux", BASE_PROFILE),
        ("1.3.6.1.4.1.9.6.1.37.240.1", "Cisco Business Wireless", "cisco_wlc"),
        ("1.3.6.1.4.1.14179.1.1.4.3", "Cisco Controller", "cisco_wlc"),
        ("1.3.6.1.4.1.25053.3.1.11.1", "SmartZone", "ruckus_smartzone"),
        ("1.3.6.1.4.1.25053.3.1.10.1", "SCG", "ruckus_smartzone"),
        ("1.3.6.1.4.1.29671.1", "Cisco Meraki Cloud Controller", "meraki_cloud"),
        ("1.3.6.1.4.1.29671.2.1", "Meraki MR46 Cloud Managed AP", BASE_PROFILE),
        ("1.3.6.1.4.1.14988.1", "router", "mikrotik"),
        ("1.3.6.1.4.1.12356.101.1.60", "", "fortigate"),
        ("1.3.6.1.4.1.12356.15.1", "", "fortigate"),
        ("1.3.6.1.4.1.12356.120.10.83112", "<private>", "fortiap"),
        ("1.3.6.1.4.1.26928.1", "AP650X, HiveOS 10.0r7a build-232353", "aerohive"),
        ("1.3.6.1.4.1.26928.1", "Linux", BASE_PROFILE),
        ("1.3.6.1.4.1.11.2.3.7.8.5.2", "HP Stack, revision KA.15.03.3004", "hp_procurve"),
        ("1.3.6.1.4.1.11.2.3.7.11.87", "ProCurve J9147A Switch 2910al-48G", "hp_procurve"),
        ("1.3.6.1.4.1.41112.1.5", "EdgeOS v1.8.0", "ubiquiti_edgeos"),
        ("1.3.6.1.4.1.2636.1.1.1.2.29", "Juniper Networks, Inc. ex4200-48t", "juniper"),
        # UniFi's sysObjectID is net-snmp's generic one: sysDescr decides.
        ("1.3.6.1.4.1.8072.3.2.10", "UAP-nanoHD 5.43.36.12724", "unifi_ap"),
        ("1.3.6.1.4.1.8072.3.2.10", "U6-Pro 6.5.28", "unifi_ap"),
        ("1.3.6.1.4.1.8072.3.2.10", "Linux fileserver 5.10.0", BASE_PROFILE),
        (None, "UAP-AC-Lite 4.3.28", "unifi_ap"),
        (None, "Cisco Controller", "cisco_wlc"),
        (None, None, BASE_PROFILE),
        ("1.3.6.1.4.1.99999.1", "Some Printer", BASE_PROFILE),
    ],
)
def test_choose_matches_sys_object_id_by_whole_arcs(
    shipped: ProfileSet, sys_object_id: str | None, sys_descr: str | None, expected: str
) -> None:
    chosen = shipped.choose(sys_object_id=sys_object_id, sys_descr=sys_descr)
    assert chosen.name == expected


def test_priority_puts_a_c9800_on_the_wlc_profile(shipped: ProfileSet) -> None:
    c9800 = "1.3.6.1.4.1.9.1.2530"  # ciscoC9800-40: also under Cisco's 9.1 product arc

    candidates = shipped.candidates(sys_object_id=c9800, sys_descr=C9800_DESCR)

    assert [p.name for p in candidates] == ["cisco_wlc", "cisco_ios"]
    assert shipped.choose(sys_object_id=c9800, sys_descr=C9800_DESCR).name == "cisco_wlc"
    # The same router without "C9800" in its sysDescr stays a router.
    descr = C9800_DESCR.replace("C9800", "ASR1000")
    assert shipped.choose(sys_object_id=c9800, sys_descr=descr).name == "cisco_ios"


def test_the_longest_prefix_wins_then_priority_overrides_it(tmp_path: Path) -> None:
    write(
        tmp_path,
        "asr1002",
        "name: asr1002\nmatch: {sys_object_id: [1.3.6.1.4.1.9.1.1116]}\n",
    )
    profiles = load_profiles([tmp_path])
    asr = "1.3.6.1.4.1.9.1.1116"
    descr = "Cisco IOS Software, ASR1000 Software"

    assert [p.name for p in profiles.candidates(sys_object_id=asr, sys_descr=descr)] == [
        "asr1002",
        "cisco_ios",
    ]
    write(
        tmp_path,
        "asr1002",
        "name: asr1002\npriority: -1\nmatch: {sys_object_id: [1.3.6.1.4.1.9.1.1116]}\n",
    )
    profiles = load_profiles([tmp_path])
    assert profiles.choose(sys_object_id=asr, sys_descr=descr).name == "cisco_ios"


def test_not_sys_descr_excludes_a_device(tmp_path: Path) -> None:
    write(
        tmp_path,
        "acme_switch",
        "name: acme_switch\nmatch:\n  sys_object_id: [1.3.6.1.4.1.99999]\n"
        "  not_sys_descr: ['(?i)wireless']\n",
    )
    profiles = load_profiles([tmp_path])

    switch = profiles.choose(sys_object_id="1.3.6.1.4.1.99999.4", sys_descr="ACME 24-port")
    wlc = profiles.choose(sys_object_id="1.3.6.1.4.1.99999.4", sys_descr="ACME Wireless 5")
    assert (switch.name, wlc.name) == ("acme_switch", BASE_PROFILE)


@pytest.mark.parametrize(
    ("probed", "expected"),
    [
        ({ZD_MODEL: "ZD1200", UNLEASHED_NUM_AP: None}, "ruckus_zonedirector"),
        ({ZD_MODEL: "R750", UNLEASHED_NUM_AP: 12}, "ruckus_unleashed"),
        # Unleashed's probe takes any answer, even 0 APs.
        ({ZD_MODEL: None, UNLEASHED_NUM_AP: 0}, "ruckus_unleashed"),
        # A model that is not a ZD, and no Unleashed MIB: neither; IF-MIB only.
        ({ZD_MODEL: "R750", UNLEASHED_NUM_AP: None}, BASE_PROFILE),
        ({ZD_MODEL: "zd1200", UNLEASHED_NUM_AP: None}, BASE_PROFILE),
        ({}, BASE_PROFILE),
        (None, BASE_PROFILE),
    ],
)
def test_a_probe_tells_a_zonedirector_from_an_unleashed_master(
    shipped: ProfileSet, probed: dict[str, str | int | None] | None, expected: str
) -> None:
    candidates = shipped.candidates(sys_object_id=RUCKUS_5_15, sys_descr="Ruckus Wireless")
    probes = sorted(p.match.probe for p in candidates if p.match and p.match.probe)
    assert probes == sorted([ZD_MODEL, UNLEASHED_NUM_AP])

    chosen = shipped.choose(sys_object_id=RUCKUS_5_15, sys_descr="Ruckus Wireless", probed=probed)

    assert chosen.name == expected


def test_every_shipped_match_is_reachable(shipped: ProfileSet) -> None:
    """Each shipped profile (but the base) wins for a device that looks like its own match."""
    for profile in shipped.profiles.values():
        if profile.match is None:
            continue
        match = profile.match
        object_id = match.sys_object_id[0] + ".1" if match.sys_object_id else None
        descr = _an_example_of(match.sys_descr[0]) if match.sys_descr else ""
        probed = {match.probe: "ZD1200"} if match.probe else None
        chosen = shipped.choose(sys_object_id=object_id, sys_descr=descr, probed=probed)
        assert chosen.name == profile.name, (profile.name, object_id, descr)


def _an_example_of(regex: str) -> str:
    """A sysDescr each shipped regex finds (they are literal words or ^(a|b) alternatives)."""
    if regex.startswith("^(") and regex.endswith(")"):
        return regex[2:-1].split("|")[0] + "-Pro 6.5"
    return regex.removeprefix("^") + " 1.0"


# --- a forced profile --------------------------------------------------------------------


async def test_a_forced_profile_wins_over_matching(snmpsim: SnmpSim) -> None:
    # The CBW controller read as a plain IF-MIB device, and the router read as a MikroTik.
    devices = [
        snmpsim.device("ciscowlc_cbw240ac", profile=BASE_PROFILE),
        snmpsim.device("iosxe", profile="mikrotik"),
    ]

    cbw, iosxe = await snmp_round(devices, [])

    assert (cbw.error, cbw.profile, cbw.clients, cbw.aps) == (None, BASE_PROFILE, None, [])
    assert len(cbw.interfaces) == 2
    # The MikroTik columns are absent on a Cisco router: no figures, and no error.
    assert (iosxe.error, iosxe.profile, iosxe.clients, iosxe.ssids) == (None, "mikrotik", None, [])
    assert len(iosxe.interfaces) == 30


async def test_a_forced_profile_that_does_not_exist_is_a_clear_error(snmpsim: SnmpSim) -> None:
    devices = [
        snmpsim.device("iosxe", name="core", profile="cisco_nexus"),
        snmpsim.device("ciscowlc_cbw240ac", name="wlc"),
    ]

    core, wlc = await snmp_round(devices, [])

    assert core.error == "no device profile named 'cisco_nexus'"
    assert (core.device, core.address) == ("core", f"{LOOPBACK}:{snmpsim.port}")
    assert (core.profile, core.interfaces) == (None, [])
    # The other device of the round is polled as usual.
    assert (wlc.error, wlc.profile, wlc.clients, wlc.aps_up) == (None, "cisco_wlc", 23, 4)


async def test_a_probe_poll_with_a_missing_forced_profile_is_an_error_not_a_raise(
    snmpsim: SnmpSim,
) -> None:
    device = snmpsim.device("iosxe", name="core", profile="cisco_nexus")

    [poll] = await SnmpProbe(device).run()

    assert isinstance(poll, SnmpPoll)
    assert poll.error is not None
    assert poll.error.startswith(
        f"core ({LOOPBACK}:{snmpsim.port}): no device profile named 'cisco_nexus' (known: "
    )
    assert poll.interfaces == []


async def test_a_district_profile_is_used_by_a_real_poll(snmpsim: SnmpSim, tmp_path: Path) -> None:
    # A district that wants the IOS-XE router's long interface names (ifDescr), matched on its
    # exact sysObjectID (longer than cisco_ios's prefix).
    write(
        tmp_path,
        "asr1002",
        "name: asr1002\nmatch: {sys_object_id: [1.3.6.1.4.1.9.1.1116]}\n"
        "interfaces: {name: [1.3.6.1.2.1.2.2.1.2]}\n",
    )
    device = snmpsim.device("iosxe", uplinks={"internet": 2})

    [poll] = await snmp_round([device], [], SnmpSettings(profile_dirs=[tmp_path]))

    assert (poll.error, poll.profile) == (None, "asr1002")
    by_index = {i.ifindex: i for i in poll.interfaces}
    assert by_index[2].name == "GigabitEthernet0/0/1"
    assert by_index[2].role == "internet"
    assert by_index[2].octets_in == 19432396613


def test_profile_models_are_frozen(shipped: ProfileSet) -> None:
    profile = shipped.get("cisco_wlc")
    with pytest.raises(ValueError, match="frozen"):
        profile.priority = 0  # type: ignore[misc]
