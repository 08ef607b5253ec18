"""Walked columns → ReadyNet's fields, as a device profile says: interfaces, APs, SSIDs, totals.

Pure functions over what `agent.snmp.walk` returned (column OID → {index suffix → value}); no
I/O, so every vendor's quirks are tested on plain data. Values arrive as the device typed them:
a client count may be a Counter32, a gauge or an empty string, so counts are read leniently
(a number or nothing) and never crash a poll.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from agent.settings import UplinkRole
from agent.snmp.profile import DeviceProfile, Interfaces, KeyFormat, Source, Table
from agent.snmp.walk import SnmpValue
from agent.wire import INT31_MAX, UINT32_MAX, UINT64_MAX, AccessPoint, InterfaceCounters, Ssid

ColumnRows = Mapping[str, Mapping[str, SnmpValue]]
# A row's cells: label (name, clients, up, or a profile's own label) → value.
_Row = dict[str, SnmpValue | bool | int | None]


@dataclass(frozen=True)
class WifiReadout:
    clients: int | None
    aps_up: int | None
    aps_total: int | None
    aps: list[AccessPoint]
    ssids: list[Ssid]


def read_interfaces(
    table: ColumnRows, columns: Interfaces, uplinks: Mapping[UplinkRole, int | str]
) -> list[InterfaceCounters]:
    """One `InterfaceCounters` per ifIndex seen in any interface column, sorted by ifIndex.

    An uplink given as a string marks the interface whose ifName or ifDescr (any of the
    profile's name columns) is that string."""
    wanted = columns.columns()
    # An ifIndex is 1..2**31-1 (IF-MIB); anything else in a column is not an interface row.
    indexes = sorted(
        {
            int(suffix)
            for oid in wanted
            for suffix in table.get(oid, {})
            if suffix.isdigit() and 0 < int(suffix) <= INT31_MAX
        }
    )
    rows = [_interface(table, columns, ifindex) for ifindex in indexes]
    if not uplinks:
        return rows
    names = {
        ifindex: {_text(table.get(column, {}).get(str(ifindex))) for column in columns.name}
        for ifindex in indexes
    }
    return _with_roles(rows, uplinks, names)


def _interface(table: ColumnRows, columns: Interfaces, ifindex: int) -> InterfaceCounters:
    key = str(ifindex)

    def cell(column: str | None) -> SnmpValue | None:
        return None if column is None else table.get(column, {}).get(key)

    hc_in, hc_out = _count(cell(columns.octets_in_64)), _count(cell(columns.octets_out_64))
    # Both directions must share one wrap point, so a row is all 64-bit or all 32-bit.
    bits: Literal[32, 64] | None = 64 if hc_in is not None or hc_out is not None else None
    octets_in, octets_out = hc_in, hc_out
    if bits is None:
        octets_in = _count(cell(columns.octets_in_32), UINT32_MAX)
        octets_out = _count(cell(columns.octets_out_32), UINT32_MAX)
        bits = 32 if octets_in is not None or octets_out is not None else None
    speed_mbps = _count(cell(columns.speed_mbps), UINT32_MAX)
    if speed_mbps is None and (speed_bps := _count(cell(columns.speed_bps))) is not None:
        # IF-MIB rounds ifHighSpeed to the nearest Mbit/s; do the same for ifSpeed.
        speed_mbps = _count((speed_bps + 500_000) // 1_000_000, UINT32_MAX)
    names = [_text(cell(column)) for column in columns.name]
    return InterfaceCounters(
        ifindex=ifindex,
        name=next((n for n in names if n), f"if{ifindex}")[:200],
        octets_in=octets_in,
        octets_out=octets_out,
        counter_bits=bits,
        speed_mbps=speed_mbps,
        alias=_text(cell(columns.alias))[:255] or None,
        if_type=_positive(cell(columns.if_type)),
        admin_status=_status(cell(columns.admin_status)),
        oper_status=_status(cell(columns.oper_status)),
    )


def _with_roles(
    rows: list[InterfaceCounters],
    uplinks: Mapping[UplinkRole, int | str],
    names: Mapping[int, set[str]],
) -> list[InterfaceCounters]:
    """Mark the configured uplinks: an int is an ifIndex, a string an ifName or ifDescr."""
    marked = []
    for row in rows:
        role = next((r for r, ref in uplinks.items() if _is(row, ref, names)), None)
        marked.append(row if role is None else row._replace(role=role))
    return marked


def _is(row: InterfaceCounters, ref: int | str, names: Mapping[int, set[str]]) -> bool:
    if isinstance(ref, int):
        return row.ifindex == ref
    return ref == row.name or ref in names.get(row.ifindex, set())


def read_wifi(
    table: ColumnRows, scalars: Mapping[str, SnmpValue | None], profile: DeviceProfile
) -> WifiReadout:
    """The profile's totals and rows. A total the device does not give is derived: clients as
    the sum over SSIDs (else, when they carry no counts, over APs), aps_up as APs up (else APs
    listed), aps_total as APs listed when their status is known."""
    aps = _access_points(table, profile.aps) if profile.aps else []
    ssids = _ssids(table, profile.ssids) if profile.ssids else []
    totals = profile.totals
    clients = _total(totals.clients, table, scalars)
    if clients is None:
        clients = _sum([s.clients for s in ssids])
    if clients is None:
        clients = _sum([a.clients for a in aps])
    statuses = [a.up for a in aps if a.up is not None]
    aps_up = _total(totals.aps_up, table, scalars)
    if aps_up is None and aps:
        aps_up = sum(statuses) if statuses else len(aps)
    aps_total = _total(totals.aps_total, table, scalars)
    if aps_total is None and statuses:
        aps_total = len(aps)
    return WifiReadout(clients, aps_up, aps_total, aps, ssids)


def _total(
    source: Source | None, table: ColumnRows, scalars: Mapping[str, SnmpValue | None]
) -> int | None:
    if source is None:
        return None
    if source.get is not None:
        return _count(scalars.get(source.get), UINT32_MAX)
    assert source.sum is not None
    values = table.get(source.sum, {})
    return _sum([_count(v) for v in values.values()]) if values else None


def _access_points(table: ColumnRows, spec: Table) -> list[AccessPoint]:
    return [
        AccessPoint(
            key=key[:200],
            name=_text(row.get("name"))[:200] or None,
            clients=_clamp(row.get("clients")),
            up=_flag(row.get("up")),
        )
        for key, row in _rows(table, spec).items()
    ]


def _ssids(table: ColumnRows, spec: Table) -> list[Ssid]:
    found = [
        (_text(row.get("name")) or key, _clamp(row.get("clients")))
        for key, row in _rows(table, spec).items()
    ]
    if spec.group_by_name:
        merged: dict[str, int | None] = {}
        for name, clients in found:
            merged[name] = _sum([merged[name], clients]) if name in merged else clients
        found = list(merged.items())
    return [Ssid(name=name[:200], clients=clients) for name, clients in found]


def _rows(table: ColumnRows, spec: Table) -> dict[str, _Row]:
    """Row key → cells; counts in a deeper-indexed column (per radio) add up into their row."""
    rows: dict[str, _Row] = {}
    # Each column repeats the same index suffixes: parse each once (most of a big controller's
    # readout went to parsing them again).
    keys: dict[str, str] = {}
    cells = [
        *(("name", column) for column in spec.name),
        ("clients", spec.clients),
        ("up", spec.up),
        *spec.labels.items(),
    ]
    for label, column in cells:
        if column is None:
            continue
        for suffix, value in table.get(column.oid, {}).items():
            key = keys.get(suffix)
            if key is None:
                key = keys[suffix] = _key(suffix, spec.key_arcs, spec.key_format)
            row = rows.setdefault(key, {})
            if label == "name":
                # The first name column that names the row wins (its first radio's, per radio).
                if not _text(row.get("name")):
                    row["name"] = value
            elif label == "clients":
                row["clients"] = _sum([_as_int(row.get("clients")), _count(value)])
            elif label == "up":
                row["up"] = value in column.up_values or str(value) in map(str, column.up_values)
            else:
                row.setdefault(label, value)
    return {key: row for key, row in rows.items() if _kept(row, spec)}


def _kept(row: _Row, spec: Table) -> bool:
    keep = all(re.search(rule, _text(row.get(label))) for label, rule in spec.keep.items())
    drop = any(re.search(rule, _text(row.get(label))) for label, rule in spec.drop.items())
    return keep and not drop


def _key(suffix: str, arcs: int | None, key_format: KeyFormat) -> str:
    parts = suffix.split(".")
    if arcs is not None:
        parts = parts[:arcs]
    numbers = [int(p) for p in parts if p.isdigit()]
    if key_format == "mac" and len(numbers) == 6 and all(n < 256 for n in numbers):
        return ":".join(f"{n:02x}" for n in numbers)
    if key_format == "string" and numbers and numbers[0] == len(numbers) - 1:
        text = bytes(n for n in numbers[1:] if n < 256).decode("utf-8", "replace")
        # A zero-length string index stays raw ("0"): a row key is never empty.
        if text and text.isprintable():
            return text
    return ".".join(parts)


def _count(value: SnmpValue | bool | None, top: int = UINT64_MAX) -> int | None:
    """A non-negative count from an int or a numeric string; anything else is no value."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value.isdigit():
            return None
        value = int(value)
    return value if isinstance(value, int) and 0 <= value <= top else None


def _as_int(value: SnmpValue | bool | None) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _clamp(value: SnmpValue | bool | None) -> int | None:
    count = _count(value)
    return None if count is None else min(count, UINT32_MAX)


def _sum(values: list[int | None]) -> int | None:
    present = [v for v in values if v is not None]
    return min(sum(present), UINT32_MAX) if present else None


def _flag(value: SnmpValue | bool | None) -> bool | None:
    return value if isinstance(value, bool) else None


def _positive(value: SnmpValue | None) -> int | None:
    count = _count(value, 2**31 - 1)
    return count if count else None


def _status(value: SnmpValue | None) -> int | None:
    count = _count(value)
    return count if count is not None and 1 <= count <= 7 else None


def _text(value: SnmpValue | bool | None) -> str:
    return value.strip() if isinstance(value, str) else ""
