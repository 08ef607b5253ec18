"""How often one holder (a school's classroom code) may store a result: a token bucket each.

A bucket holds `per_hour` tokens and refills evenly over the hour, so a school may post a burst
of its whole hour's allowance (a class testing together) and then one result per
3600 / `per_hour` seconds. Buckets live in memory: a restart forgives everyone, which is fine
for a limit that only keeps a leaked code from filling the database.

Example:
    >>> rate = PostRate(per_hour=240)
    >>> rate.take(school_id)  # 0.0: go ahead; otherwise the seconds until a token is back
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict

# Holders remembered at once; the least recently seen are forgotten (they start full again).
MAX_HOLDERS = 100_000


class PostRate:
    def __init__(self, *, per_hour: int) -> None:
        self._capacity = float(per_hour)
        self._per_s = per_hour / 3600
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
