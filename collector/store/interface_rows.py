"""A poll's interfaces packed into one JSON text (PollInterfaces.rows) and back.

Each interface is an array of `InterfaceCounters`' fields in their order, as on the wire: the
collector stores what it validated, and reads it back without validating again.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import compress, count
from operator import attrgetter

import msgspec
from pydantic_core import from_json

from agent.wire import InterfaceCounters

# msgspec writes a NamedTuple as an array of its fields, in C without looking at a schema: 6 us
# for a 48-port poll, where pydantic-core's serializer of plain tuples took 21-28 (a tenth of a
# store process's time on a backlog of such polls) and the json module's 31-38. Its integers go
# up to 2**64 - 1, which is a Counter64's range.
_encode = msgspec.json.Encoder().encode


def pack_interfaces(interfaces: list[InterfaceCounters]) -> str:
    return _encode(interfaces).decode()


def unpack_interfaces(rows: str) -> list[InterfaceCounters]:
    # A row stored before a field was appended is shorter: the NamedTuple's default fills it.
    return [InterfaceCounters(*row) for row in from_json(rows)]


_role = attrgetter("role")


def uplink_positions(interfaces: Sequence[InterfaceCounters]) -> list[int]:
    """Positions of the rows with a role (the configured uplinks), in order. A pass in C: a
    switch's poll has 48 rows and one or two uplinks, and a loop in Python over every row was
    a tenth of the cost of storing it."""
    return list(compress(count(), map(_role, interfaces)))
