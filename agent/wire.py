"""The versioned wire contract between agent and collector.

Both halves import these models: the agent builds a `Batch`, the collector validates it and
answers with a `Receipt`. Every model forbids unknown fields, so a typo or a newer agent talking
to an older collector fails loudly instead of silently dropping data.

Example:
    >>> m = ThroughputTest(path="onnet", server="http://127.0.0.1:8080", download_bps=9.4e8)
    >>> Batch(measurements=[m]).model_dump_json()  # doctest: +ELLIPSIS
    '{"wire_version":1,...'
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

WIRE_VERSION: Literal[1] = 1
MAX_BATCH_MEASUREMENTS = 1000
# Longest error text a measurement may carry; probes cut theirs to fit.
MAX_ERROR_CHARS = 1000


def _now() -> datetime:
    return datetime.now(UTC)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _MeasurementBase(_Strict):
    # The id is minted where the measurement happens, so a retried upload is recognised.
    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    measured_at: AwareDatetime = Field(default_factory=_now)
    # A failed run is still a measurement: a dead device or a refused test is data.
    error: str | None = None


class ThroughputTest(_MeasurementBase):
    """One throughput test: download and upload rates over one path.

    `path` says what was measured: "onnet" is school → district collector (the WAN),
    "internet" is school → a public speed-test server (internet access).
    """

    kind: Literal["throughput"] = "throughput"
    path: Literal["onnet", "internet"]
    server: str
    streams: int = Field(default=1, ge=1, le=64)
    download_bps: float | None = Field(default=None, ge=0)
    upload_bps: float | None = Field(default=None, ge=0)
    latency_ms: float | None = Field(default=None, ge=0)
    download_bytes: int = Field(default=0, ge=0)
    upload_bytes: int = Field(default=0, ge=0)
    duration_s: float = Field(default=0.0, ge=0)


class InterfaceCounters(_Strict):
    """One interface row of an SNMP poll: raw counters as the device reported them."""

    ifindex: int = Field(ge=0)
    name: str
    octets_in: int | None = Field(default=None, ge=0)
    octets_out: int | None = Field(default=None, ge=0)
    # 64 for ifHCInOctets/ifHCOutOctets, 32 for the ifInOctets fallback: the wrap point.
    counter_bits: Literal[32, 64] = 64
    speed_mbps: int | None = Field(default=None, ge=0)


class SnmpPoll(_MeasurementBase):
    """One SNMP poll of one device: uptime and interface counters at one instant."""

    kind: Literal["snmp_poll"] = "snmp_poll"
    device: str
    address: str
    sys_object_id: str | None = None
    # sysUpTime in hundredths of a second; rates use it to detect reboots.
    sys_uptime_ticks: int | None = Field(default=None, ge=0)
    interfaces: list[InterfaceCounters] = Field(default_factory=list)


Measurement = Annotated[ThroughputTest | SnmpPoll, Field(discriminator="kind")]


class Batch(_Strict):
    """What an agent posts to `POST /api/v1/results`."""

    wire_version: Literal[1] = WIRE_VERSION
    agent_version: str = "0"
    sent_at: AwareDatetime = Field(default_factory=_now)
    measurements: list[Measurement] = Field(min_length=1, max_length=MAX_BATCH_MEASUREMENTS)


class Receipt(_Strict):
    """The collector's answer: which ids were stored now and which it already had."""

    accepted: list[uuid.UUID]
    duplicates: list[uuid.UUID]
