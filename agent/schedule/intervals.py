"""Half-open time intervals [start, end): what is left of a band once blocks are cut out."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

Interval = tuple[datetime, datetime]


def subtract(spans: Iterable[Interval], holes: Iterable[Interval]) -> list[Interval]:
    """The parts of `spans` that no hole covers, in order."""
    remaining = sorted(spans)
    for hole_start, hole_end in sorted(holes):
        cut: list[Interval] = []
        for start, end in remaining:
            if hole_end <= start or end <= hole_start:
                cut.append((start, end))
                continue
            if start < hole_start:
                cut.append((start, hole_start))
            if hole_end < end:
                cut.append((hole_end, end))
        remaining = cut
    return remaining


def shrink_ends(spans: Iterable[Interval], by: timedelta) -> list[Interval]:
    """Each span without its last `by`: the starts that leave that much room before its end."""
    return [(start, end - by) for start, end in spans if end - by > start]


def total_seconds(spans: Iterable[Interval]) -> float:
    return sum((end - start).total_seconds() for start, end in spans)


def random_instant(spans: Sequence[Interval], rng: random.Random) -> datetime:
    """A moment drawn uniformly over all of `spans` (longer spans are likelier), to the second."""
    offset = rng.uniform(0, total_seconds(spans))
    for start, end in spans:
        length = (end - start).total_seconds()
        if offset < length:
            instant = (start + timedelta(seconds=offset)).replace(microsecond=0)
            # Whole seconds read better in logs; never before the span's own start.
            return instant if instant >= start else start
        offset -= length
    return spans[-1][0]
