"""device profiles: interface status and roles, Wi-Fi totals, AP and SSID rows, interface rates

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07

Polls now say which device profile read them and carry the device's Wi-Fi totals (clients, APs
up, APs known); interface rows carry ifAlias, ifType, admin and oper status and the configured
uplink role. Access points and SSIDs get their own rows per poll, and each interface row its
rate since the device's previous successful poll (`interface_rates`). Added columns and new
tables only: neither database rewrites the existing (large) poll tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from collector.store.models import BigId

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_POLL_COLUMNS: tuple[sa.Column[Any], ...] = (
    sa.Column("profile", sa.String(length=64), nullable=True),
    sa.Column("clients", sa.BigInteger(), nullable=True),
    sa.Column("aps_up", sa.BigInteger(), nullable=True),
    sa.Column("aps_total", sa.BigInteger(), nullable=True),
    sa.Column("duration_s", sa.Float(), nullable=True),
)
_SAMPLE_COLUMNS: tuple[sa.Column[Any], ...] = (
    sa.Column("alias", sa.String(length=255), nullable=True),
    sa.Column("if_type", sa.Integer(), nullable=True),
    sa.Column("admin_status", sa.SmallInteger(), nullable=True),
    sa.Column("oper_status", sa.SmallInteger(), nullable=True),
    sa.Column("role", sa.String(length=8), nullable=True),
)


def _per_poll_row(name: str, *columns: sa.Column[Any]) -> None:
    op.create_table(
        name,
        sa.Column("poll_id", BigId, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        *columns,
        sa.ForeignKeyConstraint(["poll_id"], ["snmp_polls.poll_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("poll_id", "seq", name=f"pk_{name}"),
        sqlite_with_rowid=False,
    )


def upgrade() -> None:
    for column in _POLL_COLUMNS:
        op.add_column("snmp_polls", column)
    for column in _SAMPLE_COLUMNS:
        op.add_column("interface_samples", column)
    _per_poll_row(
        "interface_rates",
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("in_bps", sa.Float(), nullable=True),
        sa.Column("out_bps", sa.Float(), nullable=True),
        sa.Column("no_rate", sa.String(length=16), nullable=True),
    )
    _per_poll_row(
        "access_point_samples",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("clients", sa.BigInteger(), nullable=True),
        sa.Column("up", sa.Boolean(), nullable=True),
    )
    _per_poll_row(
        "ssid_samples",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("clients", sa.BigInteger(), nullable=True),
    )


def downgrade() -> None:
    for table in ("ssid_samples", "access_point_samples", "interface_rates"):
        op.drop_table(table)
    with op.batch_alter_table("interface_samples") as batch_op:
        for column in _SAMPLE_COLUMNS:
            batch_op.drop_column(column.name)
    with op.batch_alter_table("snmp_polls") as batch_op:
        for column in _POLL_COLUMNS:
            batch_op.drop_column(column.name)
