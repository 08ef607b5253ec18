"""Periodic jobs that run once per period across every replica sharing the database.

N uvicorn workers or replicas each run a `PeriodicJob`; the database decides which one runs.
A job's row in `job_leases` is claimed with one conditional UPDATE (portable to SQLite and
PostgreSQL, where a concurrent claim re-checks the condition after the winner commits): only
when the job is due (`due_at`) and nobody holds a live lease (`lease_until`). The holder renews
the lease between chunks of work and, when done, releases it and sets the next `due_at` one
period on; a holder that dies simply stops renewing, and once its lease runs out the job is
claimed again (it is still due) and redone from the watermarks the work keeps. Each run is
recorded in `job_runs` (holder, start, end, outcome).

Stopping mirrors `collector.readiness.keeper.BoardKeeper`: cancel `run()`, then `close()`.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import anyio
import anyio.to_thread
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from collector.store.models import JobLease, JobRun

logger = logging.getLogger(__name__)

# A holder renews between chunks of work, each seconds long: a minute and a half of silence
# means it died (its chunk's transaction is rolled back and redone by the next holder).
LEASE_S = 90.0
# Replicas look whether a job is due at least this often, so a job runs at most this late.
MAX_CHECK_S = 30.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# The work: given a session and a function to call between chunks (it renews the lease and
# raises LeaseLost when another holder has it), returns a one-line account of what it did.
Work = Callable[[Session, Callable[[], None]], str]


class LeaseLost(RuntimeError):
    pass


def new_holder() -> str:
    """This runner's name in `job_leases`: host, process and a random part (unique per runner)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _now() -> datetime:
    return datetime.now(UTC)


def claim(
    *, session: Session, name: str, holder: str, lease_s: float, now: datetime | None = None
) -> bool:
    """Take the lease of job `name` if the job is due and nobody holds it; True if taken."""
    now = now or _now()
    if session.get(JobLease, name) is None:
        session.add(JobLease(name=name, holder=None, lease_until=_EPOCH, due_at=_EPOCH))
        try:
            session.commit()
        except IntegrityError:  # another replica added it first
            session.rollback()
    # End the read: on SQLite a read transaction that then writes fails at once if another
    # writer committed in between, while one that starts with its write waits its turn.
    session.commit()
    taken = session.execute(
        update(JobLease)
        .where(JobLease.name == name, JobLease.lease_until <= now, JobLease.due_at <= now)
        .values(holder=holder, lease_until=now + timedelta(seconds=lease_s))
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return bool(taken.rowcount == 1)  # type: ignore[attr-defined]


def renew(*, session: Session, name: str, holder: str, lease_s: float) -> bool:
    """Extend the lease `holder` holds; False if it is no longer theirs."""
    renewed = session.execute(
        update(JobLease)
        .where(JobLease.name == name, JobLease.holder == holder)
        .values(lease_until=_now() + timedelta(seconds=lease_s))
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return bool(renewed.rowcount == 1)  # type: ignore[attr-defined]


def release(*, session: Session, name: str, holder: str, next_due: datetime) -> None:
    """Give the lease up and make the job due again at `next_due`."""
    session.execute(
        update(JobLease)
        .where(JobLease.name == name, JobLease.holder == holder)
        .values(lease_until=_now(), due_at=next_due)
        .execution_options(synchronize_session=False)
    )
    session.commit()


class PeriodicJob:
    """Runs `work` every `interval_s` seconds, once across every runner on the database."""

    def __init__(
        self,
        name: str,
        work: Work,
        sessions: sessionmaker[Session],
        *,
        interval_s: float,
        lease_s: float = LEASE_S,
    ) -> None:
        self.name = name
        self.holder = new_holder()
        self._work = work
        self._sessions = sessions
        self._interval_s = interval_s
        self._lease_s = lease_s
        # Held by a run for as long as it has a session; `close()` takes it to stop them.
        self._running = threading.Lock()
        self._stopping = False
        self._closed = False

    async def run(self) -> None:
        # The first run one period after start: start-up (the readiness board's first
        # computation) has the database to itself, and a long period keeps the job off (a
        # benchmark measuring reads).
        await anyio.sleep(self._interval_s)
        failures = 0
        while True:
            try:
                await anyio.to_thread.run_sync(self.tick, abandon_on_cancel=True)
                failures = 0
            except Exception:
                failures += 1
                if math.log2(failures).is_integer():  # once per outage, not every period
                    logger.exception("job %s failed (%d times)", self.name, failures)
            await anyio.sleep(min(self._interval_s, MAX_CHECK_S))

    async def close(self, *, timeout_s: float) -> bool:
        """After `run()` is cancelled: wait for a run it abandoned, and start no more."""

        # A run in flight stops at its next chunk (keep_going raises).
        self._stopping = True

        def close() -> bool:
            if not self._running.acquire(timeout=timeout_s):
                return False
            self._closed = True
            self._running.release()
            return True

        return await anyio.to_thread.run_sync(close)

    def tick(self) -> bool:
        """Run the job now if it is due and the lease is ours; True if it ran."""
        with self._running:
            if self._closed:
                return False
            with self._sessions() as session:
                if not claim(
                    session=session, name=self.name, holder=self.holder, lease_s=self._lease_s
                ):
                    return False
                self._run(session)
                return True

    def _run(self, session: Session) -> None:
        started = _now()
        record = JobRun(name=self.name, holder=self.holder, started_at=started)
        session.add(record)
        session.commit()

        def keep_going() -> None:
            if self._stopping or not renew(
                session=session, name=self.name, holder=self.holder, lease_s=self._lease_s
            ):
                raise LeaseLost(f"job {self.name}: the lease is no longer {self.holder}'s")

        try:
            outcome = self._work(session, keep_going)
        except Exception as exc:
            session.rollback()
            self._finish(session, record, started, f"failed: {type(exc).__name__}: {exc}")
            raise
        self._finish(session, record, started, outcome)
        logger.info("job %s: %s", self.name, outcome)

    def _finish(self, session: Session, record: JobRun, started: datetime, outcome: str) -> None:
        record.finished_at = _now()
        record.outcome = outcome[:500]
        session.commit()
        # Due one period after this run started: once per period, however long it took.
        next_due = started + timedelta(seconds=self._interval_s)
        release(session=session, name=self.name, holder=self.holder, next_due=next_due)
