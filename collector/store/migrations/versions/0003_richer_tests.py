"""richer throughput tests, latency tests, classroom codes, shared exits

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

Throughput tests gain what a fixed-duration multi-stream test reports (p90 rates, latency under
load, responsiveness), the agent's own ceiling, the uplink's background traffic, the data budget,
the internet test's server and raw result, and the classroom room. Latency tests get their own
table. Classroom tests taken in a browser have no agent, so `measurements.agent_id` may be null.
Schools may name a shared exit, and classroom codes let teachers record classroom tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from collector.store.models import UtcDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_THROUGHPUT_COLUMNS: tuple[sa.Column[Any], ...] = (
    sa.Column("download_p90_bps", sa.Float(), nullable=True),
    sa.Column("upload_p90_bps", sa.Float(), nullable=True),
    sa.Column("loaded_latency_ms", sa.Float(), nullable=True),
    sa.Column("responsiveness_rpm", sa.Float(), nullable=True),
    sa.Column("agent_link_mbps", sa.BigInteger(), nullable=True),
    sa.Column("agent_wifi", sa.Boolean(), nullable=True),
    sa.Column("agent_limited", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("background_bps", sa.Float(), nullable=True),
    sa.Column("budget_bytes", sa.BigInteger(), nullable=True),
    sa.Column("budget_used_bytes", sa.BigInteger(), nullable=True),
    sa.Column("server_id", sa.String(length=40), nullable=True),
    sa.Column("sponsor", sa.String(length=300), nullable=True),
    sa.Column("distance_km", sa.Float(), nullable=True),
    sa.Column("raw", sa.Text(), nullable=True),
    sa.Column("room", sa.String(length=64), nullable=True),
)


def upgrade() -> None:
    # Added columns only: PostgreSQL and SQLite both add them without rewriting the table.
    for column in _THROUGHPUT_COLUMNS:
        op.add_column("throughput_results", column)
    op.add_column("schools", sa.Column("shared_exit", sa.String(length=100), nullable=True))
    # SQLite cannot drop NOT NULL in place: batch mode rebuilds the table there (indexes
    # included); PostgreSQL alters it in place.
    with op.batch_alter_table("measurements") as batch_op:
        batch_op.alter_column("agent_id", existing_type=sa.Integer(), nullable=True)
    op.create_table(
        "latency_results",
        sa.Column("measurement_id", sa.Uuid(), nullable=False),
        sa.Column("target", sa.String(length=300), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("answered", sa.Integer(), nullable=False),
        sa.Column("lost", sa.Integer(), nullable=False),
        sa.Column("rtt_p50_ms", sa.Float(), nullable=True),
        sa.Column("rtt_p90_ms", sa.Float(), nullable=True),
        sa.Column("jitter_ms", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["measurement_id"], ["measurements.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("measurement_id"),
    )
    op.create_table(
        "classroom_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["school_id"], ["schools.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_index("ix_classroom_codes_school_id", "classroom_codes", ["school_id"])


def downgrade() -> None:
    op.drop_index("ix_classroom_codes_school_id", table_name="classroom_codes")
    op.drop_table("classroom_codes")
    op.drop_table("latency_results")
    # Classroom tests have no agent and cannot go back into the older schema.
    classroom = "SELECT id FROM measurements WHERE agent_id IS NULL"
    op.execute(f"DELETE FROM throughput_results WHERE measurement_id IN ({classroom})")
    op.execute("DELETE FROM measurements WHERE agent_id IS NULL")
    # Batch mode: SQLite rebuilds each table, PostgreSQL alters it in place.
    with op.batch_alter_table("measurements") as batch_op:
        batch_op.alter_column("agent_id", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("schools") as batch_op:
        batch_op.drop_column("shared_exit")
    with op.batch_alter_table("throughput_results") as batch_op:
        for column in reversed(_THROUGHPUT_COLUMNS):
            batch_op.drop_column(column.name)
