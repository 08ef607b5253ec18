"""Rollups: each school's throughput tests and each uplink's rates per UTC hour and day.

Raw results are kept `raw_retention_days`; queries over a school year read these instead. An
hour's rows are built from the raw rows (its figures exact), a day's from its hours by merging
their sketches, so a day's (or a year's) median is the sketch's: within `RELATIVE_ERROR` of the
exact `percentile_cont` of the raw values (each of the two ranks it interpolates is a bucket's
representative, within that relative distance of the true value, and so is their mix).

The sketch is a sparse histogram of log buckets (DDSketch's idea, 25 lines): value v counts in
bucket ceil(log_GAMMA(v)), 2.5 % wide; zeros apart. Stdlib only: the `ddsketch` package would
add protobuf for its wire form and still need a JSON text of its own here.

`roll_up` brings everything up to date in chunks of at most a day, each its own transaction
with the watermarks (`RollupState`), so a run cut short resumes where it stopped: complete
hours not yet rolled up; hours that received late results since the last run (by
`received_at`), rebuilt; complete days, from their hours; and raw results older than the
retention whose days are rolled up, deleted 10,000 at a time (children by ON DELETE CASCADE).
It is run by one replica at a time (`collector.jobs`).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, delete, func, select
from sqlalchemy.orm import Session

from collector.store.bulk import Row, insert_rows
from collector.store.models import (
    Device,
    InterfaceRate,
    InterfaceSample,
    JobRun,
    Measurement,
    RollupState,
    SnmpPollResult,
    ThroughputResult,
    ThroughputRollup,
    UplinkRollup,
)
from collector.store.windows import CIRCUIT_PATHS

GAMMA = 1.025
_LOG_GAMMA = math.log(GAMMA)
# Every value of a bucket lies within this relative distance of the bucket's representative.
RELATIVE_ERROR = (GAMMA - 1) / (GAMMA + 1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
STATE = "rollups"
# A day's on-net and internet tests together, the tests readiness is judged on: one row per
# school and day is what a long window merges (two paths' rows took 360 ms for 200 schools
# over 180 days on SQLite, one takes half that). Days only; never an hour's path.
CIRCUIT = "circuit"
# A batch's received_at is taken before it commits (as the readiness board's COMMIT_MARGIN).
LATE_MARGIN = timedelta(seconds=60)
DELETE_CHUNK = 10_000
PEAK_PERCENTILE = 0.95
JOB_RUNS_KEPT = timedelta(days=30)
_KINDS = ("throughput", "snmp_poll", "latency")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EMPTY = '{"z":0,"b":[]}'


class Sketch:
    """Counts of values per log bucket; zeros (and anything not above 0) counted apart."""

    __slots__ = ("buckets", "zeros")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.zeros = 0

    @classmethod
    def of(cls, values: Iterable[float]) -> Sketch:
        sketch = cls()
        for value in values:
            sketch.add(value)
        return sketch

    def add(self, value: float) -> None:
        if value <= 0:
            self.zeros += 1
            return
        index = math.ceil(math.log(value) / _LOG_GAMMA)
        self.buckets[index] = self.buckets.get(index, 0) + 1

    def merge(self, text: str) -> None:
        """Add the values of a sketch stored as `dumps()` text."""
        if text == _EMPTY:  # e.g. the latency of tests that timed no loaded round trip
            return
        stored = json.loads(text)
        self.zeros += stored["z"]
        flat = stored["b"]
        buckets = self.buckets
        for k in range(0, len(flat), 2):
            buckets[flat[k]] = buckets.get(flat[k], 0) + flat[k + 1]

    @property
    def count(self) -> int:
        return self.zeros + sum(self.buckets.values())

    def dumps(self) -> str:
        flat = [n for item in sorted(self.buckets.items()) for n in item]
        return json.dumps({"z": self.zeros, "b": flat}, separators=(",", ":"))

    def _ranks(self, ranks: Sequence[int]) -> list[float]:
        """The values at 0-based `ranks` (ascending), each as its bucket's representative."""
        found: list[float] = []
        seen = self.zeros
        wanted = iter(ranks)
        rank = next(wanted, None)
        while rank is not None and rank < seen:
            found.append(0.0)
            rank = next(wanted, None)
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            while rank is not None and rank < seen:
                found.append(2 * GAMMA**index / (GAMMA + 1))
                rank = next(wanted, None)
        return found

    def percentile_cont(self, fraction: float) -> float | None:
        """As PostgreSQL's percentile_cont: interpolated between the two ranks around it."""
        n = self.count
        if not n:
            return None
        position = fraction * (n - 1)
        low_rank = int(position)
        low, high = self._ranks([low_rank, min(low_rank + 1, n - 1)])
        return low + (high - low) * (position - low_rank)

    def nearest_rank(self, fraction: float) -> float | None:
        """A measured value's bucket, as `collector.store.uplinks.percentile` picks it."""
        n = self.count
        if not n:
            return None
        rank = max(1, math.ceil(round(fraction * n, 9)))
        return self._ranks([min(rank, n) - 1])[0]


def percentile_cont(values: Sequence[float], fraction: float) -> float | None:
    """The exact percentile_cont of `values` (PostgreSQL's arithmetic)."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low_rank = int(position)
    low, high = ordered[low_rank], ordered[min(low_rank + 1, len(ordered) - 1)]
    return low + (high - low) * (position - low_rank)


def nearest_rank(values: Sequence[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(round(fraction * len(ordered), 9)))
    return ordered[min(rank, len(ordered)) - 1]


def floor_hour(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def floor_day(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass
class RollupRun:
    """What one `roll_up` did."""

    hours: int = 0
    late_hours: int = 0
    days: int = 0
    deleted: int = 0
    # The hours rebuilt for late results, for the log and the tests.
    rebuilt: list[datetime] = field(default_factory=list)

    def describe(self) -> str:
        return (
            f"{self.hours} hours, {self.late_hours} hours again for late results, "
            f"{self.days} days rolled up; {self.deleted} raw results deleted"
        )


def roll_up(
    *,
    session: Session,
    now: datetime,
    retention_days: int,
    keep_going: Callable[[], None] = lambda: None,
    delete_chunk: int = DELETE_CHUNK,
) -> RollupRun:
    """Bring the rollups up to `now` and apply the retention; see the module's docstring.

    `keep_going` is called after each committed chunk (the job renews its lease there, and
    raises to stop).
    """
    run = RollupRun()
    state = _state(session)
    received_until = now
    current_hour = floor_hour(now)
    if state.hours_before is None:
        first = _first_measured(session)
        if first is None:
            return run
        state.hours_before = floor_hour(first)
        state.days_before = floor_day(first)
        session.commit()
    late_days: set[datetime] = set()
    if state.received_through is not None:
        hours = _late_hours(session, state, received_until)
        for start, end in _day_spans(hours):
            _rebuild_hours(session, start, end)
            session.commit()
            keep_going()
            run.late_hours += len([h for h in hours if start <= h < end])
            late_days.add(floor_day(start))
        run.rebuilt = sorted(hours)
    state = _state(session)
    assert state.hours_before is not None and state.days_before is not None
    cursor = state.hours_before
    while cursor < current_hour:
        # Over stretches without results (holidays, an agent's clock set to 1970) in one step.
        following = _first_measured(session, since=cursor)
        if following is None or following >= current_hour:
            state.hours_before = current_hour
            session.commit()
            break
        cursor = max(cursor, floor_hour(following))
        end = min(floor_day(cursor) + DAY, current_hour)
        _rebuild_hours(session, cursor, end)
        state.hours_before = end
        session.commit()
        keep_going()
        run.hours += round((end - cursor) / HOUR)
        cursor = end
    for day in sorted(d for d in late_days if d < state.days_before):
        _rebuild_day(session, day)
        session.commit()
        keep_going()
        run.days += 1
    while state.days_before + DAY <= state.hours_before:
        following = session.scalar(
            select(func.min(ThroughputRollup.start)).where(
                ThroughputRollup.period == "hour", ThroughputRollup.start >= state.days_before
            )
        )
        uplinks = session.scalar(
            select(func.min(UplinkRollup.start)).where(
                UplinkRollup.period == "hour", UplinkRollup.start >= state.days_before
            )
        )
        found = [f for f in (following, uplinks) if f is not None]
        if not found or floor_day(min(found)) >= floor_day(state.hours_before):
            state.days_before = floor_day(state.hours_before)
            session.commit()
            break
        day = max(state.days_before, floor_day(min(found)))
        _rebuild_day(session, day)
        state.days_before = day + DAY
        session.commit()
        keep_going()
        run.days += 1
    state.received_through = received_until
    session.commit()
    if retention_days:
        run.deleted = apply_retention(
            session=session,
            now=now,
            retention_days=retention_days,
            keep_going=keep_going,
            chunk=delete_chunk,
        )
    session.execute(delete(JobRun).where(JobRun.started_at < now - JOB_RUNS_KEPT))
    session.commit()
    return run


def _state(session: Session) -> RollupState:
    state = session.get(RollupState, STATE)
    if state is None:
        state = RollupState(name=STATE)
        session.add(state)
        session.flush()
    return state


def _first_measured(session: Session, since: datetime = _EPOCH) -> datetime | None:
    """The first throughput test or poll measured at or after `since`."""
    # One index seek per kind (kind, measured_at), not a scan of every row.
    firsts = [
        session.scalar(
            select(func.min(Measurement.measured_at)).where(
                Measurement.kind == kind, Measurement.measured_at >= since
            )
        )
        for kind in ("throughput", "snmp_poll")
    ]
    return min((f for f in firsts if f is not None), default=None)


def _late_hours(session: Session, state: RollupState, received_until: datetime) -> set[datetime]:
    """Rolled-up hours (whose raw rows are still kept) that received results since the last
    run."""
    assert state.received_through is not None and state.hours_before is not None
    kept_from = state.raw_deleted_before or _EPOCH
    hours: set[datetime] = set()
    for kind in ("throughput", "snmp_poll"):
        # By arrival only, the measured time checked here: given a range of measured_at too,
        # SQLite walked the (kind, measured_at) index over the whole history.
        query = select(Measurement.measured_at).where(
            Measurement.kind == kind,
            Measurement.received_at > state.received_through - LATE_MARGIN,
            Measurement.received_at <= received_until,
        )
        hours.update(
            floor_hour(at) for at in session.scalars(query) if kept_from <= at < state.hours_before
        )
    return hours


def _day_spans(hours: Collection[datetime]) -> list[tuple[datetime, datetime]]:
    """The touched hours as one span per day (from its first to past its last touched hour)."""
    by_day: dict[datetime, list[datetime]] = defaultdict(list)
    for hour in hours:
        by_day[floor_day(hour)].append(hour)
    return [(min(h), max(h) + HOUR) for _, h in sorted(by_day.items())]


_THROUGHPUT_COLUMNS = (
    "school_id",
    "period",
    "path",
    "start",
    "tests",
    "errors",
    "agent_limited",
    "download_median_bps",
    "download_p90_bps",
    "download_min_bps",
    "download_max_bps",
    "upload_median_bps",
    "upload_p90_bps",
    "upload_min_bps",
    "upload_max_bps",
    "idle_latency_median_ms",
    "loaded_latency_median_ms",
    "download_sketch",
    "upload_sketch",
    "idle_latency_sketch",
    "loaded_latency_sketch",
)
_UPLINK_COLUMNS = (
    "device_id",
    "ifindex",
    "role",
    "period",
    "start",
    "school_id",
    "ifname",
    "speed_mbps",
    "rates",
    "gaps",
    "p95_bps",
    "max_bps",
    "sketch",
)
_throughput_table = cast(Table, ThroughputRollup.__table__)
_uplink_table = cast(Table, UplinkRollup.__table__)


def _replace(
    session: Session, period: str, start: datetime, end: datetime, rows: tuple[list[Row], ...]
) -> None:
    """Replace the `period` rows of [start, end) of both tables with `rows` (bulk, not ORM: a
    year's backfill writes a million rows).

    The reads that built `rows` are ended first: on SQLite a read transaction that then writes
    fails at once (SQLITE_BUSY, no waiting) if ingest committed in between; a transaction that
    starts with its write waits its turn instead. Nothing else may be pending in the session.
    """
    session.commit()
    for model in (ThroughputRollup, UplinkRollup):
        session.execute(
            delete(model).where(model.period == period, model.start >= start, model.start < end)
        )
    connection = session.connection()
    insert_rows(connection, _throughput_table, _THROUGHPUT_COLUMNS, rows[0])
    insert_rows(connection, _uplink_table, _UPLINK_COLUMNS, rows[1])


def _rebuild_hours(session: Session, start: datetime, end: datetime) -> None:
    """Replace the hourly rows of [start, end) with rows built from the raw results."""
    rows = (_throughput_hours(session, start, end), _uplink_hours(session, start, end))
    _replace(session, "hour", start, end, rows)


@dataclass
class _Tests:
    tests: int = 0
    errors: int = 0
    limited: int = 0
    down: list[float] = field(default_factory=list)
    up: list[float] = field(default_factory=list)
    idle: list[float] = field(default_factory=list)
    loaded: list[float] = field(default_factory=list)


def _throughput_hours(session: Session, start: datetime, end: datetime) -> list[Row]:
    t = ThroughputResult
    query = (
        select(
            Measurement.school_id,
            Measurement.measured_at,
            Measurement.error,
            t.path,
            t.download_bps,
            t.upload_bps,
            t.agent_limited,
            t.latency_ms,
            t.loaded_latency_ms,
        )
        .join(t, t.measurement_id == Measurement.id)
        .where(
            Measurement.kind == "throughput",
            Measurement.measured_at >= start,
            Measurement.measured_at < end,
        )
    )
    groups: dict[tuple[int, str, datetime], _Tests] = defaultdict(_Tests)
    for school_id, at, error, path, down, up, limited, idle, loaded in session.execute(query):
        group = groups[(school_id, path, floor_hour(at))]
        if error is not None:
            group.errors += 1
            continue
        if down is None:
            continue
        group.tests += 1
        group.limited += bool(limited)
        group.down.append(down)
        if up is not None:
            group.up.append(up)
        if idle is not None and loaded is not None:
            group.idle.append(idle)
            group.loaded.append(loaded)
    return [
        (
            school_id,
            "hour",
            path,
            hour,
            g.tests,
            g.errors,
            g.limited,
            percentile_cont(g.down, 0.5),
            percentile_cont(g.down, 0.9),
            min(g.down, default=None),
            max(g.down, default=None),
            percentile_cont(g.up, 0.5),
            percentile_cont(g.up, 0.9),
            min(g.up, default=None),
            max(g.up, default=None),
            percentile_cont(g.idle, 0.5),
            percentile_cont(g.loaded, 0.5),
            Sketch.of(g.down).dumps(),
            Sketch.of(g.up).dumps(),
            Sketch.of(g.idle).dumps(),
            Sketch.of(g.loaded).dumps(),
        )
        for (school_id, path, hour), g in groups.items()
    ]


@dataclass
class _Rates:
    school_id: int = 0
    ifname: str = ""
    speed_mbps: int | None = None
    newest: datetime = _EPOCH
    gaps: int = 0
    busier: list[float] = field(default_factory=list)


def _uplink_hours(session: Session, start: datetime, end: datetime) -> list[Row]:
    s, r, p = InterfaceSample, InterfaceRate, SnmpPollResult
    query = (
        select(
            p.device_id,
            Device.school_id,
            s.ifindex,
            s.role,
            s.name,
            s.speed_mbps,
            r.in_bps,
            r.out_bps,
            r.no_rate,
            Measurement.measured_at,
        )
        .select_from(Measurement)
        .join(p, p.measurement_id == Measurement.id)
        .join(s, s.poll_id == p.poll_id)
        .join(r, and_(r.poll_id == s.poll_id, r.seq == s.seq))
        .join(Device, Device.id == p.device_id)
        .where(
            Measurement.kind == "snmp_poll",
            Measurement.measured_at >= start,
            Measurement.measured_at < end,
            s.role.is_not(None),
        )
    )
    groups: dict[tuple[int, int, str, datetime], _Rates] = defaultdict(_Rates)
    for (
        device_id,
        school_id,
        ifindex,
        role,
        name,
        speed,
        in_bps,
        out_bps,
        no_rate,
        at,
    ) in session.execute(query):
        if no_rate == "first_sample":
            continue  # no interval before it: nothing missing (as the readiness answer)
        group = groups[(device_id, ifindex, role or "", floor_hour(at))]
        if at >= group.newest:
            group.school_id, group.ifname, group.speed_mbps, group.newest = (
                school_id,
                name,
                speed,
                at,
            )
        if no_rate is not None or (in_bps is None and out_bps is None):
            group.gaps += 1
        else:
            group.busier.append(max(in_bps or 0.0, out_bps or 0.0))
    return [
        (
            device_id,
            ifindex,
            role,
            "hour",
            hour,
            g.school_id,
            g.ifname,
            g.speed_mbps,
            len(g.busier),
            g.gaps,
            nearest_rank(g.busier, PEAK_PERCENTILE),
            max(g.busier, default=None),
            Sketch.of(g.busier).dumps(),
        )
        for (device_id, ifindex, role, hour), g in groups.items()
    ]


def _rebuild_day(session: Session, day: datetime) -> None:
    """Replace the daily rows of `day` with its hourly rows merged."""
    rows = (_throughput_day(session, day), _uplink_day(session, day))
    _replace(session, "day", day, day + DAY, rows)


@dataclass
class _Day:
    tests: int = 0
    errors: int = 0
    limited: int = 0
    # min and max of download and upload
    ends: list[float | None] = field(default_factory=lambda: [None, None, None, None])
    sketches: tuple[Sketch, ...] = field(default_factory=lambda: tuple(Sketch() for _ in range(4)))


def _lowest(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _highest(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def _throughput_day(session: Session, day: datetime) -> list[Row]:
    t = ThroughputRollup
    query = select(
        t.school_id,
        t.path,
        t.tests,
        t.errors,
        t.agent_limited,
        t.download_min_bps,
        t.download_max_bps,
        t.upload_min_bps,
        t.upload_max_bps,
        t.download_sketch,
        t.upload_sketch,
        t.idle_latency_sketch,
        t.loaded_latency_sketch,
    ).where(t.period == "hour", t.start >= day, t.start < day + DAY)
    days: dict[tuple[int, str], _Day] = defaultdict(_Day)
    for school_id, path, tests, errors, limited, *figures in session.execute(query):
        keys = [(school_id, path)]
        if path in CIRCUIT_PATHS:
            keys.append((school_id, CIRCUIT))
        for key in keys:
            merged = days[key]
            merged.tests += tests
            merged.errors += errors
            merged.limited += limited
            ends = merged.ends
            ends[0], ends[1] = _lowest(ends[0], figures[0]), _highest(ends[1], figures[1])
            ends[2], ends[3] = _lowest(ends[2], figures[2]), _highest(ends[3], figures[3])
            for sketch, text in zip(merged.sketches, figures[4:], strict=True):
                sketch.merge(text)
    rows: list[Row] = []
    for (school_id, path), d in days.items():
        down, up, idle, loaded = d.sketches
        rows.append(
            (
                school_id,
                "day",
                path,
                day,
                d.tests,
                d.errors,
                d.limited,
                down.percentile_cont(0.5),
                down.percentile_cont(0.9),
                d.ends[0],
                d.ends[1],
                up.percentile_cont(0.5),
                up.percentile_cont(0.9),
                d.ends[2],
                d.ends[3],
                idle.percentile_cont(0.5),
                loaded.percentile_cont(0.5),
                down.dumps(),
                up.dumps(),
                idle.dumps(),
                loaded.dumps(),
            )
        )
    return rows


def _uplink_day(session: Session, day: datetime) -> list[Row]:
    u = UplinkRollup
    query = (
        select(
            u.device_id,
            u.ifindex,
            u.role,
            u.school_id,
            u.ifname,
            u.speed_mbps,
            u.rates,
            u.gaps,
            u.max_bps,
            u.sketch,
        )
        .where(u.period == "hour", u.start >= day, u.start < day + DAY)
        .order_by(u.start)  # the newest hour's name and speed win
    )
    merged: dict[tuple[int, int, str], list[Any]] = {}
    sketches: dict[tuple[int, int, str], Sketch] = defaultdict(Sketch)
    for (
        device_id,
        ifindex,
        role,
        school_id,
        ifname,
        speed,
        rates,
        gaps,
        top,
        text,
    ) in session.execute(query):
        key = (device_id, ifindex, role)
        before = merged.get(key)
        merged[key] = [
            school_id,
            ifname,
            speed,
            rates + (before[3] if before else 0),
            gaps + (before[4] if before else 0),
            _highest(top, before[5] if before else None),
        ]
        sketches[key].merge(text)
    return [
        (
            device_id,
            ifindex,
            role,
            "day",
            day,
            school_id,
            ifname,
            speed,
            rates,
            gaps,
            sketches[(device_id, ifindex, role)].nearest_rank(PEAK_PERCENTILE),
            top,
            sketches[(device_id, ifindex, role)].dumps(),
        )
        for (device_id, ifindex, role), (school_id, ifname, speed, rates, gaps, top) in (
            merged.items()
        )
    ]


def apply_retention(
    *,
    session: Session,
    now: datetime,
    retention_days: int,
    keep_going: Callable[[], None] = lambda: None,
    chunk: int = DELETE_CHUNK,
) -> int:
    """Delete raw results older than the retention whose days are rolled up, `chunk` at a
    time, each chunk its own transaction (ingest waits for one chunk at most)."""
    state = _state(session)
    assert state.days_before is not None
    cutoff = min(floor_day(now - timedelta(days=retention_days)), state.days_before)
    # Set first: hours before it are never rebuilt from what is left of them.
    if state.raw_deleted_before is None or state.raw_deleted_before < cutoff:
        state.raw_deleted_before = cutoff
    session.commit()
    deleted = 0
    for kind in _KINDS:
        while True:
            ids = list(
                session.scalars(
                    select(Measurement.id)
                    .where(Measurement.kind == kind, Measurement.measured_at < cutoff)
                    .limit(chunk)
                )
            )
            if not ids:
                break
            session.commit()  # the read ended before the write (see _replace)
            session.execute(
                delete(Measurement).where(Measurement.id.in_(ids)),
                execution_options={"synchronize_session": False},
            )
            session.commit()
            deleted += len(ids)
            keep_going()
    return deleted


@dataclass(frozen=True)
class LongWindow:
    """A school's circuit tests (on-net and internet) over complete days, from the daily
    rollups: the readiness figures for windows longer than the raw retention."""

    tests: int
    median_download_bps: float
    p90_download_bps: float
    agent_limited_tests: int
    # Days with tests (rows merged, for `summarise` of other rows).
    periods: int


def long_windows(
    *,
    session: Session,
    start: datetime,
    end: datetime,
    school_ids: Collection[int] | None = None,
) -> dict[int, LongWindow]:
    """Each school's window of the days from `start`'s to before `end`'s (UTC days rolled up;
    the day in progress is not), schools without tests left out. Medians within
    `RELATIVE_ERROR` of the raw rows'."""
    rollup = ThroughputRollup
    query = select(
        rollup.school_id, rollup.tests, rollup.agent_limited, rollup.download_sketch
    ).where(
        rollup.period == "day",
        rollup.path == CIRCUIT,
        rollup.start >= floor_day(start),
        rollup.start < floor_day(end),
        rollup.tests > 0,
    )
    if school_ids is not None:
        if not school_ids:
            return {}
        query = query.where(rollup.school_id.in_(school_ids))
    return summarise(session.execute(query))


def summarise(rows: Iterable[tuple[int, int, int, str]]) -> dict[int, LongWindow]:
    """(school, tests, agent-limited, download sketch) rows merged per school; `periods` counts
    each school's rows."""
    sketches: dict[int, Sketch] = defaultdict(Sketch)
    counts: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    for school_id, tests, limited, text in rows:
        sketches[school_id].merge(text)
        count = counts[school_id]
        count[0] += tests
        count[1] += limited
        count[2] += 1
    windows = {}
    for school_id, merged in sketches.items():
        median, p90 = merged.percentile_cont(0.5), merged.percentile_cont(0.9)
        if median is None or p90 is None:
            continue
        tests, limited, periods = counts[school_id]
        windows[school_id] = LongWindow(tests, median, p90, limited, periods)
    return windows


def rollup_work(retention_days: int) -> Callable[[Session, Callable[[], None]], str]:
    """The rollup job's work for `collector.jobs.PeriodicJob`."""

    def work(session: Session, keep_going: Callable[[], None]) -> str:
        now = datetime.now(UTC)
        run = roll_up(
            session=session, now=now, retention_days=retention_days, keep_going=keep_going
        )
        return run.describe()

    return work


@dataclass(frozen=True)
class LongUplinkPeak:
    """An uplink's busier-direction peak over complete days, from the daily rollups."""

    school_id: int
    device_id: int
    ifindex: int
    role: str
    rates: int
    p95_bps: float | None
    max_bps: float | None


def long_uplink_peaks(
    *, session: Session, start: datetime, end: datetime, school_ids: Collection[int] | None = None
) -> list[LongUplinkPeak]:
    """Each uplink's p95 (within `RELATIVE_ERROR`) and maximum over the days from `start`'s to
    before `end`'s."""
    u = UplinkRollup
    query = select(u.school_id, u.device_id, u.ifindex, u.role, u.rates, u.max_bps, u.sketch).where(
        u.period == "day", u.start >= floor_day(start), u.start < floor_day(end)
    )
    if school_ids is not None:
        query = query.where(u.school_id.in_(school_ids))
    merged: dict[tuple[int, int, str], tuple[int, Sketch, list[float]]] = {}
    for school_id, device_id, ifindex, role, rates, max_bps, text in session.execute(query):
        key = (device_id, ifindex, role)
        if key not in merged:
            merged[key] = (school_id, Sketch(), [0.0, 0.0])
        _, sketch, totals = merged[key]
        sketch.merge(text)
        totals[0] += rates
        totals[1] = max(totals[1], max_bps or 0.0)
    return [
        LongUplinkPeak(
            school_id=school_id,
            device_id=device_id,
            ifindex=ifindex,
            role=role,
            rates=int(totals[0]),
            p95_bps=sketch.nearest_rank(PEAK_PERCENTILE),
            max_bps=totals[1] if totals[0] else None,
        )
        for (device_id, ifindex, role), (school_id, sketch, totals) in sorted(merged.items())
    ]
