"""Process-wide settings of the collector: interpreter scheduling, garbage collection, files.

One process serves HTTP on its event loop and runs the store's work in threads, all under one
GIL (result posts are parsed and stored in helper processes, `collector.api.store_processes`,
which take the same garbage-collection settings); these settings keep that process responsive
under load. `serve` applies them once at start.
"""

from __future__ import annotations

import gc
import resource
import sys
from dataclasses import dataclass

# The event loop shares the GIL with the store's worker threads: a shorter switch interval lets
# it answer (e.g. /healthz) between their slices instead of after 5 ms ones. Python's own 5 ms
# drained a backlog of large polls 8 % faster, but under 1,000 connections (test_load, in CI on
# PostgreSQL) the loop then fed the store too slowly: 0.69x the throughput of 8, against 0.8.
SWITCH_INTERVAL_S = 0.001
# Collect the youngest generation every 10,000 allocations instead of 700, and the older ones
# 5x less often: a 600-interface batch allocates thousands of objects that all survive until
# stored, and with the defaults the collector re-scanned its long-lived objects (the readiness
# board, SQLAlchemy's caches) over and over; parsing such a batch took 4 ms instead of 1.4 ms.
# 100,000 took a week's backlog of 48-port polls from 6 % of the collector's CPU collecting to
# under 1 %, but a clean-clone CI run with it then missed test_load's 0.8x throughput at 1,000
# connections (0.80x, rounded up); kept at 10,000 until that is understood.
GC_THRESHOLDS = (10_000, 50, 50)
# Descriptors kept out of max_connections: listening socket, database pool, logs, event loop.
RESERVED_FILES = 64
# uvicorn's listen backlog. asyncio accepts up to this many connections in one go, and takes
# the next batch before the last one has been answered and closed: with room for one batch on
# top of the open connections, a burst still made accept() fail on 1,024 files; with four, none.
DEFAULT_BACKLOG = 2048
ACCEPT_BATCHES_IN_FLIGHT = 4
# Where the soft limit goes when the hard one is unlimited (Linux's default fs.nr_open).
UNLIMITED_FILES_TARGET = 1 << 20


def tune_interpreter() -> None:
    """Switch interval and garbage collection for a server process; call once, after imports."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    # Everything alive now (modules, the app, its settings) lives for the whole process: keep it
    # out of every future collection.
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


@dataclass(frozen=True)
class OpenFilesLimit:
    before: int
    soft: int
    hard: int


def raise_open_files_limit() -> OpenFilesLimit:
    """Lift this process's soft RLIMIT_NOFILE to its hard limit: each connection holds one."""
    before, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = UNLIMITED_FILES_TARGET if hard == resource.RLIM_INFINITY else hard
    if before != resource.RLIM_INFINITY and before < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass  # the kernel's fs.nr_open is lower: keep what we have, build_config adapts
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return OpenFilesLimit(before=before, soft=soft, hard=hard)


@dataclass(frozen=True)
class Fit:
    max_connections: int
    backlog: int


def fit_to_open_files(max_connections: int, open_files: int) -> Fit:
    """`max_connections` and the backlog, lowered if need be to fit in `open_files`.

    Otherwise accept() fails with EMFILE, asyncio stops accepting for a second at a time, and
    every new client waits, health checks included: refusing some with 503 is better.
    """
    needed = max_connections + ACCEPT_BATCHES_IN_FLIGHT * DEFAULT_BACKLOG + RESERVED_FILES
    if open_files == resource.RLIM_INFINITY or open_files >= needed:
        return Fit(max_connections, DEFAULT_BACKLOG)
    # Half for connections, half for accept bursts.
    usable = max(open_files - RESERVED_FILES, 2)
    backlog = max(usable // (2 * ACCEPT_BATCHES_IN_FLIGHT), 1)
    bursts = ACCEPT_BATCHES_IN_FLIGHT * backlog
    return Fit(max(min(max_connections, usable - bursts), 1), backlog)
