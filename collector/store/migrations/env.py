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
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Batch mode rebuilds a table by drop and rename: other tables' foreign keys to it
            # must not fire meanwhile. Outside a transaction, or SQLite ignores the pragma.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            # End the transaction SQLAlchemy opened for it, or Alembic would run inside it
            # and nothing would be committed.
            connection.commit()
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            # SQLite cannot ALTER most things: batch mode rebuilds tables instead.
            render_as_batch=sqlite,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()
    engine.dispose()


run_migrations_online()
