"""agent.backoff: exponential delays with full jitter, a Retry-After as a floor."""

from __future__ import annotations

from random import Random

import pytest

from agent.backoff import delay_s

SAMPLES = 2000


@pytest.mark.parametrize(
    ("failures", "base_s", "cap_s", "retry_after_s", "low", "high"),
    [
        # Full jitter: anywhere between 0 and base * 2 ** failures ...
        (1, 60, 1800, None, 0, 120),
        (2, 60, 1800, None, 0, 240),
        (4, 60, 1800, None, 0, 960),
        # ... up to the cap, however long the outage.
        (5, 60, 1800, None, 0, 1800),
        (40, 60, 1800, None, 0, 1800),
        (10_000, 60, 1800, None, 0, 1800),
        (3, 1, 8, None, 0, 8),
        # A Retry-After is a floor, spread over one base after it ...
        (1, 60, 1800, 300, 300, 360),
        (1, 60, 1800, 0, 0, 120),
        # ... and longer jitter still wins above it.
        (6, 60, 1800, 300, 300, 1800),
    ],
)
def test_delays_stay_in_their_window_and_fill_it(
    failures: int,
    base_s: float,
    cap_s: float,
    retry_after_s: float | None,
    low: float,
    high: float,
) -> None:
    rng = Random(20261207)
    delays = [
        delay_s(failures, base_s=base_s, cap_s=cap_s, rng=rng, retry_after_s=retry_after_s)
        for _ in range(SAMPLES)
    ]
    assert all(low <= d <= high for d in delays)
    # Spread over the whole window: no two agents' retries need meet.
    span = high - low
    assert min(delays) < low + span * 0.01 and max(delays) > high - span * 0.01
    assert len(set(delays)) == SAMPLES


def test_the_same_seed_gives_the_same_delays() -> None:
    first = [delay_s(n, base_s=60, cap_s=1800, rng=Random(3)) for n in range(1, 8)]
    again = [delay_s(n, base_s=60, cap_s=1800, rng=Random(3)) for n in range(1, 8)]
    other = [delay_s(n, base_s=60, cap_s=1800, rng=Random(4)) for n in range(1, 8)]
    assert first == again != other


def test_two_hundred_agents_back_after_a_day_do_not_arrive_together() -> None:
    """A day's outage at the defaults: each agent's next try falls anywhere in 30 minutes."""
    failures = 12  # about what a day of failures at a growing wait comes to
    tries = sorted(delay_s(failures, base_s=60, cap_s=1800, rng=Random(i)) for i in range(200))
    # In any one second, a handful of agents at most (evenly: 200 / 1800 a second).
    busiest = max(sum(1 for t in tries if s <= t < s + 1) for s in range(1800))
    assert busiest <= 4


@pytest.mark.parametrize(
    ("failures", "base_s", "cap_s"), [(0, 60, 1800), (-1, 60, 1800), (1, 0, 1800), (1, 60, 0)]
)
def test_nonsense_is_refused(failures: int, base_s: float, cap_s: float) -> None:
    with pytest.raises(ValueError):
        delay_s(failures, base_s=base_s, cap_s=cap_s, rng=Random(1))
