"""The durable on-disk outbox: every result waits here until the collector has confirmed it.

SQLite in WAL mode, one row per measurement keyed by its id, so a result written twice is kept
once and a crash between upload and delete only causes a harmless duplicate upload (the
collector answers it as a duplicate). Delivery is at least once; nothing is dropped silently.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterable, Sequence
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
)
"""


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

    def remove(self, ids: Sequence[uuid.UUID]) -> None:
        """Forget delivered results."""
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("DELETE FROM outbox WHERE id = ?", [(str(i),) for i in ids])
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot remove delivered results: {exc}") from exc

    def __len__(self) -> int:
        (count,) = self._db.execute("SELECT count(*) FROM outbox").fetchone()
        return int(count)
