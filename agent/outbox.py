"""The durable on-disk outbox: every result waits here until the collector has confirmed it.

SQLite in WAL mode, one row per measurement keyed by its id, so a result written twice is kept
once and a crash between upload and delete only causes a harmless duplicate upload (the
collector answers it as a duplicate). Delivery is at least once, in the order results were
queued; nothing is dropped silently.

A result the collector refuses for good (invalid, or alone larger than its body limit) moves to
the `dead_letters` table with the reason, out of the way of the results behind it; a person may
move it back (`requeue`, e.g. once the collector is upgraded) or `purge` it. The `meta` table
remembers the body limit the collector last advertised and the counters below.

**Size cap.** The queued results' JSON may take `max_bytes` (counted as results come and go, in
`meta`: no scan of the table). When adding results would pass it, room is made oldest first:

1. the oldest SNMP polls are summarised: the device's totals (uptime, Wi-Fi clients, APs up and
   known) and its uplinks (interfaces with a `role`) stay, the other interfaces and the per-AP
   and per-SSID rows go. The summary is the same wire type (`SnmpPoll`) with shorter lists; the
   wire has no field to mark it, so the outbox counts it and remembers how far it has got;
2. then the oldest polls are dropped;
3. throughput and latency tests are dropped last.

The new results themselves are always kept. Dead letters are capped by count
(`dead_letters_max`, oldest dropped). Every summarised or dropped result is counted by kind in
`meta` and shown by `status()` (so by `readynet-agent outbox` and the heartbeat).

A full disk is an OutboxError naming the outbox and "disk full"; SQLite rolls the transaction
back, so what was stored before stays intact, and the outbox works again once there is room.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, NamedTuple

from pydantic import TypeAdapter

from agent.durable import open_durable
from agent.errors import OutboxError
from agent.wire import Measurement, SnmpPoll

if TYPE_CHECKING:
    from agent.settings import OutboxSettings

_measurement: TypeAdapter[Measurement] = TypeAdapter(Measurement)

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

MB = 1_000_000
# The defaults of agent.settings.OutboxSettings.
DEFAULT_MAX_BYTES = 200 * MB
DEFAULT_DEAD_LETTERS_MAX = 10_000

# meta keys. Counters by kind are the prefix + the result's kind.
_BODY_LIMIT = "collector_max_body_bytes"
_BYTES = "queued_bytes"
_DELIVERED = "delivered_total"
_LAST_DELIVERED = "last_delivered_at"
_SUMMARISED = "summarised:"
_DROPPED = "dropped:"
_DEAD_DROPPED = "dead_letters_dropped"
# Polls up to this rowid have been summarised already (or were not polls).
_SUMMARISED_THROUGH = "summarised_through_rowid"

# Rows looked at per step when making room, so a full outbox is never read into memory at once.
_CHUNK = 256
# Ids per `IN (...)` list (SQLite allows 32,766 variables since 3.32; stay well under).
_IDS_PER_QUERY = 500
# A kind the outbox cannot read (not JSON): counted under this name when dropped.
UNREADABLE = "unreadable"


@dataclass(frozen=True)
class DeadLetter:
    id: str
    kind: str
    queued_at: datetime
    failed_at: datetime
    status: int
    reason: str


class Queued(NamedTuple):
    """One queued result as stored: its id, its JSON, and its place in the queue."""

    id: str
    payload: bytes
    rowid: int


@dataclass(frozen=True)
class OutboxStatus:
    pending: int
    oldest_pending: datetime | None
    dead_letters: int
    newest_dead_letters: list[DeadLetter]
    # The queued results' JSON, and the cap it is held under.
    bytes: int = 0
    max_bytes: int = DEFAULT_MAX_BYTES
    # Results summarised or dropped to stay under the cap, by kind (only polls are summarised).
    summarised: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    dead_letters_max: int = DEFAULT_DEAD_LETTERS_MAX
    dead_letters_dropped: int = 0
    # Results the collector has confirmed, ever, and when it last confirmed one.
    delivered_total: int = 0
    last_delivered_at: datetime | None = None


class Outbox:
    """Results awaiting delivery, in the order they were queued.

    Example:
        >>> with Outbox(tmp_path / "outbox.sqlite3", max_bytes=200 * MB) as outbox:
        ...     outbox.add([measurement])
        ...     outbox.pending(limit=500)
    """

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        dead_letters_max: int = DEFAULT_DEAD_LETTERS_MAX,
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.dead_letters_max = dead_letters_max
        # A result the agent reported as queued survives a power cut.
        self._db = open_durable(path, _SCHEMA, error=OutboxError, what="outbox")
        if self._meta(_BYTES) is None:
            # An outbox of an older agent: its size is counted once, then kept up to date.
            with self._writing("cannot measure the outbox"):
                (size,) = self._db.execute(
                    "SELECT coalesce(sum(length(CAST(payload AS BLOB))), 0) FROM outbox"
                ).fetchone()
                self._set_meta(_BYTES, int(size))

    @classmethod
    def configured(cls, path: Path, limits: OutboxSettings) -> Outbox:
        """The outbox at `path` under the agent's `outbox` settings (max_mb, dead_letters_max)."""
        return cls(
            path, max_bytes=round(limits.max_mb * MB), dead_letters_max=limits.dead_letters_max
        )

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

    # --- queueing and delivery ---------------------------------------------------------------

    def add(self, measurements: Iterable[Measurement]) -> int:
        """Queue measurements, making room under the cap first; returns how many were new.

        Raises OutboxError (e.g. disk full: then nothing of this call is stored).
        """
        now = datetime.now(UTC).isoformat()
        rows = {str(m.id): m.model_dump_json() for m in measurements}
        with self._writing(f"cannot queue {len(rows)} results"):
            for known in self._existing(list(rows)):
                del rows[known]
            if not rows:
                return 0
            incoming = sum(len(payload.encode()) for payload in rows.values())
            self._make_room(self._meta_int(_BYTES) + incoming - self.max_bytes)
            self._before_new_rows()
            self._db.executemany(
                "INSERT OR IGNORE INTO outbox VALUES (?, ?, ?)",
                [(i, now, payload) for i, payload in rows.items()],
            )
            self._count(_BYTES, incoming)
            return len(rows)

    def pending(self, *, limit: int) -> list[Measurement]:
        return [
            _measurement.validate_json(payload) for _, payload in self.pending_rows(limit=limit)
        ]

    def pending_rows(self, *, limit: int) -> list[tuple[str, str]]:
        """The oldest `limit` results as stored: (id, JSON payload), not validated."""
        # rowid order is queue order (a new row's rowid is above every row's there), and reads
        # no row it does not return: ordering by queued_at read every payload of the table.
        rows = self._db.execute(
            "SELECT id, payload FROM outbox ORDER BY rowid LIMIT ?", (limit,)
        ).fetchall()
        return [(str(i), str(payload)) for i, payload in rows]

    def next_batch(self, *, limit: int, max_bytes: int, after: int = 0) -> list[Queued]:
        """The oldest results queued after `after` (a `Queued.rowid`; 0: from the start), as
        stored, for a batch: at most `limit` of them, read until their JSON passes `max_bytes`
        (so at least one). The row that passes it is included: the caller decides whether it
        fits. Bytes, not text: a batch of large polls is held once, not as text and again as
        the body."""
        batch: list[Queued] = []
        total = 0
        cursor = self._db.execute(
            "SELECT id, CAST(payload AS BLOB), rowid FROM outbox WHERE rowid > ?"
            " ORDER BY rowid LIMIT ?",
            (after, limit),
        )
        try:
            for row_id, payload, rowid in cursor:
                batch.append(Queued(str(row_id), bytes(payload), int(rowid)))
                total += len(payload)
                if total > max_bytes:
                    break
        finally:
            cursor.close()
        return batch

    def remove(self, ids: Sequence[uuid.UUID | str]) -> None:
        """Forget delivered results (counted as delivered).

        Not synced to disk on its own (the next queueing syncs it): a power cut may forget that
        the last batches were delivered, and they are sent again, answered as duplicates. An
        fsync per batch was a third of the agent's time draining small results.
        """
        keys = [str(i) for i in ids]
        with self._writing("cannot remove delivered results", synced=False):
            removed = freed = 0
            for start in range(0, len(keys), _IDS_PER_QUERY):
                chunk = keys[start : start + _IDS_PER_QUERY]
                marks = ",".join("?" * len(chunk))
                sizes = self._db.execute(
                    f"DELETE FROM outbox WHERE id IN ({marks})"
                    " RETURNING length(CAST(payload AS BLOB))",
                    chunk,
                ).fetchall()
                removed += len(sizes)
                freed += sum(int(size) for (size,) in sizes)
            if removed:
                self._shrunk(freed)
                self._count(_DELIVERED, removed)
                self._set_meta(_LAST_DELIVERED, datetime.now(UTC).isoformat())

    # --- dead letters ------------------------------------------------------------------------

    def bury(self, ids: Sequence[uuid.UUID | str], *, status: int, reason: str) -> None:
        """Move results the collector refused for good to the dead letters, with the reason."""
        now = datetime.now(UTC).isoformat()
        with self._writing("cannot set refused results aside"):
            freed = 0
            for i in ids:
                self._db.execute(
                    "INSERT OR REPLACE INTO dead_letters"
                    " SELECT id, queued_at, ?, ?, ?, payload FROM outbox WHERE id = ?",
                    (now, status, reason, str(i)),
                )
                row = self._db.execute(
                    "DELETE FROM outbox WHERE id = ? RETURNING length(CAST(payload AS BLOB))",
                    (str(i),),
                ).fetchone()
                freed += 0 if row is None else int(row[0])
            self._shrunk(freed)
            (count,) = self._db.execute("SELECT count(*) FROM dead_letters").fetchone()
            excess = int(count) - self.dead_letters_max
            if excess > 0:
                self._db.execute(
                    "DELETE FROM dead_letters WHERE rowid IN"
                    " (SELECT rowid FROM dead_letters ORDER BY failed_at, rowid LIMIT ?)",
                    (excess,),
                )
                self._count(_DEAD_DROPPED, excess)

    def dead_letters(self, *, limit: int) -> list[DeadLetter]:
        """The newest `limit` dead letters, newest first."""
        rows = self._db.execute(
            "SELECT id, iif(json_valid(payload), json_extract(payload, '$.kind'), ?),"
            " queued_at, failed_at, status, reason"
            " FROM dead_letters ORDER BY failed_at DESC, rowid DESC LIMIT ?",
            (UNREADABLE, limit),
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

    def requeue(self, ids: Sequence[str] | None = None) -> int:
        """Move dead letters (these ids, or all when None) back to the end of the queue;
        returns how many moved. They are sent again as they were stored."""
        with self._writing("cannot requeue dead letters"):
            chosen = self._chosen_dead_letters(ids)
            if not chosen:
                return 0
            self._before_new_rows()
            moved = size = 0
            for i in chosen:
                row = self._db.execute(
                    "INSERT OR IGNORE INTO outbox SELECT id, queued_at, payload FROM dead_letters"
                    " WHERE id = ? RETURNING length(CAST(payload AS BLOB))",
                    (i,),
                ).fetchone()
                if row is not None:
                    moved += 1
                    size += int(row[0])
                self._db.execute("DELETE FROM dead_letters WHERE id = ?", (i,))
            self._count(_BYTES, size)
            return moved

    def purge(
        self, ids: Sequence[str] | None = None, *, older_than: timedelta | None = None
    ) -> int:
        """Delete dead letters: these ids, or those that failed over `older_than` ago, or all
        (neither given); returns how many."""
        with self._writing("cannot purge dead letters"):
            if older_than is not None:
                before = (datetime.now(UTC) - older_than).isoformat()
                cursor = self._db.execute("DELETE FROM dead_letters WHERE failed_at < ?", (before,))
                return cursor.rowcount
            chosen = self._chosen_dead_letters(ids)
            self._db.executemany("DELETE FROM dead_letters WHERE id = ?", [(i,) for i in chosen])
            return len(chosen)

    def _chosen_dead_letters(self, ids: Sequence[str] | None) -> list[str]:
        if ids is None:
            return [
                str(i) for (i,) in self._db.execute("SELECT id FROM dead_letters ORDER BY rowid")
            ]
        return self._existing(list(ids), table="dead_letters")

    # --- what it holds -----------------------------------------------------------------------

    def status(self, *, newest: int = 5) -> OutboxStatus:
        pending, oldest = self._db.execute("SELECT count(*), min(queued_at) FROM outbox").fetchone()
        (dead,) = self._db.execute("SELECT count(*) FROM dead_letters").fetchone()
        meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        last = meta.get(_LAST_DELIVERED)
        return OutboxStatus(
            pending=int(pending),
            oldest_pending=None if oldest is None else datetime.fromisoformat(oldest),
            dead_letters=int(dead),
            newest_dead_letters=self.dead_letters(limit=newest),
            bytes=int(meta.get(_BYTES, 0)),
            max_bytes=self.max_bytes,
            summarised=_by_kind(meta, _SUMMARISED),
            dropped=_by_kind(meta, _DROPPED),
            dead_letters_max=self.dead_letters_max,
            dead_letters_dropped=int(meta.get(_DEAD_DROPPED, 0)),
            delivered_total=int(meta.get(_DELIVERED, 0)),
            last_delivered_at=None if last is None else datetime.fromisoformat(last),
        )

    @property
    def body_limit(self) -> int | None:
        """The body limit the collector last advertised, None before it has said."""
        value = self._meta(_BODY_LIMIT)
        return None if value is None else int(value)

    @body_limit.setter
    def body_limit(self, max_bytes: int) -> None:
        with self._writing("cannot note the collector's body limit"):
            self._set_meta(_BODY_LIMIT, max_bytes)

    def __len__(self) -> int:
        (count,) = self._db.execute("SELECT count(*) FROM outbox").fetchone()
        return int(count)

    # --- the size cap ------------------------------------------------------------------------

    def _make_room(self, excess: int) -> None:
        """Free at least `excess` bytes of queued JSON by the policy (module docstring)."""
        if excess > 0:
            excess -= self._summarise_oldest_polls(excess)
        if excess > 0:
            excess -= self._drop_oldest(excess, only="snmp_poll")
        if excess > 0:
            self._drop_oldest(excess, only=None)

    def _summarise_oldest_polls(self, wanted: int) -> int:
        """Summarise polls oldest first until `wanted` bytes are freed; the bytes freed."""
        freed = summarised = 0
        through = self._meta_int(_SUMMARISED_THROUGH)
        while freed < wanted:
            rows = self._db.execute(
                "SELECT rowid, payload FROM outbox WHERE rowid > ? ORDER BY rowid LIMIT ?",
                (through, _CHUNK),
            ).fetchall()
            if not rows:
                break
            for rowid, payload in rows:
                through = rowid
                summary = _summary(payload)
                if summary is not None:
                    self._db.execute(
                        "UPDATE outbox SET payload = ? WHERE rowid = ?", (summary, rowid)
                    )
                    freed += len(payload.encode()) - len(summary.encode())
                    summarised += 1
                    if freed >= wanted:
                        break
        self._set_meta(_SUMMARISED_THROUGH, through)
        if summarised:
            self._count(_SUMMARISED + "snmp_poll", summarised)
            self._shrunk(freed)
        return freed

    def _drop_oldest(self, wanted: int, *, only: str | None) -> int:
        """Delete the oldest results (of kind `only`, or any) until `wanted` bytes are freed."""
        cursor = self._db.execute(
            "SELECT rowid, kind, size FROM (SELECT rowid,"
            " iif(json_valid(payload), json_extract(payload, '$.kind'), ?) AS kind,"
            " length(CAST(payload AS BLOB)) AS size FROM outbox ORDER BY rowid)"
            " WHERE ? IS NULL OR kind = ?",
            (UNREADABLE, only, only),
        )
        doomed: list[int] = []
        kinds: dict[str, int] = {}
        freed = 0
        while freed < wanted and (rows := cursor.fetchmany(_CHUNK)):
            for rowid, kind, size in rows:
                doomed.append(rowid)
                kinds[str(kind)] = kinds.get(str(kind), 0) + 1
                freed += int(size)
                if freed >= wanted:
                    break
        cursor.close()
        self._db.executemany("DELETE FROM outbox WHERE rowid = ?", [(r,) for r in doomed])
        for kind, count in kinds.items():
            self._count(_DROPPED + kind, count)
        self._shrunk(freed)
        return freed

    def _before_new_rows(self) -> None:
        # New rows take rowids above the highest now; if that is below how far summaries have
        # got (the newest rows were delivered or dropped), the mark comes back to it.
        (highest,) = self._db.execute("SELECT coalesce(max(rowid), 0) FROM outbox").fetchone()
        if self._meta_int(_SUMMARISED_THROUGH) > highest:
            self._set_meta(_SUMMARISED_THROUGH, highest)

    def _shrunk(self, freed: int) -> None:
        if not self._db.execute("SELECT 1 FROM outbox LIMIT 1").fetchone():
            # Empty: the count starts again from nothing (no drift can outlive the queue).
            self._set_meta(_BYTES, 0)
        else:
            self._set_meta(_BYTES, max(0, self._meta_int(_BYTES) - freed))

    # --- plumbing ----------------------------------------------------------------------------

    @contextmanager
    def _writing(self, what: str, *, synced: bool = True) -> Iterator[None]:
        """One write transaction; any SQLite error is an OutboxError naming the outbox.

        `synced=False`: committed without its own fsync (WAL with synchronous NORMAL); it
        reaches the disk with the next synced commit, or may be lost with a power cut.
        """
        try:
            if not synced:
                self._db.execute("PRAGMA synchronous=NORMAL")
            try:
                with self._db:
                    self._db.execute("BEGIN IMMEDIATE")
                    yield
            finally:
                if not synced:
                    self._db.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            raise OutboxError(f"{what}: outbox {self.path}: {_reason(exc)}") from exc

    def _existing(self, ids: list[str], *, table: str = "outbox") -> list[str]:
        found: list[str] = []
        for start in range(0, len(ids), _IDS_PER_QUERY):
            chunk = ids[start : start + _IDS_PER_QUERY]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT id FROM {table} WHERE id IN ({marks})"
            found += [str(i) for (i,) in self._db.execute(query, chunk)]
        return found

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _meta_int(self, key: str) -> int:
        return int(self._meta(key) or 0)

    def _set_meta(self, key: str, value: object) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, str(value)))

    def _count(self, key: str, by: int) -> None:
        self._set_meta(key, self._meta_int(key) + by)


def _summary(payload: str) -> str | None:
    """The payload of a poll without its per-interface and per-AP detail, or None when it is
    not a poll, cannot be read, or has no detail to drop."""
    if '"snmp_poll"' not in payload:
        return None
    try:
        poll = _measurement.validate_json(payload)
    except ValueError:
        return None
    if not isinstance(poll, SnmpPoll):
        return None
    uplinks = [i for i in poll.interfaces if i.role is not None]
    if len(uplinks) == len(poll.interfaces) and not poll.aps and not poll.ssids:
        return None
    # The totals stay as the poller derived them; derived here only if an older agent did not.
    clients = poll.clients
    if clients is None and poll.ssids:
        clients = _sum([s.clients for s in poll.ssids])
    aps_up = poll.aps_up
    if aps_up is None and poll.aps:
        aps_up = sum(1 for a in poll.aps if a.up is not False)
    summary = poll.model_copy(
        update={
            "interfaces": uplinks,
            "aps": [],
            "ssids": [],
            "clients": clients,
            "aps_up": aps_up,
            "aps_total": poll.aps_total
            if poll.aps_total is not None or not poll.aps
            else len(poll.aps),
        }
    )
    return summary.model_dump_json()


def _sum(values: list[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _by_kind(meta: dict[str, str], prefix: str) -> dict[str, int]:
    return {k.removeprefix(prefix): int(v) for k, v in meta.items() if k.startswith(prefix)}


def _reason(exc: sqlite3.Error) -> str:
    if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "full" in str(exc):
        return f"disk full ({exc})"
    return str(exc)
