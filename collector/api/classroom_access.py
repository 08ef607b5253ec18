"""Who a classroom request is for: its code's school, and that school's speed-test limits.

Browsers cannot send an agent token, so the classroom page and LibreSpeed clients carry the
school's classroom code instead: in the path for the LibreSpeed endpoints (stock clients only
know URLs) and in the `X-Classroom-Code` header for result posts. A test makes dozens of
requests (pings, streams), so codes are answered from memory for `classroom_code_cache_s`
(a revoked code stops working within that time) and looked up once for concurrent requests.

The school's classroom tests share one set of limits, like an agent's (`speedtest_limits`):
open streams and bytes per window, per direction, and the floor rate. A code cannot turn the
collector into a free bandwidth sink, and one school's classrooms cannot starve the agents.

Codes are secrets of a kind: the uvicorn access log shows them masked (`RedactCodes`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Path, Request
from sqlalchemy.orm import Session

from collector.api.errors import (
    CLASSROOM_BUDGET,
    CLASSROOM_STREAMS,
    SPEEDTEST_BUDGET,
    SPEEDTEST_STREAMS,
    UNKNOWN_CLASSROOM_CODE,
)
from collector.api.gate import StoreGate
from collector.api.speedtest_limits import SpeedtestLimiter, SpeedtestLimits
from collector.classroom_codes import MAX_TYPED_CHARS, normalise, redact
from collector.settings import CollectorSettings
from collector.store.classroom import school_for_code

# The limiter's 429 texts speak of agents; these say whose limit it is here.
LIMIT_DETAILS = {SPEEDTEST_STREAMS: CLASSROOM_STREAMS, SPEEDTEST_BUDGET: CLASSROOM_BUDGET}
# Unknown codes are remembered briefly too, so guessing costs one lookup per guess at most.
UNKNOWN_TTL_S = 5.0
MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class ClassroomSchool:
    """The school a classroom request records for (never the code itself: it is a secret)."""

    id: int

    @property
    def label(self) -> str:
        return f"classroom tests of school {self.id}"


class CodeCache:
    """Canonical code → school id (None: unknown or revoked), bounded and expiring."""

    def __init__(self, gate: StoreGate, *, ttl_s: float) -> None:
        self._gate = gate
        self._ttl_s = ttl_s
        self._entries: OrderedDict[str, tuple[float, int | None]] = OrderedDict()
        self._in_flight: dict[str, asyncio.Future[int | None]] = {}

    async def school_for(self, code: str) -> int | None:
        entry = self._entries.get(code)
        if entry is not None and entry[0] >= time.monotonic():
            return entry[1]
        task = self._in_flight.get(code)
        if task is None:
            # Its own task: a caller that goes away does not cancel it for the others.
            task = asyncio.ensure_future(self._lookup(code))
            self._in_flight[code] = task
            task.add_done_callback(lambda _done: self._in_flight.pop(code, None))
        return await asyncio.shield(task)

    async def _lookup(self, code: str) -> int | None:
        def lookup(session: Session) -> int | None:
            return school_for_code(session=session, code=code)

        school_id = await self._gate.run(lookup)
        ttl = self._ttl_s if school_id is not None else min(self._ttl_s, UNKNOWN_TTL_S)
        self._entries[code] = (time.monotonic() + ttl, school_id)
        self._entries.move_to_end(code)
        while len(self._entries) > MAX_ENTRIES:
            self._entries.popitem(last=False)
        return school_id


async def _school(request: Request, typed: str) -> ClassroomSchool:
    code = normalise(typed)
    cache: CodeCache = request.app.state.classroom_codes
    school_id = None if code is None else await cache.school_for(code)
    if school_id is None:
        raise HTTPException(404, UNKNOWN_CLASSROOM_CODE)
    return ClassroomSchool(school_id)


async def school_in_path(
    request: Request,
    code: Annotated[str, Path(description="the school's classroom code, e.g. 7KX4-M2QD")],
) -> ClassroomSchool:
    return await _school(request, code)


async def school_in_header(
    request: Request,
    code: Annotated[
        str,
        Header(
            alias="X-Classroom-Code",
            max_length=MAX_TYPED_CHARS,
            description="the school's classroom code, e.g. 7KX4-M2QD",
        ),
    ],
) -> ClassroomSchool:
    return await _school(request, code)


SchoolInPath = Annotated[ClassroomSchool, Depends(school_in_path)]
SchoolInHeader = Annotated[ClassroomSchool, Depends(school_in_header)]


def classroom_limits(settings: CollectorSettings) -> SpeedtestLimits:
    """The per-school limits: the agents' window and floor rate, the classroom's own sizes."""
    return SpeedtestLimits(
        max_streams=settings.classroom_max_streams,
        window_s=settings.speedtest_window_s,
        download_budget_bytes=settings.classroom_download_budget_bytes,
        upload_budget_bytes=settings.classroom_upload_budget_bytes,
        min_bytes_per_s=settings.speedtest_min_bytes_per_s,
        rate_window_s=settings.speedtest_rate_window_s,
    )


async def get_classroom_limiter(request: Request) -> SpeedtestLimiter:
    # Async on purpose: a plain `def` dependency would cost a thread hop per request.
    limiter: SpeedtestLimiter = request.app.state.classroom_limiter
    return limiter


ClassroomLimiterDep = Annotated[SpeedtestLimiter, Depends(get_classroom_limiter)]


class RedactCodes(logging.Filter):
    """Masks classroom codes in the request lines uvicorn's access log writes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def hide_codes_in_access_log() -> None:
    """Install `RedactCodes` on uvicorn's access logger, once per process."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactCodes) for f in access.filters):
        access.addFilter(RedactCodes())
