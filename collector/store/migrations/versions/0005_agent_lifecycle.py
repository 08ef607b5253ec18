"""agent lifecycle: enrolment codes, revocation and rotation, heartbeats, remote config

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07

Agents are now created by `agent enroll` before they have a token (the token column becomes
nullable: the code is exchanged for it later), can be revoked and rotate their token with a
grace period for the old one. Each agent's newest heartbeat and the settings the collector holds
for it get tables of their own. The agents table is small: SQLite's batch rebuild is cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from collector.store.models import UtcDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_AGENT_COLUMNS: tuple[sa.Column[Any], ...] = (
    sa.Column("enrolled_at", UtcDateTime(), nullable=True),
    sa.Column("hostname", sa.String(length=255), nullable=True),
    sa.Column("revoked_at", UtcDateTime(), nullable=True),
    sa.Column("previous_token_sha256", sa.String(length=64), nullable=True),
    sa.Column("previous_token_until", UtcDateTime(), nullable=True),
)


def upgrade() -> None:
    with op.batch_alter_table("agents") as batch_op:
        batch_op.alter_column("token_sha256", existing_type=sa.String(length=64), nullable=True)
        for column in _AGENT_COLUMNS:
            batch_op.add_column(column)
        batch_op.create_unique_constraint(
            "uq_agents_previous_token_sha256", ["previous_token_sha256"]
        )
    # Agents enrolled before codes existed got their token at creation.
    op.execute("UPDATE agents SET enrolled_at = created_at")
    op.create_table(
        "enrolment_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code_sha256", sa.String(length=64), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("used_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code_sha256"),
    )
    op.create_index("ix_enrolment_codes_agent_id", "enrolment_codes", ["agent_id"])
    op.create_table(
        "agent_heartbeats",
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("version", sa.String(length=40), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("outbox_pending", sa.BigInteger(), nullable=False),
        sa.Column("outbox_oldest_at", UtcDateTime(), nullable=True),
        sa.Column("dead_letters", sa.BigInteger(), nullable=False),
        sa.Column("outbox_lost", sa.BigInteger(), nullable=False),
        sa.Column("last_test_at", UtcDateTime(), nullable=True),
        sa.Column("last_poll_at", UtcDateTime(), nullable=True),
        sa.Column("last_delivery_at", UtcDateTime(), nullable=True),
        sa.Column("ceiling_mbps", sa.Integer(), nullable=True),
        sa.Column("ceiling_wifi", sa.Boolean(), nullable=True),
        sa.Column("ceiling_interface", sa.String(length=64), nullable=True),
        sa.Column("clock_offset_s", sa.Float(), nullable=True),
        sa.Column("config_etag", sa.String(length=64), nullable=True),
        sa.Column("config_error", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"]),
        sa.PrimaryKeyConstraint("agent_id"),
    )
    op.create_table(
        "agent_configs",
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("etag", sa.String(length=64), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"]),
        sa.PrimaryKeyConstraint("agent_id"),
    )


def downgrade() -> None:
    for table in ("agent_configs", "agent_heartbeats"):
        op.drop_table(table)
    op.drop_index("ix_enrolment_codes_agent_id", table_name="enrolment_codes")
    op.drop_table("enrolment_codes")
    # Agents that never exchanged their code have no token to keep.
    op.execute("DELETE FROM agents WHERE token_sha256 IS NULL")
    with op.batch_alter_table("agents") as batch_op:
        batch_op.drop_constraint("uq_agents_previous_token_sha256", type_="unique")
        for column in _AGENT_COLUMNS:
            batch_op.drop_column(column.name)
        batch_op.alter_column("token_sha256", existing_type=sa.String(length=64), nullable=False)
