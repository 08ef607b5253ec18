"""Bulk row writes: COPY on PostgreSQL, the driver's own executemany on SQLite.

Measured on this project's ingest: psycopg sends an executemany row by row, and the multi-row
INSERT that SQLAlchemy can build instead is re-parsed by psycopg on every call (long statements
are not cached), about 3.5 ms a page; COPY streams the same rows at a fraction of that cost. On
SQLite, SQLAlchemy's per-row parameter handling cost more than sqlite3's executemany itself.
Both paths apply the columns' bind processing, so stored values are what the ORM would store.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from sqlalchemy import Connection, Table, TypeDecorator, text
from sqlalchemy.exc import IntegrityError


def insert_rows(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert `rows` (dicts with the same keys, named as `table`'s columns) into `table`."""
    if not rows:
        return
    if connection.dialect.name == "postgresql":
        _copy(connection, table, rows)
    else:
        _executemany(connection, table, rows)


def _executemany(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    # The DB-API's own executemany, in C for sqlite3: SQLAlchemy's per-row parameter handling
    # was most of the ingest CPU. Values go through the columns' own bind processors first.
    names = list(rows[0])
    processors = [_bind_processor(table, name, connection) for name in names]
    quote = connection.dialect.identifier_preparer.quote
    statement = (
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) "
        f"VALUES ({', '.join('?' for _ in names)})"
    )
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(
            statement, [[p(row[n]) for p, n in zip(processors, names, strict=True)] for row in rows]
        )
    except connection.dialect.loaded_dbapi.IntegrityError as exc:
        raise IntegrityError(statement, None, exc) from exc
    finally:
        cursor.close()


def _copy(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    names = list(rows[0])
    convert = [_bind_converter(table, name, connection) for name in names]
    quote = connection.dialect.identifier_preparer.quote
    statement = f"COPY {quote(table.name)} ({', '.join(quote(n) for n in names)}) FROM STDIN"
    dbapi: psycopg.Connection[Any] = connection.connection.dbapi_connection  # type: ignore[assignment]
    try:
        with dbapi.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row([c(row[n]) for c, n in zip(convert, names, strict=True)])
    except psycopg.IntegrityError as exc:
        # As SQLAlchemy would have raised it: callers retry a batch that raced its own retry.
        raise IntegrityError(statement, None, exc) from exc


def reserve_ids(connection: Connection, table: Table, column: str, count: int) -> list[int]:
    """`count` fresh values of a PostgreSQL serial/identity column, for rows written by COPY."""
    sequence = f"pg_get_serial_sequence('{table.name}', '{column}')"
    query = text(f"SELECT nextval({sequence}) FROM generate_series(1, :count)")
    return [int(value) for value in connection.scalars(query, {"count": count})]


def _bind_processor(table: Table, name: str, connection: Connection) -> Callable[[Any], Any]:
    # Everything SQLAlchemy would do to the value for this driver (UUID to text, times to
    # SQLite's text format, TypeDecorators), without building a parameter dict per row.
    process = table.c[name].type.bind_processor(connection.dialect)
    if process is None:
        return lambda value: value
    return process


def _bind_converter(table: Table, name: str, connection: Connection) -> Callable[[Any], Any]:
    # What SQLAlchemy would do to the value on its way in (UTC times, Counter64 bit patterns).
    column_type = table.c[name].type
    if isinstance(column_type, TypeDecorator):
        dialect = connection.dialect
        return lambda value: column_type.process_bind_param(value, dialect)
    return lambda value: value
