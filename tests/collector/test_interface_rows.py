"""A poll's interface rows packed into JSON text and read back (collector/store/interface_rows)."""

from __future__ import annotations

import json

from agent.wire import INT31_MAX, UINT32_MAX, UINT64_MAX, InterfaceCounters, SnmpPoll
from collector.store.interface_rows import pack_interfaces, unpack_interfaces, uplink_positions

# Text a device may well report in ifAlias: quotes, backslashes, control characters, the line
# separators JSON allows raw but JavaScript does not, characters outside the BMP.
AWKWARD = [
    'say "hi"',
    "C:\\closet\\rack 2",
    "tab\there\nnewline\x01\x1f\x7f",
    "\u2028\u2029",
    "🛜 café",
]


def _rows() -> list[InterfaceCounters]:
    return [
        InterfaceCounters(
            ifindex=INT31_MAX,
            name=AWKWARD[n % len(AWKWARD)],
            octets_in=UINT64_MAX,
            octets_out=2**63,
            counter_bits=64,
            speed_mbps=UINT32_MAX,
            alias=AWKWARD[(n + 1) % len(AWKWARD)],
            if_type=6,
            admin_status=1,
            oper_status=7,
            role="wan" if n == 3 else None,
        )
        for n in range(5)
    ] + [InterfaceCounters(ifindex=0, name="")]


def test_rows_read_back_exactly_as_they_were_validated() -> None:
    rows = _rows()
    packed = pack_interfaces(rows)
    assert unpack_interfaces(packed) == rows
    assert all(type(row) is InterfaceCounters for row in unpack_interfaces(packed))


def test_packed_rows_are_the_wire_arrays() -> None:
    """The same arrays a version-2 agent sends: any JSON reader gets the fields in order."""
    rows = _rows()
    assert json.loads(pack_interfaces(rows)) == [list(row) for row in rows]
    poll = SnmpPoll(device="core", address="127.0.0.1:161", interfaces=rows)
    assert json.loads(pack_interfaces(rows)) == json.loads(poll.model_dump_json())["interfaces"]


def test_no_rows_pack_to_an_empty_array() -> None:
    assert pack_interfaces([]) == "[]"
    assert unpack_interfaces("[]") == []


def test_uplinks_are_the_rows_with_a_role() -> None:
    assert uplink_positions(_rows()) == [3]
