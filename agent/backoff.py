"""How long delivery waits after the collector could not be reached: exponential, with full jitter.

After the `failures`-th failure in a row the next attempt waits a random time between 0 and
min(cap, base * 2 ** failures) ("full jitter"): a district's agents that all lost the collector
at the same moment (its outage, a power cut that restarted them together) come back spread over
that window, not at the same second. A `Retry-After` the collector sent is a floor, itself
spread over one `base` after it: agents told the same moment do not all return at it.
"""

from __future__ import annotations

from random import Random

# 2 ** this is already far past any cap; it keeps the power finite after a very long outage.
_MAX_EXPONENT = 32


def delay_s(
    failures: int,
    *,
    base_s: float,
    cap_s: float,
    rng: Random,
    retry_after_s: float | None = None,
) -> float:
    """Seconds to wait before the next attempt after `failures` failures in a row (>= 1)."""
    if failures < 1 or base_s <= 0 or cap_s <= 0:
        raise ValueError("failures must be at least 1, base_s and cap_s positive")
    ceiling = min(cap_s, base_s * 2.0 ** min(failures, _MAX_EXPONENT))
    delay = rng.uniform(0, ceiling)
    if retry_after_s is not None:
        delay = max(delay, retry_after_s + rng.uniform(0, base_s))
    return delay
