"""Rates from sampled byte counts, and the agent's own link as a ceiling."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from agent.probes.ceiling import Ceiling, ceiling_towards, interface_ceiling
from agent.probes.rtt import LoadedRtt
from agent.probes.sampling import ByteMeter, Sample, Sampler, percentile, summarize


def test_warmup_samples_are_discarded() -> None:
    # 1 MB/s for the first second (slow start), then 10 MB/s.
    samples = [Sample(0.25 * i, 250_000 * i) for i in range(5)]
    samples += [Sample(1 + 0.25 * i, 1_000_000 + 2_500_000 * i) for i in range(1, 13)]
    rates = summarize(samples, warmup_s=1.0)
    assert rates is not None
    assert rates.mean_bps == pytest.approx(80e6)
    assert rates.p90_bps == pytest.approx(80e6)
    assert rates.measured_s == pytest.approx(3.0)
    assert summarize(samples, warmup_s=10) is None


def test_p90_is_interpolated_like_numpy() -> None:
    assert percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.9) == pytest.approx(9.1)
    assert percentile([5.0], 0.9) == 5.0
    with pytest.raises(ValueError):
        percentile([], 0.5)


async def test_sampler_samples_on_a_grid() -> None:
    meter = ByteMeter()
    async with Sampler(meter, interval_s=0.05) as sampler:
        for _ in range(10):
            meter.add(1000)
            await asyncio.sleep(0.02)
    times = [s.at for s in sampler.samples]
    assert times == sorted(times) and times[0] == 0.0
    assert 3 <= len(times) <= 8
    assert sampler.samples[-1].total == 10_000


async def test_sampler_stops_at_until_s() -> None:
    # An upload phase: counted as handed to the socket, then draining past the test's time.
    meter = ByteMeter()
    async with Sampler(meter, interval_s=0.05, until_s=0.12) as sampler:
        meter.add(1000)
        await asyncio.sleep(0.25)
        meter.add(5000)  # after the test's time: neither sampled nor timed
    times = [s.at for s in sampler.samples]
    assert len(times) == 4 and times[0] == 0.0  # 0, 0.05, 0.10 and until_s (off the grid)
    assert 0.12 <= times[-1] < 0.25
    assert [s.total for s in sampler.samples] == [0, 1000, 1000, 1000]


def test_ceiling_of_a_wired_and_a_wifi_interface(tmp_path: Path) -> None:
    (tmp_path / "eth0").mkdir()
    (tmp_path / "eth0" / "speed").write_text("100\n")
    (tmp_path / "wlan0" / "wireless").mkdir(parents=True)
    (tmp_path / "veth9").mkdir()
    (tmp_path / "veth9" / "speed").write_text("-1\n")
    assert interface_ceiling("eth0", sys_net=tmp_path) == Ceiling("eth0", 100, False)
    assert interface_ceiling("wlan0", sys_net=tmp_path) == Ceiling("wlan0", None, True)
    assert interface_ceiling("veth9", sys_net=tmp_path) == Ceiling("veth9", None, False)


def test_loopback_has_no_ceiling() -> None:
    assert ceiling_towards("127.0.0.1", 8080) == Ceiling("lo", None, False)


def test_within_ten_percent_of_the_link_is_limited() -> None:
    port = Ceiling("eth0", 100, False)
    assert port.limits(94e6, None)
    assert not port.limits(89e6, 20e6)
    assert not Ceiling("wlan0", None, True).limits(1e9)


class _RisingPinger:
    """Round trips that grow as a queue fills: 1 ms, 2 ms, 3 ms, ..."""

    def __init__(self) -> None:
        self.sent = 0

    async def round_trip_ms(self) -> float:
        self.sent += 1
        return float(self.sent)


async def test_loaded_round_trips_in_the_warmup_are_not_kept() -> None:
    pinger = _RisingPinger()
    loaded = LoadedRtt(pinger, interval_s=0.02)  # type: ignore[arg-type]
    task = asyncio.create_task(loaded.run(warmup_s=0.2))
    await asyncio.sleep(0.5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    # About ten round trips were taken in the warm-up and dropped: the kept ones are later.
    assert pinger.sent > len(loaded.samples_ms) >= 5
    assert min(loaded.samples_ms) >= 5


class _TimedPinger:
    """Round trips of `rtt_s` each, recording when each one started."""

    def __init__(self, rtt_s: float) -> None:
        self.rtt_s = rtt_s
        self.starts: list[float] = []

    async def round_trip_ms(self) -> float:
        self.starts.append(time.monotonic())
        await asyncio.sleep(self.rtt_s)
        return self.rtt_s * 1000


async def test_loaded_round_trips_start_on_the_samplers_grid_and_skip_points_they_span() -> None:
    meter = ByteMeter()
    fast, slow = _TimedPinger(0.01), _TimedPinger(0.13)  # the slow one spans a grid point
    async with Sampler(meter, interval_s=0.1, until_s=1.0) as sampler:
        runs = [
            asyncio.create_task(
                LoadedRtt(p, interval_s=0.1).run(grid_from=sampler.started)  # type: ignore[arg-type]
            )
            for p in (fast, slow)
        ]
        await asyncio.sleep(0.75)
        for task in runs:
            task.cancel()
        await asyncio.gather(*runs, return_exceptions=True)
    sample_times = [sampler.started + s.at for s in sampler.samples[1:]]
    for start in fast.starts[1:]:
        # Each later round trip starts on the same wake-up as a sample (a loaded machine may
        # wake late, but both late together).
        assert min(abs(start - at) for at in sample_times) < 0.005
    # 0, 0.2, 0.4, 0.6: a 130 ms round trip from a point misses the next one.
    offsets = [round(start - sampler.started, 1) for start in slow.starts]
    assert offsets == [0.0, 0.2, 0.4, 0.6]
    assert len(fast.starts) == 8
