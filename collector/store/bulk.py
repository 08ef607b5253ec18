"""Bulk row writes: COPY on PostgreSQL, the driver's own executemany on SQLite.

Measured on this project's ingest: psycopg sends an executemany row by row, and the multi-row
INSERT that SQLAlchemy can build instead is re-parsed by psycopg on every call (long statements
are not cached), about 3.5 ms a page; COPY streams the same rows at a fraction of that cost. On
SQLite, SQLAlchemy's per-row parameter handling cost more than sqlite3's executemany itself.
Both paths apply the columns' bind processing, so stored values are what SQLAlchemy would store.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy import Connection, Dialect, Table, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.types import TypeEngine

from collector.store.models import UtcDateTime

Row = Sequence[Any]


def insert_rows(
    connection: Connection, table: Table, columns: Sequence[str], rows: Sequence[Row]
) -> None:
    """Insert `rows` (tuples of values for `columns`, named as in `table`) into `table`."""
    if not rows:
        return
    if connection.dialect.name == "postgresql":
        _copy(connection, table, columns, rows)
    else:
        _executemany(connection, table, columns, rows)


def _executemany(
    connection: Connection, table: Table, names: Sequence[str], rows: Sequence[Row]
) -> None:
    # The DB-API's own executemany, in C for sqlite3: SQLAlchemy's per-row parameter handling
    # was most of the ingest CPU.
    quote = connection.dialect.identifier_preparer.quote
    statement = (
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) "
        f"VALUES ({', '.join('?' for _ in names)})"
    )
    values = _values(connection, table, names)
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(statement, [values(row) for row in rows])
    except connection.dialect.loaded_dbapi.IntegrityError as exc:
        raise IntegrityError(statement, None, exc) from exc
    finally:
        cursor.close()


def _copy(connection: Connection, table: Table, names: Sequence[str], rows: Sequence[Row]) -> None:
    quote = connection.dialect.identifier_preparer.quote
    statement = f"COPY {quote(table.name)} ({', '.join(quote(n) for n in names)}) FROM STDIN"
    values = _values(connection, table, names)
    dbapi: psycopg.Connection[Any] = connection.connection.dbapi_connection  # type: ignore[assignment]
    try:
        with dbapi.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(values(row))
    except (psycopg.IntegrityError, psycopg.errors.DeadlockDetected) as exc:
        # As SQLAlchemy would have raised it: callers retry a batch that raced its own retry.
        # Two transactions inserting the same keys in different orders wait on each other's
        # unique-index check, and PostgreSQL fails one with a deadlock: the same collision,
        # retried the same way (seen with two store processes storing overlapping retries).
        raise IntegrityError(statement, None, exc) from exc


def reserve_ids(connection: Connection, table: Table, column: str, count: int) -> list[int]:
    """`count` fresh values of a PostgreSQL serial/identity column, for rows written by COPY."""
    sequence = f"pg_get_serial_sequence('{table.name}', '{column}')"
    query = text(f"SELECT nextval({sequence}) FROM generate_series(1, :count)")
    return [int(value) for value in connection.scalars(query, {"count": count})]


def _values(connection: Connection, table: Table, names: Sequence[str]) -> Callable[[Row], Row]:
    """A row's values as SQLAlchemy would bind them for this driver (UTC times, Counter64 bit
    patterns; on SQLite also UUIDs and times as text)."""
    dialect = connection.dialect
    # The dialect's own type, as SQLAlchemy binds it: on SQLite a time goes in as
    # '2026-12-04 07:25:37.000000', the text every comparison binds too; the generic type's
    # processor gave '2026-12-04 07:25:37+00:00', which sorts apart from it at the same second.
    processors = [
        (i, process)
        for i, name in enumerate(names)
        if (process := _bind_processor(table.c[name].type, dialect)) is not None
    ]
    if not processors:
        return lambda row: row

    def values(row: Row) -> Row:
        bound = list(row)
        for i, process in processors:
            bound[i] = process(bound[i])
        return bound

    return values


def _bind_processor(column_type: TypeEngine[Any], dialect: Dialect) -> Callable[[Any], Any] | None:
    if dialect.name == "sqlite" and isinstance(column_type, UtcDateTime):
        return _sqlite_utc_text
    return column_type.dialect_impl(dialect).bind_processor(dialect)


@functools.lru_cache(maxsize=4096)
def _sqlite_utc_text(value: datetime | None) -> str | None:
    """A time as SQLAlchemy's SQLite dialect binds a UtcDateTime ('2026-12-04 07:25:37.000000'),
    in C: its own formatting, a dict and a %-format per value, was a twentieth of storing a
    result, three times over for a poll.

    Remembered: a batch repeats a few instants (its arrival time on every result, one polling
    round's time on every switch of it), and converting one took 2.2 us against 0.1 to look it
    up. Equal instants in other zones share the UTC text; a naive time raises and is not kept.
    """
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
