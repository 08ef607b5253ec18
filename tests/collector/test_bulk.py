"""The bulk path binds values exactly as SQLAlchemy would: the same text for the same time."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from typing import cast

import psycopg
import pytest
from sqlalchemy import Table, insert, select, text
from sqlalchemy.exc import IntegrityError

from collector.store.bulk import insert_rows
from collector.store.db import make_engine
from collector.store.migrate import upgrade_to_head
from collector.store.models import Measurement, School

TIMES = [
    datetime(2026, 12, 4, 7, 25, 37, tzinfo=UTC),
    datetime(2026, 12, 4, 7, 25, 37, 123456, tzinfo=UTC),
    datetime(2026, 12, 4, 12, 55, 37, 5, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    datetime(2000, 1, 1, tzinfo=timezone(timedelta(hours=-8))),
]


def test_times_from_the_bulk_path_read_and_compare_as_sqlalchemys(sqlite_url: str) -> None:
    upgrade_to_head(sqlite_url)
    engine = make_engine(sqlite_url)
    measurements = cast(Table, Measurement.__table__)
    with engine.begin() as connection:
        connection.execute(insert(School), [{"id": 1, "name": "L", "students": 1, "staff": 1}])
        for n, at in enumerate(TIMES):
            core = {"id": uuid.UUID(int=2 * n), "school_id": 1, "kind": "latency"}
            connection.execute(
                insert(measurements), [{**core, "measured_at": at, "received_at": at}]
            )
            insert_rows(
                connection,
                measurements,
                ("id", "school_id", "kind", "measured_at", "received_at"),
                [(uuid.UUID(int=2 * n + 1), 1, "latency", at, at)],
            )
    with engine.connect() as connection:
        stored = connection.execute(
            text("SELECT id, measured_at FROM measurements ORDER BY id")
        ).all()
        assert [row[1] for row in stored[0::2]] == [row[1] for row in stored[1::2]]
        assert stored[2][1] == "2026-12-04 07:25:37.123456"
        assert stored[4][1] == "2026-12-04 07:25:37.000005"
        read = connection.scalars(select(Measurement.measured_at).order_by(Measurement.id))
        assert list(read) == [at for at in TIMES for _ in range(2)]
    with pytest.raises(ValueError, match="naive"), engine.begin() as connection:
        insert_rows(
            connection,
            measurements,
            ("id", "school_id", "kind", "measured_at", "received_at"),
            [(uuid.uuid4(), 1, "latency", datetime(2026, 1, 1), datetime(2026, 1, 1))],
        )
    engine.dispose()


def test_remembered_times_depend_on_the_instant_alone() -> None:
    """The bulk path remembers each instant's text: the same instant in another zone gets the
    same text, and a naive time is refused every time, never remembered."""
    from collector.store.bulk import _sqlite_utc_text

    india = timezone(timedelta(hours=5, minutes=30))
    at = datetime(2026, 12, 4, 7, 25, 37, 5, tzinfo=UTC)
    assert _sqlite_utc_text(at) == "2026-12-04 07:25:37.000005"
    assert _sqlite_utc_text(at.astimezone(india)) == "2026-12-04 07:25:37.000005"
    assert _sqlite_utc_text(at + timedelta(microseconds=1)) == "2026-12-04 07:25:37.000006"
    assert _sqlite_utc_text(None) is None
    for _ in range(2):
        with pytest.raises(ValueError, match="naive"):
            _sqlite_utc_text(datetime(2026, 12, 4, 7, 25, 37))


@pytest.mark.postgres
def test_crossed_inserts_of_the_same_ids_fail_one_side_as_a_collision(postgres_url: str) -> None:
    """Two transactions inserting ids x and y in opposite orders deadlock on the primary key's
    uniqueness check; PostgreSQL fails one of them, and the bulk path says IntegrityError, the
    collision that ingest rolls back and retries."""
    upgrade_to_head(postgres_url)
    engine = make_engine(postgres_url, workers=2)
    measurements = cast(Table, Measurement.__table__)
    columns = ("id", "school_id", "kind", "measured_at", "received_at")
    at = datetime.now(UTC)
    x, y = uuid.uuid4(), uuid.uuid4()
    with engine.begin() as connection:
        connection.execute(insert(School), [{"id": 1, "name": "L", "students": 1, "staff": 1}])
    first, second = engine.connect(), engine.connect()
    try:
        insert_rows(first, measurements, columns, [(x, 1, "latency", at, at)])
        insert_rows(second, measurements, columns, [(y, 1, "latency", at, at)])
        with ThreadPoolExecutor(1) as pool:
            crossing = pool.submit(
                insert_rows, first, measurements, columns, [(y, 1, "latency", at, at)]
            )
            time.sleep(0.5)  # the first now waits for the second's y
            outcomes: list[BaseException | None] = []
            try:
                insert_rows(second, measurements, columns, [(x, 1, "latency", at, at)])
                outcomes.append(None)
            except IntegrityError as exc:
                outcomes.append(exc)
                second.rollback()
            try:
                crossing.result(timeout=30)
                outcomes.append(None)
            except IntegrityError as exc:
                outcomes.append(exc)
        failed = [o for o in outcomes if o is not None]
        assert len(failed) == 1
        assert isinstance(failed[0].orig, psycopg.errors.DeadlockDetected)
    finally:
        first.close()
        second.close()
        engine.dispose()
