"""Device profiles: what to read from a kind of device, as declarative YAML (snmp_exporter's idea).

A profile maps a vendor's numeric OIDs onto ReadyNet's own fields, so nothing downstream ever
sees a vendor name: interface columns (`octets_in`, `oper_status`, ...), totals (`clients`,
`aps_up`, `aps_total`) and per-AP and per-SSID rows. Which profile a device gets is decided by
its sysObjectID and sysDescr (`match`), or forced in the device's settings. Every profile
inherits the IF-MIB interface columns of `if_mib.yaml` and may replace some of them.

Profiles ship in `agent/snmp/profiles/`; a district adds its own in a directory of its choice
(`snmp.profile_dirs`), one YAML file per profile, and a file named like a shipped profile
replaces it. Loading is strict: an unknown key, a malformed OID or a bad regex fails with the
file and the key's path, e.g. ``aruba.yaml: aps.clients.oid: not a numeric OID: '1.3.6.x'``.

Example:
    >>> profiles = load_profiles([])
    >>> profiles.choose(sys_object_id="1.3.6.1.4.1.14823.1.1.41", sys_descr="ArubaOS").name
    'aruba_controller'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from agent.errors import ConfigError

SHIPPED_DIR = Path(__file__).resolve().parent / "profiles"
BASE_PROFILE = "if_mib"
# Anchored: pydantic searches a pattern, so "Bad Name" would pass an unanchored one.
_NAME = r"^[a-z][a-z0-9_]{0,63}$"
Name = Annotated[str, StringConstraints(pattern=_NAME)]


def _numeric_oid(value: str) -> str:
    arcs = value.strip().lstrip(".").split(".")
    if len(arcs) < 2 or not all(arc.isdigit() for arc in arcs):
        raise ValueError(f"not a numeric OID: {value!r}")
    return ".".join(str(int(arc)) for arc in arcs)


def _oid_text(value: object) -> object:
    # YAML reads an unquoted "1.3" as a float (and "12" as an int): say so, not "not a string".
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"not a numeric OID: {value!r} (YAML read a number: quote the OID)")
    return value


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {value!r} ({exc})") from None
    return value


Oid = Annotated[str, BeforeValidator(_oid_text), AfterValidator(_numeric_oid)]
Regex = Annotated[str, AfterValidator(_regex)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Match(_Strict):
    """A device matches when every list given has one hit: a sysObjectID prefix (whole arcs),
    a sysDescr regex (searched); and no `not_sys_descr` regex hits. `probe` asks the device for
    one more OID whose value must match `probe_value` (e.g. a model that starts with "ZD")."""

    sys_object_id: list[Oid] = []
    sys_descr: list[Regex] = []
    not_sys_descr: list[Regex] = []
    probe: Oid | None = None
    probe_value: Regex = ""

    @model_validator(mode="after")
    def _says_something(self) -> Match:
        if not self.sys_object_id and not self.sys_descr:
            raise ValueError("match needs sys_object_id or sys_descr")
        return self


class Source(_Strict):
    """Where a total comes from: one GET (`get`, a full instance OID such as `...3.2.0`) or the
    sum of a table column (`sum`)."""

    get: Oid | None = None
    sum: Oid | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Source:
        if (self.get is None) == (self.sum is None):
            raise ValueError("give exactly one of get and sum")
        return self


class Column(_Strict):
    """A table column; `up_values` turns a status column into up (listed) or not up."""

    oid: Oid
    up_values: list[int | str] = []


def _one_or_more(value: object) -> object:
    return [value] if isinstance(value, Mapping) else value


# One column (a mapping) or a list of them, tried in order.
Columns = Annotated[list[Column], BeforeValidator(_one_or_more)]


KeyFormat = Literal["raw", "mac", "string"]


class Table(_Strict):
    """Per-AP or per-SSID rows. Each column's index suffix, cut to its first `key_arcs` arcs,
    is the row key, so a per-radio column (AP MAC + slot) adds up into its AP's row. `name` may
    list several columns: the first that gives a row a non-empty name wins (an AP table's name,
    else its radios' copy of it). `group_by_name` merges rows whose name is equal (one SSID
    broadcast by several radios); `keep` and `drop` keep or drop rows whose label matches a
    regex (e.g. only Meraki products "MR...")."""

    key_arcs: int | None = Field(default=None, ge=1, le=128)
    key_format: KeyFormat = "raw"
    name: Columns = []
    clients: Column | None = None
    up: Column | None = None
    labels: dict[Name, Column] = {}
    group_by_name: bool = False
    keep: dict[str, Regex] = {}
    drop: dict[str, Regex] = {}

    @model_validator(mode="after")
    def _filters_on_known_labels(self) -> Table:
        known = {"name", *self.labels}
        for which, rules in (("keep", self.keep), ("drop", self.drop)):
            for label in rules:
                if label not in known:
                    raise ValueError(f"{which}: {label!r} is not name nor one of labels")
        if self.up is not None and not self.up.up_values:
            raise ValueError("up needs up_values")
        if taken := sorted({"name", "clients", "up"} & set(self.labels)):
            raise ValueError(f"labels: {', '.join(taken)} is a column of its own, not a label")
        return self

    def columns(self) -> list[str]:
        wanted = [*self.name, self.clients, self.up, *self.labels.values()]
        return [column.oid for column in wanted if column is not None]


class Interfaces(_Strict):
    """IF-MIB-shaped interface columns, each the column OID (no instance). `name` and the
    speeds are tried in order: ifName, then ifDescr; ifHighSpeed (Mbit/s), then ifSpeed (bit/s)."""

    name: list[Oid] = []
    alias: Oid | None = None
    if_type: Oid | None = None
    admin_status: Oid | None = None
    oper_status: Oid | None = None
    octets_in_64: Oid | None = None
    octets_out_64: Oid | None = None
    octets_in_32: Oid | None = None
    octets_out_32: Oid | None = None
    speed_mbps: Oid | None = None
    speed_bps: Oid | None = None

    def merged(self, override: Interfaces) -> Interfaces:
        """These columns with every column `override` sets replaced."""
        return self.model_copy(update=override.model_dump(exclude_unset=True))

    def columns(self) -> list[str]:
        singles = [v for k, v in self.model_dump().items() if k != "name" and v is not None]
        return [*self.name, *singles]


class Totals(_Strict):
    clients: Source | None = None
    aps_up: Source | None = None
    aps_total: Source | None = None


class DeviceProfile(_Strict):
    name: Name
    description: str = ""
    # Only the base profile (if_mib) may go without: it is the fallback for every device.
    match: Match | None = None
    # Higher wins when several profiles match; then the longest sysObjectID prefix.
    priority: int = Field(default=0, ge=-100, le=100)
    interfaces: Interfaces | None = None
    walk_interfaces: bool = True
    totals: Totals = Totals()
    aps: Table | None = None
    ssids: Table | None = None


@dataclass(frozen=True)
class ProfileSet:
    """The loaded profiles, and the choice of one for a device."""

    profiles: Mapping[str, DeviceProfile]

    @property
    def base(self) -> DeviceProfile:
        return self.profiles[BASE_PROFILE]

    def get(self, name: str) -> DeviceProfile:
        try:
            return self.profiles[name]
        except KeyError:
            known = ", ".join(sorted(self.profiles))
            raise ConfigError(f"no device profile named {name!r} (known: {known})") from None

    def interfaces(self, profile: DeviceProfile) -> Interfaces:
        """The base profile's interface columns with `profile`'s replacements."""
        base = self.base.interfaces or Interfaces()
        return base if profile.interfaces is None else base.merged(profile.interfaces)

    def candidates(
        self, *, sys_object_id: str | None, sys_descr: str | None
    ) -> list[DeviceProfile]:
        """Profiles whose sysObjectID/sysDescr rules match, best first (probes not yet asked)."""
        scored = []
        for profile in self.profiles.values():
            score = _score(profile.match, sys_object_id, sys_descr or "")
            if score is not None:
                scored.append(((profile.priority, score, profile.name), profile))
        scored.sort(key=lambda item: (-item[0][0], -item[0][1], item[0][2]))
        return [profile for _, profile in scored]

    def choose(
        self,
        *,
        sys_object_id: str | None,
        sys_descr: str | None,
        probed: Mapping[str, str | int | None] | None = None,
    ) -> DeviceProfile:
        """The best matching profile, given the answers to the candidates' probes; else if_mib."""
        for profile in self.candidates(sys_object_id=sys_object_id, sys_descr=sys_descr):
            assert profile.match is not None
            if profile.match.probe is None:
                return profile
            answer = (probed or {}).get(profile.match.probe)
            if answer is not None and re.search(profile.match.probe_value, str(answer)):
                return profile
        return self.base


def _score(match: Match | None, sys_object_id: str | None, sys_descr: str) -> int | None:
    """None when `match` does not hold; else the length (arcs) of the sysObjectID prefix hit."""
    if match is None:
        return None
    longest = 0
    if match.sys_object_id:
        arcs = (sys_object_id or "").strip().lstrip(".").split(".")
        hits = [len(p.split(".")) for p in match.sys_object_id if _prefix(p.split("."), arcs)]
        if not hits:
            return None
        longest = max(hits)
    if match.sys_descr and not any(re.search(r, sys_descr) for r in match.sys_descr):
        return None
    if any(re.search(r, sys_descr) for r in match.not_sys_descr):
        return None
    return longest


def _prefix(prefix: list[str], arcs: list[str]) -> bool:
    return arcs[: len(prefix)] == prefix


def load_profiles(extra_dirs: Iterable[Path]) -> ProfileSet:
    """The shipped profiles, then every `*.yaml` in `extra_dirs` (missing dirs are skipped).

    Raises ConfigError naming the file and the bad key.
    """
    profiles: dict[str, DeviceProfile] = {}
    for directory in [SHIPPED_DIR, *extra_dirs]:
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.yaml")):
            profile = load_profile(path)
            profiles[profile.name] = profile
    if BASE_PROFILE not in profiles:
        raise ConfigError(f"the base profile {BASE_PROFILE!r} is missing")
    if profiles[BASE_PROFILE].interfaces is None:
        raise ConfigError(f"the base profile {BASE_PROFILE!r} declares no interfaces")
    return ProfileSet(profiles)


def load_profile(path: Path) -> DeviceProfile:
    """One profile file; raises ConfigError naming the file and the key at fault."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if document is None:
        raise ConfigError(f"{path}: the file is empty")
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: a profile is a mapping of keys, not {type(document).__name__}")
    try:
        profile = DeviceProfile.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(top)'}: "
            + error["msg"].removeprefix("Value error, ")
            for error in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from None
    if profile.name != path.stem:
        raise ConfigError(f"{path}: name: {profile.name!r} must be the file's name ({path.stem})")
    if profile.name != BASE_PROFILE and profile.match is None:
        raise ConfigError(f"{path}: match: every profile but {BASE_PROFILE} needs one")
    return profile
