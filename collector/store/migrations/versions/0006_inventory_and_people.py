"""inventory and people: NCES ids, grade span, circuits, testing rooms; users, API tokens,
web sessions, the audit log

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07

Districts gain their state and NCES LEAID, schools their NCESSCH, guests and grade span. New
tables: contracted circuits (a school's or a district hub's), testing rooms with their expected
test takers, users with a role and a scope, their API tokens and web sessions (digests only),
and the audit log of every write to the inventory. Added columns and new tables only.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from collector.store.models import BigId, UtcDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("districts") as batch_op:
        batch_op.add_column(sa.Column("state", sa.String(length=2), nullable=True))
        batch_op.add_column(sa.Column("leaid", sa.String(length=7), nullable=True))
        batch_op.create_unique_constraint("uq_districts_leaid", ["leaid"])
        batch_op.create_index("ix_districts_state", ["state"])
    with op.batch_alter_table("schools") as batch_op:
        batch_op.add_column(sa.Column("ncessch", sa.String(length=12), nullable=True))
        batch_op.add_column(sa.Column("guests", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("grade_low", sa.String(length=2), nullable=True))
        batch_op.add_column(sa.Column("grade_high", sa.String(length=2), nullable=True))
        batch_op.create_unique_constraint("uq_schools_ncessch", ["ncessch"])
    op.create_table(
        "circuits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=True),
        sa.Column("district_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("down_mbps", sa.Float(), nullable=False),
        sa.Column("up_mbps", sa.Float(), nullable=False),
        sa.Column("provider", sa.String(length=200), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint(
            "(school_id IS NULL) <> (district_id IS NULL)", name="ck_circuits_one_owner"
        ),
        sa.CheckConstraint("kind IN ('internet', 'wan')", name="ck_circuits_kind"),
        sa.ForeignKeyConstraint(["district_id"], ["districts.id"]),
        sa.ForeignKeyConstraint(["school_id"], ["schools.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_circuits_school_id", "circuits", ["school_id"])
    op.create_index("ix_circuits_district_id", "circuits", ["district_id"])
    op.create_table(
        "testing_rooms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("test_takers", sa.Integer(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["school_id"], ["schools.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("school_id", "name", name="uq_testing_rooms_school_name"),
    )
    op.create_index("ix_testing_rooms_school_id", "testing_rooms", ["school_id"])
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("scope_state", sa.String(length=2), nullable=True),
        sa.Column("scope_district_id", sa.Integer(), nullable=True),
        sa.Column("scope_school_id", sa.Integer(), nullable=True),
        sa.Column("password_hash", sa.String(length=300), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("revoked_at", UtcDateTime(), nullable=True),
        sa.CheckConstraint("role IN ('admin', 'viewer')", name="ck_users_role"),
        sa.CheckConstraint(
            "scope IN ('all', 'state', 'district', 'school')", name="ck_users_scope"
        ),
        sa.ForeignKeyConstraint(["scope_district_id"], ["districts.id"]),
        sa.ForeignKeyConstraint(["scope_school_id"], ["schools.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=True),
        sa.Column("last_used_at", UtcDateTime(), nullable=True),
        sa.Column("revoked_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_sha256"),
    )
    op.create_index("ix_api_tokens_user_id", "api_tokens", ["user_id"])
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_sha256", sa.String(length=64), nullable=False),
        sa.Column("csrf_sha256", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("session_sha256"),
    )
    op.create_index("ix_web_sessions_user_id", "web_sessions", ["user_id"])
    op.create_table(
        "audit_log",
        sa.Column("id", BigId, nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("actor", sa.String(length=300), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("object_type", sa.String(length=32), nullable=False),
        sa.Column("object_id", sa.String(length=64), nullable=True),
        sa.Column("details", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
    for table, index in (
        ("web_sessions", "ix_web_sessions_user_id"),
        ("api_tokens", "ix_api_tokens_user_id"),
    ):
        op.drop_index(index, table_name=table)
        op.drop_table(table)
    op.drop_table("users")
    op.drop_index("ix_testing_rooms_school_id", table_name="testing_rooms")
    op.drop_table("testing_rooms")
    op.drop_index("ix_circuits_district_id", table_name="circuits")
    op.drop_index("ix_circuits_school_id", table_name="circuits")
    op.drop_table("circuits")
    with op.batch_alter_table("schools") as batch_op:
        batch_op.drop_constraint("uq_schools_ncessch", type_="unique")
        for column in ("grade_high", "grade_low", "guests", "ncessch"):
            batch_op.drop_column(column)
    with op.batch_alter_table("districts") as batch_op:
        batch_op.drop_index("ix_districts_state")
        batch_op.drop_constraint("uq_districts_leaid", type_="unique")
        batch_op.drop_column("leaid")
        batch_op.drop_column("state")
