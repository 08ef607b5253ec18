"""The schedule's memory: every test round, its results' validity and the bytes it moved.

One SQLite file in the agent's state directory (WAL, synchronous FULL, as the outbox), so the
history the planner spreads tests by and the data ledger the budget is kept with both survive a
crash or a power cut. A round is written *before* it runs, charged at its estimate: a round cut
short by a crash still counts against the day's budget. Its results replace the estimate by the
bytes they moved; each result is counted once, however often it is recorded.

A round's day is its local date at the school (the caller says which), so the budget and the
per-day cap follow the school's calendar, not UTC's.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from types import TracebackType

from agent.durable import open_durable
from agent.errors import ScheduleStateError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    ticket INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at TEXT NOT NULL,
    day TEXT NOT NULL,
    estimate_bytes INTEGER NOT NULL,
    used_bytes INTEGER NOT NULL DEFAULT 0,
    results INTEGER NOT NULL DEFAULT 0,
    valid INTEGER NOT NULL DEFAULT 0,
    closed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS runs_by_day ON runs (day);
CREATE INDEX IF NOT EXISTS runs_by_start ON runs (started_at);
CREATE TABLE IF NOT EXISTS recorded (
    result_id TEXT PRIMARY KEY,
    ticket INTEGER NOT NULL
);
"""
# An open round is charged at least its estimate (it may still be moving bytes); a closed one
# exactly what its results moved. `:settled` is charged as closed: the figures a result carries.
_CHARGE = """
CASE WHEN closed OR ticket = :settled THEN used_bytes
     ELSE max(estimate_bytes, used_bytes) END
"""


@dataclass(frozen=True)
class Run:
    """One test round: when it started, on which local day, whether a result of it was valid."""

    ticket: int
    started_at: datetime
    day: date
    valid: bool
    charged_bytes: int


class RunLog:
    """The rounds of the last months and the bytes charged to each day.

    Example:
        >>> with RunLog(state_dir / "schedule.sqlite3") as log:
        ...     ticket = log.open_run(started_at=now, day=today, estimate_bytes=5e9)
        ...     log.add_result(ticket=ticket, result_id=r.id, bytes_moved=2.4e9, valid=True)
    """

    def __init__(self, path: Path) -> None:
        self._db = open_durable(path, _SCHEMA, error=ScheduleStateError, what="schedule state")

    def __enter__(self) -> RunLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def open_run(self, *, started_at: datetime, day: date, estimate_bytes: int) -> int:
        """A round about to start, charged at `estimate_bytes` until its results say; its ticket."""
        with self._write("cannot record a test round"):
            cursor = self._db.execute(
                "INSERT INTO runs (started_at, day, estimate_bytes) VALUES (?, ?, ?)",
                (_stamp(started_at), day.isoformat(), estimate_bytes),
            )
            assert cursor.lastrowid is not None
            return cursor.lastrowid

    def add_result(
        self, *, ticket: int, result_id: str, bytes_moved: int, valid: bool, close: bool = True
    ) -> bool:
        """Count one result of round `ticket`; False if it was counted before (nothing changes)."""
        with self._write("cannot record a test result"):
            if not self._claim(result_id, ticket):
                return False
            self._db.execute(
                "UPDATE runs SET used_bytes = used_bytes + ?, results = results + 1, "
                "valid = max(valid, ?), closed = max(closed, ?) WHERE ticket = ?",
                (bytes_moved, int(valid), int(close), ticket),
            )
            return True

    def add_unplanned(
        self, *, result_id: str, started_at: datetime, day: date, bytes_moved: int, valid: bool
    ) -> bool:
        """A result of a test the policy did not start (e.g. a manual run), as a closed round."""
        with self._write("cannot record a test result"):
            if self._db.execute(
                "SELECT 1 FROM recorded WHERE result_id = ?", (result_id,)
            ).fetchone():
                return False
            cursor = self._db.execute(
                "INSERT INTO runs (started_at, day, estimate_bytes, used_bytes, results, valid, "
                "closed) VALUES (?, ?, 0, ?, 1, ?, 1)",
                (_stamp(started_at), day.isoformat(), bytes_moved, int(valid)),
            )
            assert cursor.lastrowid is not None
            self._claim(result_id, cursor.lastrowid)
            return True

    def cancel(self, ticket: int) -> None:
        """Forget a round that never ran (no results yet): it costs and counts nothing."""
        with self._write("cannot cancel a test round"):
            self._db.execute("DELETE FROM runs WHERE ticket = ? AND results = 0", (ticket,))

    def runs_since(self, instant: datetime) -> list[Run]:
        rows = self._db.execute(
            f"SELECT ticket, started_at, day, valid, {_CHARGE} FROM runs "
            "WHERE started_at >= :since ORDER BY started_at",
            {"since": _stamp(instant), "settled": None},
        ).fetchall()
        return [
            Run(t, datetime.fromisoformat(s), date.fromisoformat(d), bool(v), c)
            for t, s, d, v, c in rows
        ]

    def runs_on(self, day: date) -> int:
        (count,) = self._db.execute(
            "SELECT count(*) FROM runs WHERE day = ?", (day.isoformat(),)
        ).fetchone()
        return int(count)

    def charged_bytes(self, day: date, *, settled: int | None = None) -> int:
        """Bytes charged to `day`; round `settled` at what its results moved so far."""
        (total,) = self._db.execute(
            f"SELECT coalesce(sum({_CHARGE}), 0) FROM runs WHERE day = :day",
            {"day": day.isoformat(), "settled": settled},
        ).fetchone()
        return int(total)

    def day_of(self, ticket: int) -> date | None:
        row = self._db.execute("SELECT day FROM runs WHERE ticket = ?", (ticket,)).fetchone()
        return None if row is None else date.fromisoformat(row[0])

    def forget_before(self, instant: datetime) -> None:
        """Drop rounds older than `instant`: the file stays small over years."""
        with self._write("cannot prune the schedule state"):
            stamp = _stamp(instant)
            self._db.execute(
                "DELETE FROM recorded WHERE ticket IN "
                "(SELECT ticket FROM runs WHERE started_at < ?)",
                (stamp,),
            )
            self._db.execute("DELETE FROM runs WHERE started_at < ?", (stamp,))

    def _claim(self, result_id: str, ticket: int) -> bool:
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO recorded (result_id, ticket) VALUES (?, ?)", (result_id, ticket)
        )
        return cursor.rowcount == 1

    @contextmanager
    def _write(self, what: str) -> Iterator[None]:
        """One BEGIN IMMEDIATE ... COMMIT, rolled back on any error; sqlite3 errors become ours."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise ScheduleStateError(f"{what}: {exc}") from exc


def _stamp(instant: datetime) -> str:
    # Fixed width, so text order is time order in the indexes.
    if instant.tzinfo is None:
        raise ValueError("instants must be timezone-aware")
    return instant.astimezone(UTC).isoformat(timespec="microseconds")
