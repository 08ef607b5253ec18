"""exit slots in the database: throughput tests take turns on a shared exit across replicas

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

Slots lived in each collector process's memory, so two replicas (or workers) could each grant
the same exit to a different school. One row per exit key now holds the slot; its primary key
refuses a second holder on every backend.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from collector.store.models import UtcDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "exit_slots",
        sa.Column("exit_key", sa.String(length=120), nullable=False),
        sa.Column("slot_id", sa.String(length=32), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("ends_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"]),
        sa.PrimaryKeyConstraint("exit_key"),
        sa.UniqueConstraint("slot_id"),
    )


def downgrade() -> None:
    op.drop_table("exit_slots")
