"""Interface bit rates from two polls of SNMP octet counters, refusing rather than guessing.

A rate is only worth plotting if it is right, so every doubt (a reboot, a reset counter, a wrap
that may have happened twice, a clock that jumped) gives a `NoRate` with its reason instead of
a number: a gap in a graph is honest, a spike is not. Pure stdlib, because both the agent and
the collector import it.

Example:
    >>> before = CounterSample(
    ...     taken_at_s=0.0, uptime_ticks=100_000, octets_in=1_000, octets_out=0,
    ...     counter_bits=64, speed_mbps=100,
    ... )
    >>> after = CounterSample(
    ...     taken_at_s=10.0, uptime_ticks=101_000, octets_in=1_251_000, octets_out=0,
    ...     counter_bits=64, speed_mbps=100,
    ... )
    >>> rate = interface_rate(before, after)
    >>> rate.in_bps, rate.in_utilisation, rate.wrapped
    (1000000.0, 0.01, False)
    >>> interface_rate(None, after).reason
    'first_sample'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

# sysUpTime is a TimeTicks: hundredths of a second, wrapping at 2**32 (about 497 days).
TICKS_PER_S = 100
UPTIME_MODULUS = 2**32
# Polls are stamped when they start and answered later (retries, slow agents), and device
# clocks drift: sysUpTime and the wall clock agree only within this much.
CLOCK_SLACK_MIN_S = 10.0
CLOCK_SLACK_FRACTION = 0.1
# Measured rates overshoot the nominal link speed a little (framing, poll timing).
SPEED_SLACK = 1.1
# Nothing a school runs carries more than 1 Tbit/s: a faster rate is a counter that jumped.
MAX_UNKNOWN_SPEED_BPS = 1e12

NoRateReason = Literal[
    "first_sample",
    "no_counters",
    "width_changed",
    "clock",
    "reboot",
    "discontinuity",
    "counter_reset",
    "ambiguous_wrap",
    "implausible",
]


# The value types are NamedTuples, not frozen dataclasses: the collector makes a sample and a rate
# for each uplink of every poll it stores, and a frozen dataclass took three times as long to build.
class CounterSample(NamedTuple):
    """One interface's counters at one poll."""

    taken_at_s: float  # wall-clock seconds (POSIX) when the poll was taken
    uptime_ticks: int | None  # sysUpTime (hundredths of a second), None if the device has none
    octets_in: int | None
    octets_out: int | None
    counter_bits: Literal[32, 64] | None  # None: the row has no counters
    speed_mbps: int | None = None  # ifHighSpeed (0 or None = unknown)
    discontinuity_ticks: int | None = None  # ifCounterDiscontinuityTime if the device gives it


class Rate(NamedTuple):
    """Bit rates between two samples, with utilisation of the later sample's link speed."""

    in_bps: float | None  # None when that direction's counter is missing in either sample
    out_bps: float | None
    seconds: float  # elapsed wall time between the samples
    in_utilisation: float | None  # 0..1+ of the later speed; None if speed unknown (0/None)
    out_utilisation: float | None
    wrapped: bool  # a counter wrapped once between the samples


@dataclass(frozen=True)
class NoRate:
    """Why two samples give no rate, with one human sentence saying what was seen."""

    reason: NoRateReason
    detail: str


class _Flow(NamedTuple):
    bps: float
    wrapped: bool


def counter_delta(before: int, after: int, bits: Literal[32, 64]) -> tuple[int, bool]:
    """Octets counted from `before` to `after`, assuming at most one wrap: (delta, wrapped).

    Whether one wrap is believable is the caller's judgement (see `interface_rate`).
    Raises ValueError for a width other than 32 or 64 or a value that does not fit it.
    """
    if bits not in (32, 64):
        raise ValueError(f"counter width must be 32 or 64 bits, not {bits}")
    modulus = 1 << bits
    for value in (before, after):
        if not 0 <= value < modulus:
            raise ValueError(f"{value} does not fit a {bits}-bit counter")
    if after >= before:
        return after - before, False
    return after + modulus - before, True


def device_restarted(before_ticks: int | None, after_ticks: int | None, elapsed_s: float) -> bool:
    """Whether sysUpTime shows a restart between two polls `elapsed_s` wall seconds apart.

    False when either uptime is unknown: no evidence either way.
    """
    if before_ticks is None or after_ticks is None:
        return False
    slack_s = _clock_slack_s(elapsed_s)
    if after_ticks < before_ticks:
        # Backwards is a restart unless it is sysUpTime's own wrap, which keeps pace with the wall.
        wrapped_s = ((after_ticks - before_ticks) % UPTIME_MODULUS) / TICKS_PER_S
        return abs(wrapped_s - elapsed_s) > slack_s
    # A restart in between, with the new uptime past the old one, only shows as lost time.
    return (after_ticks - before_ticks) / TICKS_PER_S < elapsed_s - slack_s


def interface_rate(before: CounterSample | None, after: CounterSample) -> Rate | NoRate:
    """The rate between two polls of one interface, or why there is none.

    Checks run in a fixed order, so the reason is the first thing that went wrong: sample
    shape, clocks, reboot, discontinuity, wrap ambiguity, then the in and out counters.
    """
    if before is None:
        return NoRate("first_sample", "There is no earlier poll of this interface to compare with.")
    refusal = (
        _shape_refusal(before, after)
        or _clock_refusal(before, after)
        or _uptime_refusal(before, after)
        or _discontinuity(before, after)
    )
    if refusal is not None:
        return refusal
    assert after.counter_bits is not None  # _shape_refusal saw to it; narrows for mypy
    bits = after.counter_bits
    elapsed_s = after.taken_at_s - before.taken_at_s
    ambiguous = _ambiguous_wrap(bits, elapsed_s, before, after)
    if ambiguous is not None:
        return ambiguous
    limit_bps = _speed_bps(after)
    flows: list[_Flow | None] = []
    for direction, old, new in (
        ("in", before.octets_in, after.octets_in),
        ("out", before.octets_out, after.octets_out),
    ):
        flow = _flow(direction, old, new, bits, elapsed_s, limit_bps)
        if isinstance(flow, NoRate):
            return flow
        flows.append(flow)
    flow_in, flow_out = flows
    return Rate(
        in_bps=None if flow_in is None else flow_in.bps,
        out_bps=None if flow_out is None else flow_out.bps,
        seconds=elapsed_s,
        in_utilisation=_utilisation(flow_in, limit_bps),
        out_utilisation=_utilisation(flow_out, limit_bps),
        wrapped=any(f is not None and f.wrapped for f in flows),
    )


def rates_between(samples: Sequence[CounterSample]) -> list[Rate | NoRate]:
    """The rate for each consecutive pair of `samples` (oldest first); the first is NoRate."""
    rates: list[Rate | NoRate] = []
    previous: CounterSample | None = None
    for sample in samples:
        rates.append(interface_rate(previous, sample))
        previous = sample
    return rates


def _clock_slack_s(elapsed_s: float) -> float:
    return max(CLOCK_SLACK_MIN_S, CLOCK_SLACK_FRACTION * elapsed_s)


def _speed_bps(sample: CounterSample) -> float | None:
    # Devices report 0 (and some never report) for links they cannot measure: unknown, not zero.
    if sample.speed_mbps is None or sample.speed_mbps <= 0:
        return None
    return sample.speed_mbps * 1e6


def _shape_refusal(before: CounterSample, after: CounterSample) -> NoRate | None:
    if before.counter_bits is None or after.counter_bits is None:
        return NoRate("no_counters", "This interface reports no octet counters.")
    paired = (before.octets_in is not None and after.octets_in is not None) or (
        before.octets_out is not None and after.octets_out is not None
    )
    if not paired:
        return NoRate("no_counters", "No octet counter is present in both polls.")
    if before.counter_bits != after.counter_bits:
        # Counter32 and Counter64 columns count from different starting points.
        return NoRate(
            "width_changed",
            f"The counters changed from {before.counter_bits} to {after.counter_bits} bits "
            "between polls, so they cannot be subtracted.",
        )
    return None


def _clock_refusal(before: CounterSample, after: CounterSample) -> NoRate | None:
    elapsed_s = after.taken_at_s - before.taken_at_s
    if math.isfinite(elapsed_s) and elapsed_s > 0:
        return None
    return NoRate(
        "clock",
        f"The later poll is stamped {elapsed_s:g} s after the earlier one: "
        "the wall clock did not move forward.",
    )


def _uptime_refusal(before: CounterSample, after: CounterSample) -> NoRate | None:
    # Runs after _clock_refusal, so elapsed_s is finite and positive.
    elapsed_s = after.taken_at_s - before.taken_at_s
    old, new = before.uptime_ticks, after.uptime_ticks
    if old is None or new is None:
        return None
    if device_restarted(old, new, elapsed_s):
        if new < old:
            return NoRate("reboot", f"sysUpTime went from {old} to {new}: the device restarted.")
        return NoRate(
            "reboot",
            f"sysUpTime advanced {(new - old) / TICKS_PER_S:g} s in {elapsed_s:g} s "
            "of wall time: the device restarted in between.",
        )
    # The mirror image: the wall clock stepped back (NTP), so dividing by it would make a spike.
    if new >= old and (new - old) / TICKS_PER_S > elapsed_s + _clock_slack_s(elapsed_s):
        return NoRate(
            "clock",
            f"sysUpTime advanced {(new - old) / TICKS_PER_S:g} s but the wall clock only "
            f"{elapsed_s:g} s: the poller's clock jumped.",
        )
    return None


def _discontinuity(before: CounterSample, after: CounterSample) -> NoRate | None:
    old, new = before.discontinuity_ticks, after.discontinuity_ticks
    # Only a change means something; a value appearing or vanishing is the walk, not the counter.
    if old is None or new is None or old == new:
        return None
    return NoRate(
        "discontinuity",
        f"ifCounterDiscontinuityTime changed from {old} to {new}: "
        "the device says the counters restarted.",
    )


def _ambiguous_wrap(
    bits: int, elapsed_s: float, before: CounterSample, after: CounterSample
) -> NoRate | None:
    # Only 32-bit counters wrap within a polling interval; unknown speed means one wrap is trusted.
    speeds = [s for s in (_speed_bps(before), _speed_bps(after)) if s is not None]
    if bits != 32 or not speeds:
        return None
    # The fastest speed either poll saw: the link may have run at it for the whole interval.
    fastest_bps = max(speeds)
    wrap_s = 2**32 * 8 / fastest_bps
    if elapsed_s <= wrap_s:
        return None
    return NoRate(
        "ambiguous_wrap",
        f"A 32-bit counter wraps in {wrap_s:.1f} s at {fastest_bps / 1e6:g} Mbit/s and "
        f"{elapsed_s:g} s passed, so it may have wrapped more than once.",
    )


def _flow(
    direction: str,
    old: int | None,
    new: int | None,
    bits: Literal[32, 64],
    elapsed_s: float,
    limit_bps: float | None,
) -> _Flow | NoRate | None:
    if old is None or new is None:
        return None
    modulus = 1 << bits
    if not (0 <= old < modulus and 0 <= new < modulus):
        return NoRate(
            "implausible",
            f"The {direction} counter went from {old} to {new}, "
            f"which does not fit a {bits}-bit counter.",
        )
    delta, wrapped = counter_delta(old, new, bits)
    if wrapped and bits == 64:
        # At 400 Gbit/s a Counter64 takes over 11 years to wrap: backwards means cleared.
        return NoRate(
            "counter_reset",
            f"The 64-bit {direction} counter went back from {old} to {new}: it was reset.",
        )
    bps = delta * 8 / elapsed_s
    # The link speed only decides whether a counter that went back wrapped once or was reset.
    # A counter that went forward is trusted up to 1 Tbit/s whatever ifHighSpeed says: devices
    # misreport it (Linux lo and RouterOS PPPoE say 10 Mbit/s, RouterOS radios 50).
    if wrapped and limit_bps is not None and bps > limit_bps * SPEED_SLACK:
        return NoRate(
            "counter_reset",
            f"The 32-bit {direction} counter went back from {old} to {new}; one wrap would mean "
            f"{_mbps(bps)}, beyond the {_mbps(limit_bps)} link, so it was reset.",
        )
    if bps > MAX_UNKNOWN_SPEED_BPS:
        return NoRate(
            "implausible",
            f"The {direction} counter gives {_mbps(bps)}, above the "
            f"{_mbps(MAX_UNKNOWN_SPEED_BPS)} a rate can be trusted up to.",
        )
    return _Flow(bps, wrapped)


def _utilisation(flow: _Flow | None, limit_bps: float | None) -> float | None:
    if flow is None or limit_bps is None:
        return None
    return flow.bps / limit_bps


def _mbps(bps: float) -> str:
    return f"{bps / 1e6:,.1f} Mbit/s"
