"""Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from collector.store.db import make_engine
from collector.store.migrate import is_at_head, upgrade_to_head
from collector.store.models import Base


def test_migrations_match_the_models(database_url: str) -> None:
    upgrade_to_head(database_url)
    engine = make_engine(database_url)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []
    assert is_at_head(engine, database_url)
    assert {"schools", "agents", "measurements", "throughput_results"} <= set(
        inspect(engine).get_table_names()
    )
    engine.dispose()


def test_migrate_twice_is_harmless(sqlite_url: str) -> None:
    upgrade_to_head(sqlite_url)
    upgrade_to_head(sqlite_url)
    engine = make_engine(sqlite_url)
    assert is_at_head(engine, sqlite_url)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()


def test_serve_refuses_an_unmigrated_database(sqlite_url: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "collector", "serve", "--port", "0"],
        env={"READYNET_COLLECTOR_DATABASE_URL": sqlite_url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "run `readynet-collector migrate` first" in proc.stderr
