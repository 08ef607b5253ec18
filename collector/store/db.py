"""Engine and session factory. SQLite gets WAL mode and foreign keys; PostgreSQL works as is."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

# Connections beyond the store gate's workers: the /readyz probe, the /metrics scrape and the
# readiness board's refresh.
RESERVED_CONNECTIONS = 3
# SQLite: WAL pages between automatic checkpoints, and the WAL file's size kept after one.
WAL_CHECKPOINT_PAGES = 10_000
WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024


def make_engine(database_url: str, *, workers: int = 4) -> Engine:
    """Create the engine for `database_url` (``sqlite:///path`` or ``postgresql+psycopg://...``).

    The pool holds `workers` + RESERVED_CONNECTIONS connections and never overflows: the store
    gate bounds the work, so waiting for a connection would mean a bug, and fails within 10 s.
    """
    pool = {"pool_size": workers + RESERVED_CONNECTIONS, "max_overflow": 0, "pool_timeout": 10}
    if database_url.startswith("sqlite"):
        engine = create_engine(
            database_url, connect_args={"check_same_thread": False, "timeout": 30}, **pool
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # JIT off: the collector's queries are short and its row estimates are rough, so PostgreSQL
    # compiled them for longer than they ran (101 of 384 ms for the default scrape's interface
    # read at 10,000 schools).
    engine = create_engine(
        database_url, pool_pre_ping=True, connect_args={"options": "-c jit=off"}, **pool
    )
    # Bulk inserts as multi-row INSERT ... VALUES pages rather than one statement per row:
    # psycopg's executemany sends rows one by one, about 10x slower for a batch of 100.
    engine.dialect.use_insertmanyvalues_wo_returning = True
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the API write while the metrics scrape reads.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # 64 MiB of page cache instead of 2: random UUID keys touch index pages all over the
    # b-tree, and ingest slowed by a fifth as the tables outgrew the default cache.
    cursor.execute("PRAGMA cache_size=-65536")
    # A checkpoint every 10,000 WAL pages (40 MiB) rather than SQLite's 1,000: each one copies
    # the pages written since the last, and the same index pages are written by batch after
    # batch, so checkpointing ten times less often copies far fewer pages. Storing a result of
    # a week's backlog: 105-110 -> 77-80 us in-process. The WAL file is cut back to 64 MiB
    # after a checkpoint, should a long read have let it grow past that.
    cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
    cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
    cursor.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def recorded_statements(engine: Engine) -> Iterator[list[str]]:
    """Every SQL statement `engine` sends inside the block, in order.

    For the tests and benchmarks that hold reads to a fixed number of statements.
    """
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)
