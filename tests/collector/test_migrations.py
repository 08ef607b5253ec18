"""Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, insert, inspect, select, text, update
from sqlalchemy.exc import DataError

from agent.wire import Batch, InterfaceCounters, SnmpPoll
from collector.store.db import make_engine, make_session_factory
from collector.store.ingest import add_batch
from collector.store.interface_rows import pack_interfaces, unpack_interfaces
from collector.store.latest import Scope, device_states, latest_interfaces
from collector.store.migrate import alembic_config, is_at_head, upgrade_to_head
from collector.store.models import (
    Base,
    Device,
    InterfaceRate,
    InterfaceSample,
    Measurement,
    PollInterfaces,
    School,
    SnmpPollResult,
)

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


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
        # Checkpoints every 10,000 pages, the WAL file cut back to 64 MiB after one.
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 10_000
        assert connection.exec_driver_sql("PRAGMA journal_size_limit").scalar() == 64 * 2**20
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


def _at_0001_with_a_poll(database_url: str) -> Engine:
    """A database at revision 0001 holding one school, agent and poll of two interfaces.

    On PostgreSQL the old 32-bit interface_samples.id sequence is set just below 2**31, where a
    fleet of 10,000 schools would have been after about 19 days.
    """
    command.upgrade(alembic_config(database_url), "0001")
    engine = make_engine(database_url)
    poll_id = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO schools (id, name, students, staff, created_at)"
                " VALUES (1, 'Lincoln', 450, 50, :now)"
            ),
            {"now": NOW},
        )
        conn.execute(
            text(
                "INSERT INTO agents (id, school_id, name, token_sha256, created_at)"
                " VALUES (1, 1, 'pi', :hash, :now)"
            ),
            {"hash": "0" * 64, "now": NOW},
        )
        conn.execute(
            text(
                "INSERT INTO measurements (id, agent_id, school_id, kind, measured_at,"
                " received_at) VALUES (:id, 1, 1, 'snmp_poll', :now, :now)"
            ),
            {"id": poll_id.hex if conn.dialect.name == "sqlite" else poll_id, "now": NOW},
        )
        conn.execute(
            text(
                "INSERT INTO snmp_polls (measurement_id, device, address, sys_uptime_ticks)"
                " VALUES (:id, 'core', '127.0.0.1:161', 4294967295)"
            ),
            {"id": poll_id.hex if conn.dialect.name == "sqlite" else poll_id},
        )
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT setval('interface_samples_id_seq', 2147483645)"))
        for ifindex, octets in ((1, "18446744073709551615"), (2, "19432396613")):
            conn.execute(
                text(
                    "INSERT INTO interface_samples (measurement_id, ifindex, name, octets_in,"
                    " counter_bits, speed_mbps) VALUES (:id, :ifindex, :name, :octets, 64, 1000)"
                ),
                {
                    "id": poll_id.hex if conn.dialect.name == "sqlite" else poll_id,
                    "ifindex": ifindex,
                    "name": f"Gi0/{ifindex}",
                    "octets": octets if conn.dialect.name == "sqlite" else int(octets),
                },
            )
    return engine


def test_upgrade_from_0001_keeps_polls_and_passes_2_31(database_url: str) -> None:
    engine = _at_0001_with_a_poll(database_url)
    if engine.dialect.name == "postgresql":
        # The old key is exhausted: one more interface row cannot be stored at all.
        with pytest.raises(DataError, match="maximum value"), engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO interface_samples (measurement_id, ifindex, name, counter_bits)"
                    " SELECT measurement_id, 3, 'Gi0/3', 64 FROM snmp_polls"
                )
            )
    upgrade_to_head(database_url)

    sessions = make_session_factory(engine)
    with sessions() as session:
        rows = latest_interfaces(session=session, scope=Scope())
        assert [(r.ifname, r.octets_in, r.speed_mbps) for r in rows] == [
            ("Gi0/1", 2**64 - 1, 1000),
            ("Gi0/2", 19432396613, 1000),
        ]
        [state] = device_states(session=session, scope=Scope())
        assert (state.device, state.up) == ("core", True)
        if engine.dialect.name == "postgresql":
            session.execute(
                text("SELECT setval(pg_get_serial_sequence('snmp_polls', 'poll_id'), 2147483646)")
            )
            session.commit()
        polls = [
            SnmpPoll(
                device="core",
                address="127.0.0.1:161",
                interfaces=[
                    InterfaceCounters(ifindex=i, name=f"Gi0/{i}", octets_in=i) for i in range(30)
                ],
            )
            for _ in range(3)
        ]
        receipt = add_batch(
            session=session, agent_id=1, school_id=1, batch=Batch(measurements=polls)
        )
        assert len(receipt.accepted) == 3
        keys = session.scalars(select(SnmpPollResult.poll_id).order_by(SnmpPollResult.poll_id))
        if engine.dialect.name == "postgresql":
            assert list(keys)[-1] == 2**31 + 1
        assert len(latest_interfaces(session=session, scope=Scope())) == 30
    engine.dispose()


REVISIONS = ["0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009", "0010", "0011"]


@pytest.mark.parametrize("start", REVISIONS[:-1])
def test_upgrade_from_each_revision_and_back(database_url: str, start: str) -> None:
    """From every earlier revision to the newest, with a school and an agent on the way; then
    down to that revision and up again (a release can be rolled back), except below 0002,
    which is one-way (it rewrote the poll tables: restore the backup instead)."""
    config = alembic_config(database_url)
    command.upgrade(config, start)
    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO schools (id, name, students, staff, created_at) "
                "VALUES (1, 'Lincoln', 450, 50, :at)"
            ),
            {"at": datetime(2026, 11, 1, tzinfo=UTC)},
        )
        connection.execute(
            text(
                "INSERT INTO agents (id, school_id, name, token_sha256, created_at) "
                "VALUES (1, 1, 'pi-1', :digest, :at)"
            ),
            {"digest": "ab" * 32, "at": datetime(2026, 11, 1, tzinfo=UTC)},
        )
    upgrade_to_head(database_url)
    assert is_at_head(engine, database_url)
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT name, token_sha256, enrolled_at FROM agents WHERE id = 1")
        ).one()
        assert row[0] == "pi-1" and row[1] == "ab" * 32
        # Agents from before enrolment codes were enrolled when created.
        assert (row[2] is not None) == (start < "0005")
        assert connection.execute(text("SELECT students FROM schools")).scalar() == 450
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []
    if start != "0001":
        command.downgrade(config, start)
        upgrade_to_head(database_url)
        assert is_at_head(engine, database_url)
    engine.dispose()


def test_revisions_are_listed() -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert [r.revision for r in reversed(list(script.walk_revisions()))] == REVISIONS


def test_sqlite_times_from_the_bulk_path_are_rewritten(sqlite_url: str) -> None:
    config = alembic_config(sqlite_url)
    command.upgrade(config, "0006")
    engine = make_engine(sqlite_url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO schools (id, name, students, staff, created_at) "
                "VALUES (1, 'Lincoln', 450, 50, '2026-11-01 00:00:00.000000')"
            )
        )
        for n, at in enumerate(("2026-12-04 07:25:37+00:00", "2026-12-04 07:25:38.123456+00:00")):
            connection.execute(
                text(
                    "INSERT INTO measurements (id, school_id, kind, measured_at, received_at) "
                    "VALUES (:id, 1, 'latency', :at, :at)"
                ),
                {"id": f"{n:032x}", "at": at},
            )
    upgrade_to_head(sqlite_url)
    with engine.connect() as connection:
        stored = connection.execute(
            text("SELECT measured_at, received_at FROM measurements ORDER BY measured_at")
        ).all()
    assert [tuple(row) for row in stored] == [
        ("2026-12-04 07:25:37.000000", "2026-12-04 07:25:37.000000"),
        ("2026-12-04 07:25:38.123456", "2026-12-04 07:25:38.123456"),
    ]
    engine.dispose()


def _a_school_with_a_poll(connection: Connection, key: int) -> None:
    """School, device and poll `key` (the same number for all three): a poll row to hang
    interfaces on, written column by column so that it fits the schema from 0009 on."""
    connection.execute(
        insert(School), [{"id": key, "name": f"School {key}", "students": 450, "staff": 50}]
    )
    connection.execute(insert(Device), [{"id": key, "school_id": key, "name": "core"}])
    measurement = uuid.uuid4()
    connection.execute(
        insert(Measurement),
        [
            {
                "id": measurement,
                "school_id": key,
                "kind": "snmp_poll",
                "measured_at": NOW,
                "received_at": NOW,
            }
        ],
    )
    connection.execute(
        insert(SnmpPollResult),
        [
            {
                "poll_id": key,
                "measurement_id": measurement,
                "device_id": key,
                "address": "127.0.0.1:161",
                "ordered_at": NOW,
            }
        ],
    )


def test_0010_packs_every_interface_and_unpacks_on_the_way_down(database_url: str) -> None:
    """0010 packs each poll's interface rows into one (counters exact past 2**63, a row
    without counters, a duplicate ifIndex), keeps the uplink's row and rate and drops the
    others'; down again, every row comes back as it was."""
    config = alembic_config(database_url)
    command.upgrade(config, "0009")
    engine = make_engine(database_url)
    rows = [
        InterfaceCounters(1, "Gi0/0", 2**64 - 1, 2**63, 64, 1000, "uplink", 6, 1, 1, "internet"),
        InterfaceCounters(2, "Null0"),
        InterfaceCounters(2, "Gi0/2", 5, 7, 32, 10, None, 6, 1, 2, None),
        InterfaceCounters(9, "Tu9", 8, 9, 64, 0, "to hub", 131, 1, 1, "wan"),
    ]
    stored = [
        {"poll_id": 1, "seq": seq, **row._asdict(), "counter_bits": row.counter_bits or 0}
        for seq, row in enumerate(rows)
    ]
    with engine.begin() as connection:
        _a_school_with_a_poll(connection, 1)
        connection.execute(
            update(Device).values(
                last_poll_id=1, last_poll_at=NOW, last_ok_poll_id=1, last_ok_at=NOW
            )
        )
        connection.execute(insert(InterfaceSample), stored)
        connection.execute(
            insert(InterfaceRate),
            [
                {"poll_id": 1, "seq": seq, "seconds": 300.0, "in_bps": 1.0, "out_bps": 2.0}
                for seq in (0, 2, 3)
            ],
        )

    upgrade_to_head(database_url)
    sessions = make_session_factory(engine)
    with sessions() as session:
        packed = session.scalars(select(PollInterfaces)).one()
        assert (packed.poll_id, packed.interface_count) == (1, 4)
        assert unpack_interfaces(packed.rows) == rows
        assert session.execute(select(InterfaceSample.seq, InterfaceSample.role)).all() == [
            (0, "internet"),
            (3, "wan"),
        ]
        assert session.scalars(select(InterfaceRate.seq).order_by(InterfaceRate.seq)).all() == [
            0,
            3,
        ]
        assert [
            (r.ifname, r.octets_in) for r in latest_interfaces(session=session, scope=Scope())
        ] == [
            ("Gi0/0", 2**64 - 1),
            ("Null0", None),
            ("Gi0/2", 5),
            ("Tu9", 8),
        ]

    command.downgrade(config, "0009")
    with engine.connect() as connection:
        back = (
            connection.execute(select(InterfaceSample.__table__).order_by(InterfaceSample.seq))
            .mappings()
            .all()
        )
        assert [dict(row) for row in back] == stored
        assert "poll_interfaces" not in inspect(connection).get_table_names()
    upgrade_to_head(database_url)
    with sessions() as session:
        assert unpack_interfaces(session.scalars(select(PollInterfaces.rows)).one()) == rows
    engine.dispose()


def test_0011_compresses_packed_interfaces_with_lz4_on_postgresql(postgres_url: str) -> None:
    """New packed rows are stored lz4-compressed after 0011 and pglz-compressed after going
    back down to 0010 (PostgreSQL compresses a value over 2 kB: a 48-port poll's rows)."""
    rows = [
        InterfaceCounters(i, f"GigabitEthernet1/0/{i}", 10**12 + i, 10**11, 64) for i in range(48)
    ]
    upgrade_to_head(postgres_url)
    engine = make_engine(postgres_url)

    def stored_with() -> tuple[str, str]:
        with engine.begin() as connection:
            poll_id = connection.scalar(text("SELECT count(*) FROM poll_interfaces")) + 1
            _a_school_with_a_poll(connection, poll_id)
            connection.execute(
                insert(PollInterfaces),
                [{"poll_id": poll_id, "interface_count": 48, "rows": pack_interfaces(rows)}],
            )
            setting = connection.scalar(
                text(
                    "SELECT attcompression FROM pg_attribute"
                    " WHERE attrelid = 'poll_interfaces'::regclass AND attname = 'rows'"
                )
            )
            used = connection.scalar(
                text("SELECT pg_column_compression(rows) FROM poll_interfaces WHERE poll_id = :p"),
                {"p": poll_id},
            )
        return setting, used

    assert stored_with() == ("l", "lz4")
    command.downgrade(alembic_config(postgres_url), "0010")
    assert stored_with() == ("p", "pglz")
    upgrade_to_head(postgres_url)
    assert stored_with() == ("l", "lz4")
    with make_session_factory(engine)() as session:
        stored = session.scalars(select(PollInterfaces.rows).order_by(PollInterfaces.poll_id))
        assert [unpack_interfaces(r) for r in stored] == [rows, rows, rows]
    engine.dispose()
