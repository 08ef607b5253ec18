"""Counter-rate maths: wraps, resets, reboots and clocks give a reason, never a spike."""

from __future__ import annotations

import doctest
import json
import math
import subprocess
import sys
from typing import Literal

import pytest

from agent.snmp import rates
from agent.snmp.rates import (
    CounterSample,
    NoRate,
    NoRateReason,
    Rate,
    counter_delta,
    device_restarted,
    interface_rate,
    rates_between,
)

T0 = 1_700_000_000.0  # a realistic POSIX time; T0 + whole seconds is exact in a float
WRAP32 = 2**32
UP = 100_000  # a sysUpTime of 1000 s


def _s(
    at_s: float,
    uptime: int | None,
    octets_in: int | None,
    octets_out: int | None,
    bits: Literal[32, 64] | None = 64,
    speed: int | None = None,
    discontinuity: int | None = None,
) -> CounterSample:
    """A sample `at_s` seconds after T0."""
    return CounterSample(
        taken_at_s=T0 + at_s,
        uptime_ticks=uptime,
        octets_in=octets_in,
        octets_out=octets_out,
        counter_bits=bits,
        speed_mbps=speed,
        discontinuity_ticks=discontinuity,
    )


def _rate(
    in_bps: float | None,
    out_bps: float | None,
    seconds: float,
    in_util: float | None = None,
    out_util: float | None = None,
    wrapped: bool = False,
) -> Rate:
    return Rate(in_bps, out_bps, seconds, in_util, out_util, wrapped)


def _assert_rate(result: Rate | NoRate, expected: Rate) -> None:
    """Floats equal to 12 significant digits; None and bools exactly."""
    assert isinstance(result, Rate), result
    for name, want in expected._asdict().items():
        got = getattr(result, name)
        if isinstance(want, int | float) and not isinstance(want, bool):
            assert got == pytest.approx(want, rel=1e-12, abs=0), name
        else:
            assert got is want, name


# 64-bit, 1 Gbit/s, 300 s apart: 3.75e9 octets in = 100 Mbit/s, 3.75e8 out = 10 Mbit/s.
HC_BEFORE = _s(0, UP, 10_000_000_000, 5_000_000_000, 64, 1000)
HC_AFTER = _s(300, UP + 30_000, 13_750_000_000, 5_375_000_000, 64, 1000)
HC_RATE = _rate(1e8, 1e7, 300, 0.1, 0.01)

RATE_CASES = [
    ("64-bit normal", HC_BEFORE, HC_AFTER, HC_RATE),
    (
        "32-bit normal",
        _s(0, 0, 1_000_000, 2_000_000, 32, 100),
        _s(60, 6_000, 76_000_000, 9_500_000, 32, 100),
        _rate(1e7, 1e6, 60, 0.1, 0.01),
    ),
    (
        "32-bit single wrap counts across it",
        _s(0, 0, WRAP32 - 25_000_000, 2_000_000, 32, 100),
        _s(60, 6_000, 50_000_000, 9_500_000, 32, 100),
        _rate(1e7, 1e6, 60, 0.1, 0.01, wrapped=True),
    ),
    (
        "32-bit wrap with speed unknown is trusted once",
        _s(0, 0, 3_000_000_000, None, 32),
        _s(60, 6_000, 10, None, 32),
        _rate((WRAP32 - 3_000_000_000 + 10) * 8 / 60, None, 60, wrapped=True),
    ),
    (
        "32-bit at 1G polled within its 34.4 s wrap time",
        _s(0, 0, 0, 0, 32, 1000),
        _s(30, 3_000, 1_875_000_000, 0, 32, 1000),
        _rate(5e8, 0.0, 30, 0.5, 0.0),
    ),
    (
        # Linux lo and RouterOS PPPoE say 10 Mbit/s whatever they carry: a counter that went
        # forward is measured data, and utilisation above 1 says the speed is wrong.
        "64-bit: 200 Mbit/s on a link that says 100",
        _s(0, 0, 0, 0, 64, 100),
        _s(60, 6_000, 1_500_000_000, 0, 64, 100),
        _rate(2e8, 0.0, 60, 2.0, 0.0),
    ),
    (
        "32-bit forward beyond a link that says 10 Mbit/s",
        _s(0, 0, 0, 0, 32, 10),
        _s(60, 6_000, 400_000_000, 0, 32, 10),
        _rate(400_000_000 * 8 / 60, 0.0, 60, 400_000_000 * 8 / 60 / 1e7, 0.0),
    ),
    (
        "32-bit at 100M polled every 300 s (wraps in 343.6 s)",
        _s(0, 0, 0, 0, 32, 100),
        _s(300, 30_000, 375_000_000, 0, 32, 100),
        _rate(1e7, 0.0, 300, 0.1, 0.0),
    ),
    (
        "missing uptime before still gives a rate",
        _s(0, None, 10_000_000_000, 5_000_000_000, 64, 1000),
        HC_AFTER,
        HC_RATE,
    ),
    (
        "missing uptime in both still gives a rate",
        _s(0, None, 10_000_000_000, 5_000_000_000, 64, 1000),
        _s(300, None, 13_750_000_000, 5_375_000_000, 64, 1000),
        HC_RATE,
    ),
    (
        "sysUpTime wrapping at 2**32 is not a reboot",
        _s(0, WRAP32 - 10_000, 10_000_000_000, 5_000_000_000, 64, 1000),
        _s(300, 20_000, 13_750_000_000, 5_375_000_000, 64, 1000),
        HC_RATE,
    ),
    (
        "uptime 20 s short of the wall clock is within 10 %",
        HC_BEFORE,
        _s(300, UP + 28_000, 13_750_000_000, 5_375_000_000, 64, 1000),
        HC_RATE,
    ),
    (
        "uptime 25 s ahead of the wall clock is within 10 %",
        HC_BEFORE,
        _s(300, UP + 32_500, 13_750_000_000, 5_375_000_000, 64, 1000),
        HC_RATE,
    ),
    (
        "unchanged discontinuity time",
        _s(0, UP, 10_000_000_000, 5_000_000_000, 64, 1000, discontinuity=500),
        _s(300, UP + 30_000, 13_750_000_000, 5_375_000_000, 64, 1000, discontinuity=500),
        HC_RATE,
    ),
    (
        "discontinuity time appearing is not a change",
        HC_BEFORE,
        _s(300, UP + 30_000, 13_750_000_000, 5_375_000_000, 64, 1000, discontinuity=500),
        HC_RATE,
    ),
    (
        "in missing before: in is None, out computed",
        _s(0, UP, None, 5_000_000_000, 64, 1000),
        HC_AFTER,
        _rate(None, 1e7, 300, None, 0.01),
    ),
    (
        "out missing after: out is None, in computed",
        HC_BEFORE,
        _s(300, UP + 30_000, 13_750_000_000, None, 64, 1000),
        _rate(1e8, None, 300, 0.1, None),
    ),
    (
        "speed 0 is unknown: utilisation None",
        _s(0, UP, 10_000_000_000, 5_000_000_000, 64, 0),
        _s(300, UP + 30_000, 13_750_000_000, 5_375_000_000, 64, 0),
        _rate(1e8, 1e7, 300),
    ),
    (
        "speed None: utilisation None",
        _s(0, UP, 10_000_000_000, 5_000_000_000, 64),
        _s(300, UP + 30_000, 13_750_000_000, 5_375_000_000, 64),
        _rate(1e8, 1e7, 300),
    ),
    (
        "speed 1000: exact fractions",
        _s(0, UP, 0, 0, 64, 1000),
        _s(300, UP + 30_000, 9_375_000_000, 28_125_000, 64, 1000),
        _rate(2.5e8, 7.5e5, 300, 0.25, 0.00075),
    ),
    (
        "utilisation uses the later sample's speed",
        _s(0, UP, 0, 0, 64, 1000),
        _s(300, UP + 30_000, 1_875_000_000, 0, 64, 100),
        _rate(5e7, 0.0, 300, 0.5, 0.0),
    ),
    (
        "108 % of the link speed is within the 10 % slack",
        _s(0, 0, 0, 0, 64, 100),
        _s(60, 6_000, 810_000_000, 0, 64, 100),
        _rate(1.08e8, 0.0, 60, 1.08, 0.0),
    ),
    (
        "0.96 Tbit/s with speed unknown is still believed",
        _s(0, 0, 0, 0, 64),
        _s(10, 1_000, 1_200_000_000_000, 0, 64),
        _rate(9.6e11, 0.0, 10),
    ),
    (
        "fractional seconds between polls",
        _s(0, 0, 0, 0, 64),
        _s(0.5, 50, 1_000, 0, 64),
        _rate(16_000.0, 0.0, 0.5),
    ),
]


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [case[1:] for case in RATE_CASES],
    ids=[case[0] for case in RATE_CASES],
)
def test_interface_rate(before: CounterSample, after: CounterSample, expected: Rate) -> None:
    _assert_rate(interface_rate(before, after), expected)


# (id, before, after, reason, a fragment the detail must contain)
NO_RATE_CASES: list[tuple[str, CounterSample | None, CounterSample, NoRateReason, str]] = [
    ("first sample", None, HC_AFTER, "first_sample", "no earlier poll"),
    (
        "later row has no counters",
        HC_BEFORE,
        _s(300, UP + 30_000, None, None, None),
        "no_counters",
        "no octet counters",
    ),
    (
        "earlier row has no counters",
        _s(0, UP, None, None, None),
        HC_AFTER,
        "no_counters",
        "no octet counters",
    ),
    (
        "both directions None before",
        _s(0, UP, None, None, 64),
        HC_AFTER,
        "no_counters",
        "present in both polls",
    ),
    (
        "both directions None after",
        HC_BEFORE,
        _s(300, UP + 30_000, None, None, 64),
        "no_counters",
        "present in both polls",
    ),
    (
        "no direction present in both polls",
        _s(0, UP, 10_000_000_000, None, 64),
        _s(300, UP + 30_000, None, 5_375_000_000, 64),
        "no_counters",
        "present in both polls",
    ),
    (
        "ifHC columns appeared: 32 to 64 bits",
        _s(0, UP, 1_000, 1_000, 32, 1000),
        HC_AFTER,
        "width_changed",
        "from 32 to 64 bits",
    ),
    (
        "ifHC columns vanished: 64 to 32 bits",
        HC_BEFORE,
        _s(300, UP + 30_000, 1_000, 1_000, 32, 1000),
        "width_changed",
        "from 64 to 32 bits",
    ),
    (
        "same timestamp",
        HC_BEFORE,
        _s(0, UP, 13_750_000_000, 5_375_000_000, 64, 1000),
        "clock",
        "0 s after",
    ),
    (
        "clock went backwards",
        HC_BEFORE,
        _s(-5, UP + 30_000, 13_750_000_000, 5_375_000_000, 64, 1000),
        "clock",
        "-5 s after",
    ),
    (
        "timestamp is NaN",
        HC_BEFORE,
        _s(math.nan, UP + 30_000, 13_750_000_000, 5_375_000_000, 64, 1000),
        "clock",
        "did not move forward",
    ),
    (
        "uptime ran an hour ahead of the wall clock",
        HC_BEFORE,
        _s(300, UP + 360_000, 13_750_000_000, 5_375_000_000, 64, 1000),
        "clock",
        "advanced 3600 s but the wall clock only 300 s",
    ),
    (
        "reboot: uptime went backwards",
        _s(0, 8579, 10_000_000_000, 5_000_000_000, 64, 1000),
        _s(300, 120, 13_750_000_000, 5_375_000_000, 64, 1000),
        "reboot",
        "sysUpTime went from 8579 to 120: the device restarted.",
    ),
    (
        "reboot: backwards near 2**32 but not at the wall clock's pace",
        _s(0, WRAP32 - 10_000, 10_000_000_000, 5_000_000_000, 64, 1000),
        _s(300, 100_000, 13_750_000_000, 5_375_000_000, 64, 1000),
        "reboot",
        f"from {WRAP32 - 10_000} to 100000",
    ),
    (
        "reboot: uptime advanced 50 s in 300 s",
        HC_BEFORE,
        _s(300, UP + 5_000, 13_750_000_000, 5_375_000_000, 64, 1000),
        "reboot",
        "advanced 50 s in 300 s",
    ),
    (
        "reboot wins over the counters going backwards",
        _s(0, 8579, 10_000_000_000, 5_000_000_000, 64, 1000),
        _s(300, 120, 1_000, 1_000, 64, 1000),
        "reboot",
        "the device restarted",
    ),
    (
        "discontinuity time changed",
        _s(0, UP, 10_000_000_000, 5_000_000_000, 64, 1000, discontinuity=500),
        _s(300, UP + 30_000, 13_750_000_000, 5_375_000_000, 64, 1000, discontinuity=9_000),
        "discontinuity",
        "from 500 to 9000",
    ),
    (
        "discontinuity changed with no uptime",
        _s(0, None, 10_000_000_000, 5_000_000_000, 64, 1000, discontinuity=500),
        _s(300, None, 13_750_000_000, 5_375_000_000, 64, 1000, discontinuity=9_000),
        "discontinuity",
        "from 500 to 9000",
    ),
    (
        "64-bit counter backwards is a reset",
        HC_BEFORE,
        _s(300, UP + 30_000, 13_750_000_000, 1_000, 64, 1000),
        "counter_reset",
        "64-bit out counter went back from 5000000000 to 1000",
    ),
    (
        "64-bit backwards with speed unknown is still a reset",
        _s(0, UP, 2**64 - 1_000, 0, 64),
        _s(300, UP + 30_000, 1_000, 0, 64),
        "counter_reset",
        "64-bit in counter",
    ),
    (
        "32-bit wrap beyond link speed is a reset",
        _s(0, 0, 3_000_000_000, 0, 32, 100),
        _s(60, 6_000, 10, 0, 32, 100),
        "counter_reset",
        "one wrap would mean 172.7 Mbit/s, beyond the 100.0 Mbit/s link",
    ),
    (
        "32-bit ambiguous: 1G polled every 300 s",
        _s(0, 0, 0, 0, 32, 1000),
        _s(300, 30_000, 1_875_000_000, 0, 32, 1000),
        "ambiguous_wrap",
        "wraps in 34.4 s at 1000 Mbit/s and 300 s passed",
    ),
    (
        "32-bit ambiguous: the link was 1G in the earlier poll",
        _s(0, 0, 0, 0, 32, 1000),
        _s(60, 6_000, 75_000_000, 0, 32, 100),
        "ambiguous_wrap",
        "at 1000 Mbit/s",
    ),
    (
        "implausible: above 1 Tbit/s with speed unknown",
        _s(0, 0, 0, 0, 64),
        _s(10, 1_000, 2_000_000_000_000, 0, 64),
        "implausible",
        "1,600,000.0 Mbit/s",
    ),
    (
        "implausible: above 1 Tbit/s whatever the link speed",
        _s(0, 0, 0, 0, 64, 100),
        _s(10, 1_000, 2_000_000_000_000, 0, 64, 100),
        "implausible",
        "in counter gives 1,600,000.0 Mbit/s, above the 1,000,000.0 Mbit/s",
    ),
    (
        "implausible: a counter that does not fit 32 bits",
        _s(0, 0, 0, 0, 32),
        _s(60, 6_000, WRAP32, 0, 32),
        "implausible",
        "does not fit a 32-bit counter",
    ),
    (
        "implausible: a negative counter",
        _s(0, 0, 0, -1, 64),
        _s(60, 6_000, 0, 0, 64),
        "implausible",
        "out counter went from -1 to 0",
    ),
]


@pytest.mark.parametrize(
    ("before", "after", "reason", "fragment"),
    [case[1:] for case in NO_RATE_CASES],
    ids=[case[0] for case in NO_RATE_CASES],
)
def test_interface_no_rate(
    before: CounterSample | None, after: CounterSample, reason: NoRateReason, fragment: str
) -> None:
    result = interface_rate(before, after)
    assert isinstance(result, NoRate), result
    assert result.reason == reason
    assert fragment in result.detail
    # One sentence: a full stop, no line break.
    assert result.detail.endswith(".")
    assert "\n" not in result.detail


@pytest.mark.parametrize(
    ("before", "after", "elapsed_s", "expected"),
    [
        (None, 130_000, 300, False),
        (100_000, None, 300, False),
        (None, None, 300, False),
        (100_000, 130_000, 300, False),
        (8579, 120, 300, True),
        (WRAP32 - 10_000, 20_000, 300, False),
        (WRAP32 - 10_000, 17_500, 300, False),
        (WRAP32 - 10_000, 15_000, 300, True),
        (WRAP32 - 10_000, 100_000, 300, True),
        (100_000, 105_000, 300, True),
        (100_000, 127_100, 300, False),
        (100_000, 126_900, 300, True),
        (0, 2_100, 30, False),
        (0, 1_900, 30, True),
        (5_000, 5_000, 5, False),
        (0, 360_000, 300, False),
    ],
    ids=[
        "before unknown",
        "after unknown",
        "both unknown",
        "in step with the wall clock",
        "went backwards",
        "wrapped at 2**32 in step",
        "wrapped at 2**32, 25 s short (within 30 s)",
        "wrapped at 2**32, 50 s short",
        "backwards near 2**32, far off the wall clock",
        "advanced 50 s in 300 s",
        "advanced 271 s in 300 s (within 10 %)",
        "advanced 269 s in 300 s (beyond 10 %)",
        "advanced 21 s in 30 s (within 10 s floor)",
        "advanced 19 s in 30 s (beyond 10 s floor)",
        "unchanged over 5 s",
        "ahead of the wall clock is not a restart",
    ],
)
def test_device_restarted(
    before: int | None, after: int | None, elapsed_s: float, expected: bool
) -> None:
    assert device_restarted(before, after, elapsed_s) is expected


@pytest.mark.parametrize(
    ("before", "after", "bits", "expected"),
    [
        (5, 10, 32, (5, False)),
        (10, 10, 32, (0, False)),
        (WRAP32 - 1, 0, 32, (1, True)),
        (WRAP32 - 25_000_000, 50_000_000, 32, (75_000_000, True)),
        (0, WRAP32 - 1, 32, (WRAP32 - 1, False)),
        (0, 2**64 - 1, 64, (2**64 - 1, False)),
        (2**64 - 6, 4, 64, (10, True)),
        (WRAP32 + 5, 3, 64, (2**64 - WRAP32 - 2, True)),
    ],
    ids=[
        "32 forward",
        "32 unchanged",
        "32 wrap by one",
        "32 wrap mid-range",
        "32 full range forward",
        "64 full range forward",
        "64 wrap",
        "64 backwards counted as one wrap",
    ],
)
def test_counter_delta(
    before: int, after: int, bits: Literal[32, 64], expected: tuple[int, bool]
) -> None:
    assert counter_delta(before, after, bits) == expected


@pytest.mark.parametrize(
    ("before", "after", "bits", "message"),
    [
        (-1, 0, 32, "-1 does not fit a 32-bit counter"),
        (0, WRAP32, 32, f"{WRAP32} does not fit a 32-bit counter"),
        (2**64, 0, 64, f"{2**64} does not fit a 64-bit counter"),
        (0, 1, 16, "must be 32 or 64 bits, not 16"),
    ],
    ids=["negative", "past 32 bits", "past 64 bits", "16-bit width"],
)
def test_counter_delta_rejects(before: int, after: int, bits: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        counter_delta(before, after, bits)  # type: ignore[arg-type]


REBOOT_SERIES = [
    _s(0, 0, 0, 0, 64, 1000),
    _s(300, 30_000, 3_750_000_000, 375_000_000, 64, 1000),
    # Restarted about 5 s before this poll: counters start again from nothing.
    _s(600, 500, 1_000, 2_000, 64, 1000),
    _s(900, 30_500, 375_001_000, 37_502_000, 64, 1000),
]


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        ([], []),
        ([REBOOT_SERIES[0]], ["first_sample"]),
        (
            REBOOT_SERIES,
            [
                "first_sample",
                _rate(1e8, 1e7, 300, 0.1, 0.01),
                "reboot",
                _rate(1e7, 1e6, 300, 0.01, 0.001),
            ],
        ),
    ],
    ids=["empty", "one sample", "reboot in the middle"],
)
def test_rates_between(samples: list[CounterSample], expected: list[Rate | str]) -> None:
    results = rates_between(samples)
    assert len(results) == len(expected)
    for result, want in zip(results, expected, strict=True):
        if isinstance(want, Rate):
            _assert_rate(result, want)
        else:
            assert isinstance(result, NoRate), result
            assert result.reason == want


def test_module_example_holds() -> None:
    outcome = doctest.testmod(rates)
    assert outcome.attempted > 0
    assert outcome.failed == 0


def _top_level_modules_after(statement: str) -> set[str]:
    code = f"import json, sys; {statement}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {name.split(".")[0] for name in json.loads(out.stdout)}


def test_imports_only_the_standard_library() -> None:
    # Both the light agent and the collector import it: no pysnmp, pydantic or sqlalchemy.
    # Against a bare interpreter's modules, so site hooks (editable installs) do not count.
    added = _top_level_modules_after("import agent.snmp.rates") - _top_level_modules_after("pass")
    assert "agent" in added
    assert added - {"agent"} <= set(sys.stdlib_module_names)
