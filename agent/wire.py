"""The versioned wire contract between agent and collector.

Both halves import these models: the agent builds a `Batch`, the collector validates it and
answers with a `Receipt`. Every model forbids unknown fields and coerces nothing (strict mode), so
a typo, a `false` where a number belongs, or a newer agent talking to an older collector fails
loudly instead of silently dropping or bending data.

Every bound lives here, once: the collector's columns are sized from these limits, so whatever
validates is stored identically on SQLite and PostgreSQL, and anything else is a 422 naming the
field. Integers stay inside their SNMP types (Counter64, Gauge32, TimeTicks), floats are finite,
text has no NUL and fits its column, and timestamps are plausible.

Example:
    >>> m = ThroughputTest(path="onnet", server="http://127.0.0.1:8080", download_bps=9.4e8)
    >>> Batch(measurements=[m]).model_dump_json()  # doctest: +ELLIPSIS
    '{"wire_version":2,...'
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, NamedTuple, get_type_hints

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

# 2: an interface row may be an array of InterfaceCounters' fields in order (agents send that);
# the collector reads version 1's object rows too.
WIRE_VERSION: Literal[2] = 2
MAX_BATCH_MEASUREMENTS = 1000
# Longest error text a measurement may carry; probes cut theirs to fit.
MAX_ERROR_CHARS = 1000
MAX_INTERFACES_PER_POLL = 10_000
# A large controller's access points (a real ArubaOS one: 1,386) and its SSIDs.
MAX_APS_PER_POLL = 10_000
MAX_SSIDS_PER_POLL = 1_000

# Integer ranges of the SNMP types the values come from, and of a signed 64-bit column.
UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1
INT31_MAX = 2**31 - 1  # InterfaceIndex (IF-MIB) is 1..2147483647
INT63_MAX = 2**63 - 1

# One terabit per second: far beyond any school link, far below anything that breaks a float.
MAX_RATE_BPS = 1e12
MAX_LATENCY_MS = 600_000.0
MAX_DURATION_S = 86_400.0
# Round trips per minute at 1 ms: nothing real responds faster under load.
MAX_RPM = 60_000.0
# Half the Earth's circumference: the farthest a speed-test server can be.
MAX_DISTANCE_KM = 20_040.0
MAX_PROBES = 10_000
# The speed-test library's own result, kept as JSON text for the record.
MAX_RAW_CHARS = 4000

# A clock that far ahead is wrong, and a result dated there would pin "newest" reads for years.
MAX_FUTURE_SKEW = timedelta(minutes=10)
EARLIEST_TIMESTAMP = datetime(2000, 1, 1, tzinfo=UTC)


def _now() -> datetime:
    return datetime.now(UTC)


def _float_to_int(value: float) -> int:
    # Exact: pydantic's multiple_of=1 let 2.6e-42 through as a "whole" number.
    if not value.is_integer():
        raise ValueError("not a whole number")
    return int(value)


@dataclass(frozen=True)
class _Whole:
    """An integer from `ge` to `le`. JSON Schema counts 445.0 as an integer, so the wire does
    too; 445.5, "445" and true are not.

    Built as a pydantic-core schema rather than a Python validator: a 600-interface poll has
    thousands of integers, and a Python call for each was a fifth of parsing it. Python runs
    only for a whole float.
    """

    ge: int
    le: int

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        exact = core_schema.int_schema(ge=self.ge, le=self.le, strict=True)
        whole_float = core_schema.chain_schema(
            [
                core_schema.float_schema(strict=True, allow_inf_nan=False),
                core_schema.no_info_plain_validator_function(_float_to_int),
                exact,
            ]
        )
        return core_schema.union_schema(
            [exact, whole_float],
            custom_error_type="whole_number",
            custom_error_message=f"Input should be a whole number from {self.ge} to {self.le}",
        )

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "integer", "minimum": self.ge, "maximum": self.le}


def _plausible_time(value: datetime) -> datetime:
    # Compared before any conversion: 0001-01-01T00:00+01:00 has no UTC equivalent.
    if value < EARLIEST_TIMESTAMP:
        raise ValueError(f"must not be before {EARLIEST_TIMESTAMP:%Y-%m-%d}")
    if value > _now() + MAX_FUTURE_SKEW:
        minutes = int(MAX_FUTURE_SKEW.total_seconds() // 60)
        raise ValueError(f"must not be more than {minutes} minutes in the future")
    return value.astimezone(UTC)


def _fits(max_length: int, *, min_length: int = 0) -> StringConstraints:
    # PostgreSQL refuses NUL in text and lone surrogates in UTF-8; SQLite would store both. The
    # pattern refuses NUL (and says so in the OpenAPI schema, so generated clients know), and
    # checking any pattern makes pydantic-core refuse lone surrogates ("string_unicode").
    return StringConstraints(min_length=min_length, max_length=max_length, pattern=r"^[^\x00]*$")


Timestamp = Annotated[AwareDatetime, AfterValidator(_plausible_time)]
BitsPerSecond = Annotated[float, Field(ge=0, le=MAX_RATE_BPS, allow_inf_nan=False)]
Milliseconds = Annotated[float, Field(ge=0, le=MAX_LATENCY_MS, allow_inf_nan=False)]
ByteCount = Annotated[int, _Whole(0, INT63_MAX)]
Counter = Annotated[int, _Whole(0, UINT64_MAX)]
Gauge32 = Annotated[int, _Whole(0, UINT32_MAX)]
ErrorText = Annotated[str, _fits(MAX_ERROR_CHARS)]
DeviceName = Annotated[str, _fits(64, min_length=1)]
Address = Annotated[str, _fits(300, min_length=1)]
ServerName = Annotated[str, _fits(300)]
InterfaceName = Annotated[str, _fits(200)]
ObjectId = Annotated[str, _fits(200)]
InterfaceAlias = Annotated[str, _fits(255)]
ProfileName = Annotated[str, _fits(64, min_length=1)]
RowKey = Annotated[str, _fits(200, min_length=1)]
# IF-MIB ifAdminStatus / ifOperStatus: up(1) down(2) testing(3) unknown(4) dormant(5)
# notPresent(6) lowerLayerDown(7).
IfStatus = Annotated[int, _Whole(1, 7)]
AgentVersion = Annotated[str, _fits(40)]
ShortText = Annotated[str, _fits(40, min_length=1)]
RoomName = Annotated[str, _fits(64, min_length=1)]
RawResult = Annotated[str, _fits(MAX_RAW_CHARS)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _kind_required(schema: dict[str, Any]) -> None:
    # `kind` has a default for Python callers, but on the wire it picks the model: required.
    schema["required"] = [*schema.get("required", []), "kind"]


class _MeasurementBase(_Strict):
    model_config = ConfigDict(json_schema_extra=_kind_required)

    # The id is minted where the measurement happens, so a retried upload is recognised.
    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    measured_at: Timestamp = Field(default_factory=_now)
    # A failed run is still a measurement: a dead device or a refused test is data.
    error: ErrorText | None = None


class ThroughputTest(_MeasurementBase):
    """One throughput test: download and upload rates over one path.

    `path` says what was measured: "onnet" is school → district collector (the WAN),
    "internet" is school → a public speed-test server (internet access), "classroom" is a
    student device in a room → the collector (Wi-Fi, LAN and WAN together).

    `download_bps` / `upload_bps` are means over the measured part of the test (after the
    warm-up); the `_p90_` rates are the 90th percentile of its 250 ms samples.
    """

    kind: Literal["throughput"] = "throughput"
    path: Literal["onnet", "internet", "classroom"]
    server: ServerName
    streams: Annotated[int, _Whole(1, 64)] = 1
    download_bps: BitsPerSecond | None = None
    upload_bps: BitsPerSecond | None = None
    # Idle round-trip time, before any load.
    latency_ms: Milliseconds | None = None
    download_bytes: ByteCount = 0
    upload_bytes: ByteCount = 0
    duration_s: float = Field(default=0.0, ge=0, le=MAX_DURATION_S, allow_inf_nan=False)
    download_p90_bps: BitsPerSecond | None = None
    upload_p90_bps: BitsPerSecond | None = None
    # Round-trip time while the link is loaded (bufferbloat), and the same as round trips per
    # minute (responsiveness under working conditions, IETF draft-ietf-ippm-responsiveness).
    loaded_latency_ms: Milliseconds | None = None
    responsiveness_rpm: float | None = Field(default=None, ge=0, le=MAX_RPM, allow_inf_nan=False)
    # The measuring device's own ceiling: its link speed, whether it is on Wi-Fi, and whether
    # the result came within 10 % of that ceiling (then it says more about the device).
    agent_link_mbps: Gauge32 | None = None
    agent_wifi: bool | None = None
    agent_limited: bool = False
    # Traffic already on the school's uplink when the test began (SNMP): capacity is about
    # measured + background.
    background_bps: BitsPerSecond | None = None
    # The agent's daily data budget and what it had used, this test included.
    budget_bytes: ByteCount | None = None
    budget_used_bytes: ByteCount | None = None
    # Internet tests: the speed-test server's id, sponsor and distance, and the library's result.
    server_id: ShortText | None = None
    sponsor: ServerName | None = None
    distance_km: float | None = Field(default=None, ge=0, le=MAX_DISTANCE_KM, allow_inf_nan=False)
    raw: RawResult | None = None
    # Classroom tests: the room the test was taken in.
    room: RoomName | None = None


class InterfaceCounters(NamedTuple):
    """One interface row of an SNMP poll: raw counters as the device reported them.

    On the wire (version 2) a row is a JSON array of these fields in this order, so that a
    48-port poll is 4.4 kB rather than 10.4 kB and parses in about half the time (no field names
    to match, no model per row). The collector reads the object form of version 1 too: pydantic
    validates a NamedTuple from an array by position or from an object by name, with the same
    bounds either way, and refuses unknown names and surplus items.
    """

    ifindex: Annotated[int, _Whole(0, INT31_MAX)]
    name: InterfaceName
    octets_in: Counter | None = None
    octets_out: Counter | None = None
    # 64 for ifHCInOctets/ifHCOutOctets, 32 for the ifInOctets fallback: the wrap point. None
    # for a row without counters, which claims no width.
    counter_bits: Literal[32, 64] | None = None
    # ifHighSpeed is a Gauge32 in Mbit/s; 0 means the device does not know.
    speed_mbps: Gauge32 | None = None
    alias: InterfaceAlias | None = None
    if_type: Annotated[int, _Whole(1, INT31_MAX)] | None = None
    admin_status: IfStatus | None = None
    oper_status: IfStatus | None = None
    # The school's internet uplink or its WAN link to the district hub, as configured.
    role: Literal["internet", "wan"] | None = None

    @property
    def oper_up(self) -> bool | None:
        return None if self.oper_status is None else self.oper_status == 1


# InterfaceCounters' fields as a plain tuple type: what a row sent as an array is validated as.
INTERFACE_ROW: Any = tuple.__class_getitem__(
    tuple(
        get_type_hints(InterfaceCounters, include_extras=True)[f] for f in InterfaceCounters._fields
    )
)
_as_counters = functools.partial(tuple.__new__, InterfaceCounters)
# The union branches of a poll's rows (see _InterfaceRows); the collector names its errors.
ROWS_AS_ARRAYS = "arrays"
ROWS_AS_OBJECTS = "objects"


def _counters(rows: list[tuple[Any, ...]]) -> list[InterfaceCounters]:
    # tuple.__new__ in C: the NamedTuple's own __new__ is a Python function, a frame per row.
    return list(map(_as_counters, rows))


@dataclass(frozen=True)
class _InterfaceRows:
    """A poll's interface rows: arrays (wire version 2) through a plain tuple schema, made into
    InterfaceCounters in one pass in C; else (objects, version 1) the NamedTuple's own schema,
    which reads a row by name or by position. A 48-port poll of arrays parses in 62 us
    instead of 71-75 us a result: pydantic builds a NamedTuple through its Python `__new__`.

    A refused poll fails both branches, so its errors come twice, tagged ROWS_AS_ARRAYS and
    ROWS_AS_OBJECTS: `collector.api.errors` keeps the branch that applies.
    """

    max_length: int

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        arrays = core_schema.list_schema(
            handler.generate_schema(INTERFACE_ROW), max_length=self.max_length
        )
        objects = handler(source)
        return core_schema.union_schema(
            [
                (core_schema.no_info_after_validator_function(_counters, arrays), ROWS_AS_ARRAYS),
                (objects, ROWS_AS_OBJECTS),
            ],
            mode="left_to_right",
        )


class AccessPoint(_Strict):
    """One access point as a controller (or cloud dashboard) reports it."""

    key: RowKey
    name: InterfaceName | None = None
    clients: Gauge32 | None = None
    up: bool | None = None


class Ssid(_Strict):
    """One wireless network and the clients on it (summed over the radios that carry it)."""

    name: InterfaceName
    clients: Gauge32 | None = None


class SnmpPoll(_MeasurementBase):
    """One SNMP poll of one device: uptime, interfaces and Wi-Fi figures at one instant.

    `profile` names the device profile that read it. `clients`, `aps_up` and `aps_total` are
    the device's own totals where it has them, else sums and counts of `aps` / `ssids`.
    """

    kind: Literal["snmp_poll"] = "snmp_poll"
    device: DeviceName
    address: Address
    profile: ProfileName | None = None
    sys_object_id: ObjectId | None = None
    # sysUpTime (TimeTicks) in hundredths of a second; rates use it to detect reboots.
    sys_uptime_ticks: Gauge32 | None = None
    interfaces: Annotated[list[InterfaceCounters], _InterfaceRows(MAX_INTERFACES_PER_POLL)] = Field(
        default_factory=list, max_length=MAX_INTERFACES_PER_POLL
    )
    clients: Gauge32 | None = None
    aps_up: Gauge32 | None = None
    aps_total: Gauge32 | None = None
    aps: list[AccessPoint] = Field(default_factory=list, max_length=MAX_APS_PER_POLL)
    ssids: list[Ssid] = Field(default_factory=list, max_length=MAX_SSIDS_PER_POLL)
    # How long the poll took, from the first request to the last answer.
    duration_s: float | None = Field(default=None, ge=0, le=MAX_DURATION_S, allow_inf_nan=False)


class LatencyTest(_MeasurementBase):
    """Round trips to one target without root or a ping binary: timed TCP connects or HTTP
    requests. Of the probes sent, `answered` came back in time and `lost` did not; the RTT
    figures cover the answered ones. (Two counts rather than sent and lost, so that every
    combination the schema allows is valid.)"""

    kind: Literal["latency"] = "latency"
    target: Address
    method: Literal["tcp_connect", "http"]
    answered: Annotated[int, _Whole(0, MAX_PROBES)] = 0
    lost: Annotated[int, _Whole(0, MAX_PROBES)] = 0
    rtt_p50_ms: Milliseconds | None = None
    rtt_p90_ms: Milliseconds | None = None
    # Mean absolute difference between consecutive round trips (RFC 3550's idea, unsmoothed).
    jitter_ms: Milliseconds | None = None

    @property
    def loss_ratio(self) -> float | None:
        sent = self.answered + self.lost
        return self.lost / sent if sent else None


# Any one measurement, as Python code handles it; `Measurement` is the same for pydantic, which
# picks the model by `kind`.
AnyMeasurement = ThroughputTest | SnmpPoll | LatencyTest
Measurement = Annotated[AnyMeasurement, Field(discriminator="kind")]


class Batch(_Strict):
    """What an agent posts to `POST /api/v1/results`."""

    wire_version: Literal[1, 2] = WIRE_VERSION
    agent_version: AgentVersion = "0"
    sent_at: Timestamp = Field(default_factory=_now)
    measurements: list[Measurement] = Field(min_length=1, max_length=MAX_BATCH_MEASUREMENTS)


class Rejection(_Strict):
    """A measurement of a valid batch the collector will not store, and why (for good: the
    agent sets it aside with the reason rather than sending it again)."""

    id: uuid.UUID
    reason: ErrorText


class Receipt(_Strict):
    """The collector's answer per id: stored now, stored before (a retry), or rejected.

    `rejected` is left out of the JSON when empty, so agents from before it still read the
    answers they can handle.
    """

    accepted: list[uuid.UUID]
    duplicates: list[uuid.UUID]
    rejected: list[Rejection] = Field(default_factory=list)
