"""Alembic environment: runs migrations on the engine ReadyNet itself would use."""

from __future__ import annotations

from alembic import context

from collector.store.db import make_engine
from collector.store.models import Base

config = context.config
database_url: str = config.attributes["database_url"]


def run_migrations_online() -> None:
    engine = make_engine(database_url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            # SQLite cannot ALTER most things: batch mode rebuilds tables instead.
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
