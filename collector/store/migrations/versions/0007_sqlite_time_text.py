"""SQLite: times written by the bulk path in the text every other write and comparison uses

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07

Until now the bulk inserts (collector/store/bulk.py) stored a time on SQLite as
'2026-12-04 07:25:37+00:00' (or with microseconds before the offset), while SQLAlchemy binds
'2026-12-04 07:25:37.000000' everywhere else, comparisons included. Text compares by character,
so at the very second of a range's bound a result fell on the wrong side. This rewrites those
columns in the one form; PostgreSQL stores real timestamps and is not touched.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    ("measurements", "measured_at"),
    ("measurements", "received_at"),
    ("snmp_polls", "ordered_at"),
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table, column in _COLUMNS:
        # '...:37+00:00' (25 characters) -> '...:37.000000'; '...:37.123456+00:00' (32) ->
        # '...:37.123456'. The bulk path always wrote UTC, so the offset is always +00:00.
        op.execute(
            f"UPDATE {table} SET {column} = CASE length({column}) "
            f"WHEN 25 THEN substr({column}, 1, 19) || '.000000' "
            f"ELSE substr({column}, 1, 26) END "
            f"WHERE {column} LIKE '%+00:00'"
        )


def downgrade() -> None:
    # The normalised text reads back as the same times: nothing to undo.
    pass
