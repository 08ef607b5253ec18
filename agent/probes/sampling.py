"""Byte counts sampled while a transfer runs, and what they add up to after a warm-up.

A `Sampler` reads the bytes that all streams of one direction have moved (any `Meter`: the
on-net test's `bulk.PhaseMeter` asks the kernel, a `ByteMeter` is added to by hand) every
`interval_s` (250 ms by default, as Ookla and LibreSpeed do), up to `until_s` when given. TCP's
slow start and the first requests' setup make the first seconds of a test slower than the link,
so the samples inside the warm-up are discarded: the mean is the bytes moved after it divided by
the time after it, and the p90 is the 90th percentile of the per-interval rates after it.

Sampled up to the end of the test's time (not until the last upload has drained and been
answered): a last sample taken after the drain would add the drain's time but none of its bytes.

Example:
    >>> meter = ByteMeter()
    >>> async with Sampler(meter, interval_s=0.25, until_s=10.0) as sampler:
    ...     ...  # streams call meter.add(n)
    >>> summarize(sampler.samples, warmup_s=2.0)
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from itertools import pairwise
from types import TracebackType
from typing import Protocol


class Meter(Protocol):
    """Bytes moved so far."""

    @property
    def total(self) -> int: ...


class ByteMeter:
    """Bytes moved so far by every stream of one direction (one event loop, no lock needed)."""

    def __init__(self) -> None:
        self.total = 0

    def add(self, n: int) -> None:
        self.total += n


@dataclass(frozen=True)
class Sample:
    """`total` bytes had moved `at` seconds after the transfer started."""

    at: float
    total: int


@dataclass(frozen=True)
class Rates:
    mean_bps: float
    p90_bps: float
    measured_s: float
    measured_bytes: int


@dataclass
class Sampler:
    """Samples `meter` every `interval_s` from entering the block until leaving it, or until
    `until_s` after entering it if that comes first (the block's end is then not sampled)."""

    meter: Meter
    interval_s: float = 0.25
    until_s: float | None = None
    samples: list[Sample] = field(default_factory=list)
    started: float = 0.0  # time.monotonic() on entering the block
    _task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Sampler:
        self.started = time.monotonic()
        self.samples.append(Sample(0.0, self.meter.total))
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._task is not None
        if self._task.done():
            return  # sampled up to until_s
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._sample()

    async def _run(self) -> None:
        # Sampled on a grid from the start, so a slow wake-up does not shift later samples.
        n = 1
        while True:
            at = n * self.interval_s
            if self.until_s is not None:
                at = min(at, self.until_s)
            await asyncio.sleep(max(0.0, self.started + at - time.monotonic()))
            self._sample()
            if at == self.until_s:
                return
            n += 1

    def _sample(self) -> None:
        self.samples.append(Sample(time.monotonic() - self.started, self.meter.total))


def summarize(samples: list[Sample], *, warmup_s: float) -> Rates | None:
    """Mean and p90 rate after `warmup_s`; None when nothing was measured after it."""
    kept = [s for s in samples if s.at >= warmup_s]
    if len(kept) < 2 or kept[-1].at <= kept[0].at:
        return None
    first, last = kept[0], kept[-1]
    measured_s = last.at - first.at
    measured_bytes = last.total - first.total
    rates = [(b.total - a.total) * 8 / (b.at - a.at) for a, b in pairwise(kept) if b.at > a.at]
    return Rates(
        mean_bps=measured_bytes * 8 / measured_s,
        p90_bps=percentile(rates, 0.9),
        measured_s=measured_s,
        measured_bytes=measured_bytes,
    )


def percentile(values: list[float], q: float) -> float:
    """The `q` quantile of `values` by linear interpolation (numpy's default, R's type 7)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
