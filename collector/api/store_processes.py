"""Result posts parsed and stored in helper processes, off the process that serves HTTP.

Why: parsing a batch (pydantic, in Rust, but building every value as a Python object) and
storing it hold the GIL for about 200 us a result. In one process that is one core, shared with
the event loop, whatever the machine has: a week's backlog drained at about 4,500 results a
second. Here a few store processes each take a whole group of posts (the bodies, as bytes), parse
and store it in one transaction on their own connection, and send back each post's receipt or
refusal. The serving process only reads bodies and writes answers.

On SQLite the processes take turns to write (one lock shared by all of them) but parse at the
same time, as the store threads of one process do (`collector.api.group_commit`).

The store processes die with the serving process, however it ends. A store process that dies
(killed, out of memory) fails the groups it had with `StoreRestarted`, answered 503 with
Retry-After: nothing of theirs was committed, or all of it was, and agents send the same ids
again, which is harmless. The next group gets fresh processes.

Processes are started from a fork server that has imported the store already (fast, and never a
fork of this threaded process), on the first post rather than at start-up.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import select
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import AbstractContextManager, nullcontext
from multiprocessing.process import BaseProcess

import anyio.to_thread
from sqlalchemy.orm import Session, sessionmaker

from collector.api.group_commit import Outcome, Parcel, StoreRestarted, parse_and_store
from collector.process import GC_THRESHOLDS
from collector.store.db import make_engine, make_session_factory

logger = logging.getLogger(__name__)

# Store processes yield the CPU to the serving process (and to the database server beside it):
# under 1,000 connections, with another process busy on a 2-core machine, its event loop fed
# the store too slowly at equal priority (0.93-0.96x the throughput of 8 connections, against
# 1.12-1.36x at niceness 5). A backlog drains as fast either way: the cores are shared only when
# something else wants them.
STORE_NICENESS = 5
# How long shutdown waits for the groups in hand (a group takes well under a second).
CLOSE_TIMEOUT_S = 10.0


class ProcessStore:
    """Groups parsed and stored by `processes` helper processes, one group each at a time."""

    def __init__(self, database_url: str, *, processes: int, serialize_writes: bool) -> None:
        self.concurrency: int | None = processes
        self._database_url = database_url
        self._context = multiprocessing.get_context("forkserver")
        # Imported once, in the fork server; each store process is a fork of it.
        self._context.set_forkserver_preload([__name__])
        self._serialize_writes = serialize_writes
        self._pool: ProcessPoolExecutor | None = None

    async def store(self, parcels: Sequence[Parcel]) -> list[Outcome]:
        pool = self._running_pool()
        try:
            # Handed over from a thread: the executor starts its processes inside submit(), and
            # the first one waits for the fork server to import the store (about a second), which
            # on the event loop held up every request, /healthz included.
            submitted = await anyio.to_thread.run_sync(pool.submit, _store_group, list(parcels))
            return await asyncio.wrap_future(submitted)
        except BrokenProcessPool as exc:
            if self._pool is pool:
                logger.error("a store process died; starting new ones")
                self._pool = None
                pool.shutdown(wait=False, cancel_futures=True)
            raise StoreRestarted("a store process died while storing this batch") from exc

    def pids(self) -> set[int]:
        """The store processes started so far (none before the first post)."""
        return set(_processes(self._pool))

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Let the groups in hand finish, then stop the processes; those still at work after
        `timeout_s` are killed (their groups are rolled back, and sent again by their agents)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        # The executor has no shutdown with a time limit.
        processes = list(_processes(pool).values())
        pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + timeout_s
        for process in processes:
            process.join(max(deadline - time.monotonic(), 0))
        for process in processes:
            if process.exitcode is None:
                logger.warning("store process %d still at work on shutdown: killed", process.pid)
                process.kill()
        pool.shutdown(wait=True)

    def _running_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.concurrency,
                mp_context=self._context,
                initializer=_start,
                # A fresh lock for each set of processes: one killed while writing never lets
                # go of the lock it held (the kernel drops its SQLite file lock, though).
                initargs=(
                    os.getpid(),
                    self._database_url,
                    self._context.Lock() if self._serialize_writes else None,
                ),
            )
        return self._pool


def _processes(pool: ProcessPoolExecutor | None) -> dict[int, BaseProcess]:
    """The executor's own table of its processes by pid: private, but there since Python 3.2."""
    return {} if pool is None else dict(pool._processes or {})


# A store process's own state, set by `_start`.
_sessions: sessionmaker[Session] | None = None
_write_lock: AbstractContextManager[object] = nullcontext()


def _start(
    serving_pid: int, database_url: str, write_lock: AbstractContextManager[object] | None
) -> None:
    global _sessions, _write_lock
    _die_with(serving_pid)
    os.nice(STORE_NICENESS)
    # The serving process handles Ctrl-C and SIGTERM and then closes the pool, letting the
    # groups in hand finish; a store process stopped by the terminal's SIGINT would fail them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    _sessions = make_session_factory(make_engine(database_url, workers=1))
    _write_lock = write_lock if write_lock is not None else nullcontext()


def _die_with(serving_pid: int) -> None:
    """Exit as soon as the serving process has: otherwise a store process whose server was
    killed waits for work for ever, holding its database connection (it holds its own queue's
    write end, so it never reads an end of file, and the fork server stays up for it)."""
    try:
        handle = os.pidfd_open(serving_pid)
    except (AttributeError, OSError):
        return  # not Linux 5.3 or later: store processes outlive a killed server there
    threading.Thread(
        target=_exit_when_readable, args=(handle,), name="exit-with-server", daemon=True
    ).start()


def _exit_when_readable(handle: int) -> None:
    # A pidfd becomes readable when its process exits; the thread sleeps in select() till then.
    select.select([handle], [], [])
    os._exit(1)


def _store_group(parcels: list[Parcel]) -> list[Outcome]:
    assert _sessions is not None, "store process not started"
    with _sessions() as session:
        return parse_and_store(session, parcels, _write_lock)
