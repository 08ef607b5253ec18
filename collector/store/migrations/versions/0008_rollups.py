"""rollups: hourly and daily throughput and uplink rollups, their watermarks, job leases and runs

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07

New tables only. The measurements' child tables already delete with their measurement
(ON DELETE CASCADE since 0001/0002), which the raw retention relies on.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from collector.store.models import BigId, UtcDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SKETCHES = ("download_sketch", "upload_sketch", "idle_latency_sketch", "loaded_latency_sketch")
_FIGURES = (
    "download_median_bps",
    "download_p90_bps",
    "download_min_bps",
    "download_max_bps",
    "upload_median_bps",
    "upload_p90_bps",
    "upload_min_bps",
    "upload_max_bps",
    "idle_latency_median_ms",
    "loaded_latency_median_ms",
)


def upgrade() -> None:
    op.create_table(
        "throughput_rollups",
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=4), nullable=False),
        sa.Column("path", sa.String(length=16), nullable=False),
        sa.Column("start", UtcDateTime(), nullable=False),
        sa.Column("tests", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("agent_limited", sa.Integer(), nullable=False),
        *(sa.Column(name, sa.Float(), nullable=True) for name in _FIGURES),
        *(sa.Column(name, sa.Text(), nullable=False) for name in _SKETCHES),
        sa.CheckConstraint("period IN ('hour', 'day')", name="ck_throughput_rollups_period"),
        sa.ForeignKeyConstraint(["school_id"], ["schools.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint(
            "school_id", "period", "path", "start", name="pk_throughput_rollups"
        ),
    )
    op.create_index("ix_throughput_rollups_period_start", "throughput_rollups", ["period", "start"])
    op.create_table(
        "uplink_rollups",
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("ifindex", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("period", sa.String(length=4), nullable=False),
        sa.Column("start", UtcDateTime(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("ifname", sa.String(length=200), nullable=False),
        sa.Column("speed_mbps", sa.BigInteger(), nullable=True),
        sa.Column("rates", sa.Integer(), nullable=False),
        sa.Column("gaps", sa.Integer(), nullable=False),
        sa.Column("p95_bps", sa.Float(), nullable=True),
        sa.Column("max_bps", sa.Float(), nullable=True),
        sa.Column("sketch", sa.Text(), nullable=False),
        sa.CheckConstraint("period IN ('hour', 'day')", name="ck_uplink_rollups_period"),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["school_id"], ["schools.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint(
            "device_id", "ifindex", "role", "period", "start", name="pk_uplink_rollups"
        ),
    )
    op.create_index("ix_uplink_rollups_school", "uplink_rollups", ["school_id", "period", "start"])
    op.create_index("ix_uplink_rollups_period_start", "uplink_rollups", ["period", "start"])
    op.create_table(
        "rollup_state",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("hours_before", UtcDateTime(), nullable=True),
        sa.Column("days_before", UtcDateTime(), nullable=True),
        sa.Column("received_through", UtcDateTime(), nullable=True),
        sa.Column("raw_deleted_before", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "job_leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=True),
        sa.Column("lease_until", UtcDateTime(), nullable=False),
        sa.Column("due_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "job_runs",
        sa.Column("id", BigId, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.Column("outcome", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_job_runs_name_started", "job_runs", ["name", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_job_runs_name_started", table_name="job_runs")
    op.drop_table("job_runs")
    op.drop_table("job_leases")
    op.drop_table("rollup_state")
    op.drop_index("ix_uplink_rollups_period_start", table_name="uplink_rollups")
    op.drop_index("ix_uplink_rollups_school", table_name="uplink_rollups")
    op.drop_table("uplink_rollups")
    op.drop_index("ix_throughput_rollups_period_start", table_name="throughput_rollups")
    op.drop_table("throughput_rollups")
