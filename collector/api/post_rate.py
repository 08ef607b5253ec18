"""How often one holder (a school's classroom code, an agent) may post: a token bucket each.

A bucket holds `per_hour` (or `per_minute`) tokens and refills evenly over the hour (minute), so
a school may post a burst of its whole hour's allowance (a class testing together) and then one
result per 3600 / `per_hour` seconds. Buckets live in memory: a restart forgives everyone, which
is fine for limits that only keep a leaked code from filling the database, or one agent from
taking the collector's admitted requests.

Example:
    >>> rate = PostRate(per_hour=240)  # or PostRate(per_minute=60)
    >>> rate.take(school_id)  # 0.0: go ahead; otherwise the seconds until a token is back
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict

# Holders remembered at once; the least recently seen are forgotten (they start full again).
MAX_HOLDERS = 100_000


class PostRate:
    def __init__(self, *, per_hour: int | None = None, per_minute: int | None = None) -> None:
        if (per_hour is None) == (per_minute is None):
            raise ValueError("give per_hour or per_minute")
        count, window_s = (per_hour, 3600) if per_hour is not None else (per_minute, 60)
        assert count is not None
        self._capacity = float(count)
        self._per_s = count / window_s
        self._buckets: OrderedDict[int, tuple[float, float]] = OrderedDict()

    def take(self, holder: int, now: float | None = None) -> float:
        """0.0 and one token taken, or the seconds until `holder` has a token again."""
        now = time.monotonic() if now is None else now
        tokens, at = self._buckets.get(holder, (self._capacity, now))
        tokens = min(self._capacity, tokens + (now - at) * self._per_s)
        if tokens < 1:
            self._buckets[holder] = (tokens, now)
            return (1 - tokens) / self._per_s
        self._buckets[holder] = (tokens - 1, now)
        self._buckets.move_to_end(holder)
        while len(self._buckets) > MAX_HOLDERS:
            self._buckets.popitem(last=False)
        return 0.0

    @staticmethod
    def retry_after_s(wait_s: float) -> int:
        return max(1, math.ceil(wait_s))
