"""districts, devices with newest-poll pointers, 64-bit poll keys, compact interface samples

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

`interface_samples.id` was a 32-bit integer on PostgreSQL: at 5-minute polls of two
20-interface devices per school, 10,000 schools would exhaust it in about 19 days. Polls now have
a 64-bit key, interface rows are keyed by (poll, position) with no surrogate id, and counters are
8-byte integers instead of NUMERIC(20) / decimal text. Existing rows are copied over in batches.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from collector.store.models import BigId, Counter64, UtcDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COPY_BATCH = 5000


def upgrade() -> None:
    op.create_table(
        "districts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    with op.batch_alter_table("schools") as batch_op:
        batch_op.add_column(sa.Column("district_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_schools_district_id_districts", "districts", ["district_id"], ["id"]
        )
        batch_op.create_index("ix_schools_district_id", ["district_id"], unique=False)
    op.create_index("ix_measurements_kind_time", "measurements", ["kind", "measured_at"])
    op.create_index("ix_measurements_kind_received", "measurements", ["kind", "received_at"])
    op.create_table(
        "devices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("last_poll_id", BigId, nullable=True),
        sa.Column("last_poll_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("last_ok_poll_id", BigId, nullable=True),
        sa.Column("last_ok_at", UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["school_id"], ["schools.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("school_id", "name", name="uq_devices_school_name"),
    )
    op.rename_table("snmp_polls", "snmp_polls_0001")
    op.rename_table("interface_samples", "interface_samples_0001")
    snmp_polls = op.create_table(
        "snmp_polls",
        sa.Column("poll_id", BigId, autoincrement=True, nullable=False),
        sa.Column("measurement_id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=300), nullable=False),
        sa.Column("sys_object_id", sa.String(length=200), nullable=True),
        sa.Column("sys_uptime_ticks", sa.BigInteger(), nullable=True),
        sa.Column("ordered_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"]),
        sa.ForeignKeyConstraint(["measurement_id"], ["measurements.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("poll_id", name="pk_snmp_polls"),
        sa.UniqueConstraint("measurement_id"),
    )
    op.create_index("ix_snmp_polls_device_time", "snmp_polls", ["device_id", "ordered_at"])
    samples = op.create_table(
        "interface_samples",
        sa.Column("poll_id", BigId, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("ifindex", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("octets_in", Counter64(), nullable=True),
        sa.Column("octets_out", Counter64(), nullable=True),
        sa.Column("counter_bits", sa.SmallInteger(), nullable=False),
        sa.Column("speed_mbps", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["poll_id"], ["snmp_polls.poll_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("poll_id", "seq", name="pk_interface_samples"),
        sqlite_with_rowid=False,
    )
    assert snmp_polls is not None and samples is not None
    _copy_polls(op.get_bind(), snmp_polls, samples)
    op.drop_table("interface_samples_0001")
    op.drop_table("snmp_polls_0001")


def downgrade() -> None:
    raise NotImplementedError("0002 is one-way: restore the pre-upgrade backup to go back")


def _copy_polls(bind: sa.Connection, snmp_polls: sa.Table, samples: sa.Table) -> None:
    old_polls = sa.table(
        "snmp_polls_0001",
        sa.column("measurement_id", sa.Uuid()),
        sa.column("device", sa.String()),
        sa.column("address", sa.String()),
        sa.column("sys_object_id", sa.String()),
        sa.column("sys_uptime_ticks", sa.BigInteger()),
    )
    measurements = sa.table(
        "measurements",
        sa.column("id", sa.Uuid()),
        sa.column("school_id", sa.Integer()),
        sa.column("measured_at", UtcDateTime()),
        sa.column("received_at", UtcDateTime()),
        sa.column("error", sa.Text()),
    )
    devices: dict[tuple[int, str], int] = {}
    rows = bind.execute(
        sa.select(old_polls, measurements.c.school_id, measurements.c.measured_at)
        .add_columns(measurements.c.received_at, measurements.c.error)
        .join(measurements, measurements.c.id == old_polls.c.measurement_id)
        .order_by(measurements.c.measured_at)
    ).mappings()
    for chunk in _chunks(rows):
        for row in chunk:
            key = (row["school_id"], row["device"])
            if key not in devices:
                devices[key] = _add_device(bind, *key)
            poll_id = bind.execute(
                snmp_polls.insert().returning(snmp_polls.c.poll_id),
                {
                    "measurement_id": row["measurement_id"],
                    "device_id": devices[key],
                    "address": row["address"],
                    "sys_object_id": row["sys_object_id"],
                    "sys_uptime_ticks": row["sys_uptime_ticks"],
                    "ordered_at": min(row["measured_at"], row["received_at"]),
                },
            ).scalar_one()
            _copy_samples(bind, samples, row["measurement_id"], poll_id)
            _point_device(bind, devices[key], poll_id, row)


def _copy_samples(
    bind: sa.Connection, samples: sa.Table, measurement_id: Any, poll_id: int
) -> None:
    old = sa.table(
        "interface_samples_0001",
        sa.column("id", sa.Integer()),
        sa.column("measurement_id", sa.Uuid()),
        sa.column("ifindex", sa.BigInteger()),
        sa.column("name", sa.String()),
        sa.column("octets_in", sa.String()),
        sa.column("octets_out", sa.String()),
        sa.column("counter_bits", sa.Integer()),
        sa.column("speed_mbps", sa.BigInteger()),
    )
    rows = bind.execute(
        sa.select(old).where(old.c.measurement_id == measurement_id).order_by(old.c.id)
    ).mappings()
    values = [
        {
            "poll_id": poll_id,
            "seq": seq,
            "ifindex": row["ifindex"],
            "name": row["name"],
            # NUMERIC(20) or decimal text in 0001: exact either way through str().
            "octets_in": None if row["octets_in"] is None else int(str(row["octets_in"])),
            "octets_out": None if row["octets_out"] is None else int(str(row["octets_out"])),
            "counter_bits": row["counter_bits"],
            "speed_mbps": row["speed_mbps"],
        }
        for seq, row in enumerate(rows)
    ]
    if values:
        bind.execute(samples.insert(), values)


def _add_device(bind: sa.Connection, school_id: int, name: str) -> int:
    devices = sa.table(
        "devices", sa.column("id", sa.Integer()), sa.column("school_id"), sa.column("name")
    )
    device_id: int = bind.execute(
        devices.insert().returning(devices.c.id), {"school_id": school_id, "name": name}
    ).scalar_one()
    return device_id


def _point_device(bind: sa.Connection, device_id: int, poll_id: int, row: Any) -> None:
    # Rows come oldest first, so each poll is the newest so far.
    at: datetime = min(row["measured_at"], row["received_at"]).astimezone(UTC)
    values: dict[str, Any] = {"last_poll_id": poll_id, "last_poll_at": at}
    if row["error"] is None:
        values |= {"last_ok_poll_id": poll_id, "last_ok_at": at}
    devices = sa.table(
        "devices",
        sa.column("id", sa.Integer()),
        *(sa.column(name, UtcDateTime() if name.endswith("_at") else BigId) for name in values),
    )
    bind.execute(devices.update().where(devices.c.id == device_id).values(**values))


def _chunks(rows: Any) -> Iterator[list[Any]]:
    while chunk := rows.fetchmany(COPY_BATCH):
        yield chunk
