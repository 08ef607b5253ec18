"""Uplink rates at ingest: each poll's counters against its device's previous successful poll.

Rates are computed where the history is. With polls every 5 minutes these are the 5-minute rates
the readiness engine's peak figures are built on; the maths (wraps, reboots, discontinuities,
32-bit ambiguity) is `agent.snmp.rates`, and a row that gets no rate keeps the reason instead.

Only rows with a role (the school's internet uplink, its WAN link) get a rate: those are what the
readiness answer and the rollups read. Every other port's counters are stored as they came
(packed with the poll's, `poll_interfaces`) and Prometheus takes their rates from the scrape.
Rates for all 48 ports of an access switch were two thirds of storing its poll, written and
never read (issue 9's backlog drain).

The previous poll is the device's newest successful one (`Device.last_ok_poll_id`, or an earlier
poll of the same transaction). A poll that arrives late, older than that one, gets no rates: the
rate of its successor already spans its interval.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import Connection, Table, and_, select

from agent.snmp.rates import CounterSample, NoRate, interface_rate
from agent.wire import InterfaceCounters, SnmpPoll
from collector.store.bulk import insert_rows
from collector.store.interface_rows import uplink_positions
from collector.store.models import Device, InterfaceRate, InterfaceSample, SnmpPollResult

_rates = cast(Table, InterfaceRate.__table__)
_RATE_COLUMNS = ("poll_id", "seq", "seconds", "in_bps", "out_bps", "no_rate")

# (device id, poll id, when the poll counts as taken, the poll)
StoredPoll = tuple[int, int, datetime, SnmpPoll]


@dataclass(frozen=True)
class _Counters:
    """One poll's counters by ifIndex."""

    ordered_at: datetime
    by_ifindex: dict[int, CounterSample]


@dataclass
class PreviousPolls:
    """Each device's newest successful counters seen so far (None: it has none yet)."""

    known: dict[int, _Counters | None] = field(default_factory=dict)


def store_interface_rates(
    connection: Connection, polls: Sequence[StoredPoll], previous: PreviousPolls
) -> None:
    """Insert one `interface_rates` row per uplink row (a role, counters) of each good poll."""
    good = sorted((p for p in polls if p[3].error is None), key=lambda p: p[2])
    if not good:
        return
    unknown = {device_id for device_id, *_ in good if device_id not in previous.known}
    previous.known.update(_newest_counters(connection, unknown))
    rows: list[tuple[Any, ...]] = []
    for device_id, poll_id, ordered_at, poll in good:
        before = previous.known.get(device_id)
        if before is not None and ordered_at <= before.ordered_at:
            continue
        current = _Counters(ordered_at, {})
        for seq in uplink_positions(poll.interfaces):
            interface = poll.interfaces[seq]
            if interface.counter_bits is None:
                continue
            sample = _sample(interface, ordered_at, poll.sys_uptime_ticks)
            current.by_ifindex[interface.ifindex] = sample
            earlier = before.by_ifindex.get(interface.ifindex) if before else None
            rows.append(_rate_row(poll_id, seq, earlier, sample))
        previous.known[device_id] = current
    insert_rows(connection, _rates, _RATE_COLUMNS, rows)


def _rate_row(
    poll_id: int, seq: int, before: CounterSample | None, after: CounterSample
) -> tuple[Any, ...]:
    rate = interface_rate(before, after)
    seconds = after.taken_at_s - before.taken_at_s if before is not None else 0.0
    if isinstance(rate, NoRate):
        return (poll_id, seq, max(seconds, 0.0), None, None, rate.reason)
    return (poll_id, seq, rate.seconds, rate.in_bps, rate.out_bps, None)


def _sample(interface: InterfaceCounters, at: datetime, uptime: int | None) -> CounterSample:
    return CounterSample(
        taken_at_s=at.timestamp(),
        uptime_ticks=uptime,
        octets_in=interface.octets_in,
        octets_out=interface.octets_out,
        counter_bits=interface.counter_bits,
        speed_mbps=interface.speed_mbps,
    )


def _newest_counters(
    connection: Connection, device_ids: Iterable[int]
) -> dict[int, _Counters | None]:
    """The uplink counters of each device's newest successful poll, in one query."""
    wanted = sorted(device_ids)
    found: dict[int, _Counters | None] = dict.fromkeys(wanted)
    if not wanted:
        return found
    query = (
        select(
            Device.id,
            SnmpPollResult.ordered_at,
            SnmpPollResult.sys_uptime_ticks,
            InterfaceSample.ifindex,
            InterfaceSample.octets_in,
            InterfaceSample.octets_out,
            InterfaceSample.counter_bits,
            InterfaceSample.speed_mbps,
        )
        .join(SnmpPollResult, SnmpPollResult.poll_id == Device.last_ok_poll_id)
        .outerjoin(
            InterfaceSample,
            and_(
                InterfaceSample.poll_id == SnmpPollResult.poll_id,
                InterfaceSample.role.is_not(None),
            ),
        )
        .where(Device.id.in_(wanted))
    )
    for device_id, at, uptime, ifindex, octets_in, octets_out, bits, speed in connection.execute(
        query
    ):
        counters = found.get(device_id) or _Counters(at, {})
        found[device_id] = counters
        width: Literal[32, 64] | None = 64 if bits == 64 else 32 if bits == 32 else None
        if ifindex is None or width is None:
            continue
        counters.by_ifindex[ifindex] = CounterSample(
            taken_at_s=at.timestamp(),
            uptime_ticks=uptime,
            octets_in=octets_in,
            octets_out=octets_out,
            counter_bits=width,
            speed_mbps=speed,
        )
    return found
