"""The durable on-disk outbox: every result waits here until the collector has confirmed it.

SQLite in WAL mode, one row per measurement keyed by its id, so a result written twice is kept
once and a crash between upload and delete only causes a harmless duplicate upload (the
collector answers it as a duplicate). Delivery is at least once; nothing is dropped silently.

A result the collector refuses for good (invalid, or alone larger than its body limit) moves to
the `dead_letters` table with the reason, out of the way of the results behind it. The table is
created when an outbox of an older agent is opened; its rows stay where they are. The `meta`
table remembers the body limit the collector last advertised.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from pydantic import TypeAdapter

from agent.durable import open_durable
from agent.errors import OutboxError
from agent.wire import Measurement

_measurement = TypeAdapter(Measurement)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id TEXT PRIMARY KEY,
    queued_at TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id TEXT PRIMARY KEY,
    queued_at TEXT NOT NULL,
    failed_at TEXT NOT NULL,
    status INTEGER NOT NULL,
    reason TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

_BODY_LIMIT = "collector_max_body_bytes"


@dataclass(frozen=True)
class DeadLetter:
    id: str
    kind: str
    queued_at: datetime
    failed_at: datetime
    status: int
    reason: str


@dataclass(frozen=True)
class OutboxStatus:
    pending: int
    oldest_pending: datetime | None
    dead_letters: int
    newest_dead_letters: list[DeadLetter]


class Outbox:
    """Results awaiting delivery, in the order they were queued.

    Example:
        >>> with Outbox(tmp_path / "outbox.sqlite3") as outbox:
        ...     outbox.add([measurement])
        ...     outbox.pending(limit=500)
    """

    def __init__(self, path: Path) -> None:
        # A result the agent reported as queued survives a power cut.
        self._db = open_durable(path, _SCHEMA, error=OutboxError, what="outbox")

    def __enter__(self) -> Outbox:
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

    def add(self, measurements: Iterable[Measurement]) -> int:
        """Queue measurements; returns how many were new. Raises OutboxError (e.g. disk full)."""
        now = datetime.now(UTC).isoformat()
        rows = [(str(m.id), now, m.model_dump_json()) for m in measurements]
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                before = self._db.total_changes
                self._db.executemany("INSERT OR IGNORE INTO outbox VALUES (?, ?, ?)", rows)
                return self._db.total_changes - before
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot queue {len(rows)} results: {exc}") from exc

    def pending(self, *, limit: int) -> list[Measurement]:
        rows = self._db.execute(
            "SELECT payload FROM outbox ORDER BY queued_at, rowid LIMIT ?", (limit,)
        ).fetchall()
        return [_measurement.validate_json(payload) for (payload,) in rows]

    def pending_rows(self, *, limit: int) -> list[tuple[str, str]]:
        """The oldest `limit` results as stored: (id, JSON payload), not validated."""
        rows = self._db.execute(
            "SELECT id, payload FROM outbox ORDER BY queued_at, rowid LIMIT ?", (limit,)
        ).fetchall()
        return [(str(i), str(payload)) for i, payload in rows]

    def remove(self, ids: Sequence[uuid.UUID]) -> None:
        """Forget delivered results."""
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("DELETE FROM outbox WHERE id = ?", [(str(i),) for i in ids])
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot remove delivered results: {exc}") from exc

    def bury(self, ids: Sequence[uuid.UUID | str], *, status: int, reason: str) -> None:
        """Move results the collector refused for good to the dead letters, with the reason."""
        now = datetime.now(UTC).isoformat()
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                for i in ids:
                    self._db.execute(
                        "INSERT OR REPLACE INTO dead_letters"
                        " SELECT id, queued_at, ?, ?, ?, payload FROM outbox WHERE id = ?",
                        (now, status, reason, str(i)),
                    )
                    self._db.execute("DELETE FROM outbox WHERE id = ?", (str(i),))
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot set refused results aside: {exc}") from exc

    def dead_letters(self, *, limit: int) -> list[DeadLetter]:
        """The newest `limit` dead letters, newest first."""
        rows = self._db.execute(
            "SELECT id, json_extract(payload, '$.kind'), queued_at, failed_at, status, reason"
            " FROM dead_letters ORDER BY failed_at DESC, rowid DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            DeadLetter(
                id=i,
                kind=str(kind),
                queued_at=datetime.fromisoformat(queued),
                failed_at=datetime.fromisoformat(failed),
                status=int(status),
                reason=reason,
            )
            for i, kind, queued, failed, status, reason in rows
        ]

    def status(self, *, newest: int = 5) -> OutboxStatus:
        pending, oldest = self._db.execute("SELECT count(*), min(queued_at) FROM outbox").fetchone()
        (dead,) = self._db.execute("SELECT count(*) FROM dead_letters").fetchone()
        return OutboxStatus(
            pending=int(pending),
            oldest_pending=None if oldest is None else datetime.fromisoformat(oldest),
            dead_letters=int(dead),
            newest_dead_letters=self.dead_letters(limit=newest),
        )

    @property
    def body_limit(self) -> int | None:
        """The body limit the collector last advertised, None before it has said."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (_BODY_LIMIT,)).fetchone()
        return None if row is None else int(row[0])

    @body_limit.setter
    def body_limit(self, max_bytes: int) -> None:
        try:
            self._db.execute(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)", (_BODY_LIMIT, str(max_bytes))
            )
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot note the collector's body limit: {exc}") from exc

    def __len__(self) -> int:
        (count,) = self._db.execute("SELECT count(*) FROM outbox").fetchone()
        return int(count)
