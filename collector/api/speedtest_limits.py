"""Per-agent limits on the speed-test endpoints: open streams, bytes per window, a floor rate.

One agent token once pulled 8 GB in 20 s over 8 parallel downloads, pushed a 4 GiB upload and
held a 1 B/s upload open for 15 s. Three rules now bound what one agent can take:

- Streams: at most `max_streams` transfers open per agent and direction (a ping counts as a
  download while it is answered). Directions are counted apart because the agent starts its
  uploads the moment its downloads end, before the collector may have noticed that they closed.
- Bytes: each direction has a budget per rolling `window_s`, charged as bytes move. A transfer
  is refused when the bytes it asks for no longer fit (a chunked upload: when none are left);
  one that runs the budget out mid-way is stopped (see the speed-test routes).
- Rate: a transfer that moves less than `min_bytes_per_s` on average over any `rate_window_s`
  (windows back to back) is cut off, so a stalled or trickling client frees its stream.

The state lives in this process (one collector process serves everything) and stays small: per
agent and direction, a stream count and at most `SLOTS_PER_WINDOW` + 1 byte counters. Agents
with nothing open and nothing charged are forgotten.
"""

from __future__ import annotations

import asyncio
import enum
import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from collector.api.errors import SPEEDTEST_BUDGET, SPEEDTEST_STREAMS
from collector.settings import CollectorSettings

# The window is kept as this many slots of bytes: a charge expires between 59/60 and 60/60 of
# a window after it was made, and memory per agent stays fixed whatever the request rate.
SLOTS_PER_WINDOW = 60
# A stream's end cannot be foreseen; the agent's streams last seconds (15 s at most by default).
STREAMS_RETRY_AFTER_S = 5

T = TypeVar("T")


class Direction(enum.Enum):
    DOWNLOAD = "download"
    UPLOAD = "upload"


@dataclass(frozen=True)
class SpeedtestLimits:
    """The settings behind the rules in the module docstring."""

    max_streams: int
    window_s: float
    download_budget_bytes: int
    upload_budget_bytes: int
    min_bytes_per_s: float
    rate_window_s: float

    @classmethod
    def from_settings(cls, settings: CollectorSettings) -> SpeedtestLimits:
        return cls(
            max_streams=settings.speedtest_max_streams,
            window_s=settings.speedtest_window_s,
            download_budget_bytes=settings.speedtest_download_budget_bytes,
            upload_budget_bytes=settings.speedtest_upload_budget_bytes,
            min_bytes_per_s=settings.speedtest_min_bytes_per_s,
            rate_window_s=settings.speedtest_rate_window_s,
        )

    def budget(self, direction: Direction) -> int:
        if direction is Direction.DOWNLOAD:
            return self.download_budget_bytes
        return self.upload_budget_bytes


class LimitReached(Exception):
    """Refused: answer 429 with `detail` and `Retry-After: retry_after_s`."""

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after_s = retry_after_s


@dataclass
class _Ledger:
    """One agent, one direction: open streams, and bytes charged per slot (oldest first)."""

    streams: int = 0
    total: int = 0
    slots: deque[list[int]] = field(default_factory=deque)  # [slot index, bytes]


class SpeedtestLimiter:
    """The per-agent speed-test limits of one collector; safe from any thread or task.

    Every method is short and never awaits, so one lock serves both threads and tasks.
    """

    def __init__(
        self, limits: SpeedtestLimits, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = limits
        self._clock = clock
        self._slot_s = limits.window_s / SLOTS_PER_WINDOW
        self._ledgers: dict[tuple[int, Direction], _Ledger] = {}
        self._lock = threading.Lock()
        self._swept_at = clock()

    def open(self, *, agent_id: int, direction: Direction, need_bytes: int) -> Transfer:
        """Admit a transfer that needs `need_bytes` of budget to start; raise LimitReached if not.

        A need above the whole budget is taken as the whole budget: such a transfer starts once
        the window is clear and is stopped where the budget ends.
        """
        key = (agent_id, direction)
        with self._lock:
            self._sweep()
            ledger = self._prune(key)
            if ledger.streams >= self.limits.max_streams:
                raise LimitReached(SPEEDTEST_STREAMS, STREAMS_RETRY_AFTER_S)
            need = min(need_bytes, self.limits.budget(direction))
            if need > 0 and ledger.total + need > self.limits.budget(direction):
                raise LimitReached(SPEEDTEST_BUDGET, self._retry_after_s(key, need))
            ledger.streams += 1
        return Transfer(self, key)

    def _take(self, key: tuple[int, Direction], n: int) -> bool:
        with self._lock:
            ledger = self._prune(key)
            if ledger.total + n > self.limits.budget(key[1]):
                return False
            slot = self._slot()
            if ledger.slots and ledger.slots[-1][0] == slot:
                ledger.slots[-1][1] += n
            else:
                ledger.slots.append([slot, n])
            ledger.total += n
            return True

    def _close(self, key: tuple[int, Direction]) -> None:
        with self._lock:
            self._ledgers[key].streams -= 1

    def _retry_after_s(self, key: tuple[int, Direction], need: int) -> int:
        """Seconds until `need` bytes fit: the oldest charges expire first."""
        ledger = self._prune(key)
        free = self.limits.budget(key[1]) - ledger.total
        expires_at = self._clock()
        for slot, charged in ledger.slots:
            if free >= need:
                break
            free += charged
            expires_at = (slot + SLOTS_PER_WINDOW) * self._slot_s
        return max(1, math.ceil(expires_at - self._clock()))

    def retry_after_s(self, key: tuple[int, Direction], need_bytes: int) -> int:
        with self._lock:
            return self._retry_after_s(key, min(need_bytes, self.limits.budget(key[1])))

    def _slot(self) -> int:
        return int(self._clock() // self._slot_s)

    def _prune(self, key: tuple[int, Direction]) -> _Ledger:
        ledger = self._ledgers.setdefault(key, _Ledger())
        oldest_live = self._slot() - SLOTS_PER_WINDOW + 1
        while ledger.slots and ledger.slots[0][0] < oldest_live:
            ledger.total -= ledger.slots.popleft()[1]
        return ledger

    def _sweep(self) -> None:
        # At most once a slot: forget agents with nothing open and nothing left to expire.
        if self._clock() - self._swept_at < self._slot_s:
            return
        self._swept_at = self._clock()
        for key in list(self._ledgers):
            ledger = self._prune(key)
            if ledger.streams == 0 and not ledger.slots:
                del self._ledgers[key]

    def tracked(self) -> int:
        """How many (agent, direction) ledgers are held: bounded, for tests and curiosity."""
        with self._lock:
            return len(self._ledgers)


class Transfer:
    """One admitted transfer: charge its bytes with `take`, and `close` it when it ends."""

    def __init__(self, limiter: SpeedtestLimiter, key: tuple[int, Direction]) -> None:
        self._limiter = limiter
        self._key = key
        self._open = True

    def take(self, n: int) -> bool:
        """Charge `n` bytes; False, charging nothing, when they no longer fit the budget."""
        return self._limiter._take(self._key, n)

    def retry_after_s(self, need_bytes: int) -> int:
        """Seconds until `need_bytes` fit this direction's budget again."""
        return self._limiter.retry_after_s(self._key, need_bytes)

    def close(self) -> None:
        if self._open:
            self._open = False
            self._limiter._close(self._key)


class TooSlow(Exception):
    """A transfer fell below the floor rate over a whole rate window."""


class RateFloor:
    """Back-to-back windows of `window_s`; each must move `min_bytes_per_s * window_s` bytes."""

    def __init__(self, *, min_bytes_per_s: float, window_s: float) -> None:
        self._need = min_bytes_per_s * window_s
        self._window_s = window_s
        self._loop = asyncio.get_running_loop()
        self._window_end = self._loop.time() + window_s
        self._moved = 0

    @classmethod
    def for_limits(cls, limits: SpeedtestLimits) -> RateFloor:
        return cls(min_bytes_per_s=limits.min_bytes_per_s, window_s=limits.rate_window_s)

    def moved(self, n: int) -> None:
        self._moved += n

    def _keep_up(self) -> None:
        now = self._loop.time()
        if now < self._window_end:
            return
        if self._moved < self._need:
            raise TooSlow
        self._window_end = now + self._window_s
        self._moved = 0

    async def run(self, step: Callable[[], Awaitable[T]]) -> T:
        """Await `step()` (which must be safe to cancel and retry), judging the rate meanwhile.

        Raise TooSlow once a window ends short of the floor, whether `step` is waiting or not.
        """
        while True:
            self._keep_up()
            try:
                async with asyncio.timeout_at(self._window_end) as deadline:
                    return await step()
            except TimeoutError:
                if not deadline.expired():
                    raise
