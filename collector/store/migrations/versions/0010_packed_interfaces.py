"""a poll's interfaces packed into one row; interface_samples keeps the uplinks

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07

A 48-port switch polled every 5 minutes wrote 48 interface rows each time, and writing them was
most of the cost of storing a poll (a week's backlog of a busy school drained at a third of the
rate it should). Every poll's interfaces are now one `poll_interfaces` row (JSON arrays in the
wire's field order); `interface_samples` keeps the rows with a role (the uplinks), which the
rate maths and the readiness peaks read, and `interface_rates` the rates of those rows only.

Existing rows are copied in batches of polls, counters turned back from their stored bit
pattern into exact unsigned integers. Downgrade unpacks them into rows again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from collector.store.models import BigId, Counter64

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Polls per copy step: a few hundred thousand interface rows at most in memory.
POLLS_PER_STEP = 2000

# The wire's InterfaceCounters fields in order, as interface_samples names them (stored
# counter_bits 0 meant "no counters": None on the wire).
FIELDS = (
    "ifindex",
    "name",
    "octets_in",
    "octets_out",
    "counter_bits",
    "speed_mbps",
    "alias",
    "if_type",
    "admin_status",
    "oper_status",
    "role",
)

_samples = sa.table(
    "interface_samples",
    sa.column("poll_id", BigId),
    sa.column("seq", sa.Integer()),
    sa.column("ifindex", sa.Integer()),
    sa.column("name", sa.String()),
    sa.column("octets_in", Counter64()),
    sa.column("octets_out", Counter64()),
    sa.column("counter_bits", sa.SmallInteger()),
    sa.column("speed_mbps", sa.BigInteger()),
    sa.column("alias", sa.String()),
    sa.column("if_type", sa.Integer()),
    sa.column("admin_status", sa.SmallInteger()),
    sa.column("oper_status", sa.SmallInteger()),
    sa.column("role", sa.String()),
)
_packed = sa.table(
    "poll_interfaces",
    sa.column("poll_id", BigId),
    sa.column("interface_count", sa.Integer()),
    sa.column("rows", sa.Text()),
)
_polls = sa.table("snmp_polls", sa.column("poll_id", BigId))


def upgrade() -> None:
    op.create_table(
        "poll_interfaces",
        sa.Column("poll_id", BigId, nullable=False),
        sa.Column("interface_count", sa.Integer(), nullable=False),
        sa.Column("rows", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["poll_id"], ["snmp_polls.poll_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("poll_id"),
    )
    connection = op.get_bind()
    for first, last in _poll_steps(connection):
        rows = connection.execute(
            sa.select(_samples.c.poll_id, *(_samples.c[f] for f in FIELDS))
            .where(_samples.c.poll_id.between(first, last))
            .order_by(_samples.c.poll_id, _samples.c.seq)
        )
        packed: dict[int, list[list[Any]]] = {}
        for poll_id, *values in rows:
            values[4] = values[4] or None  # counter_bits
            packed.setdefault(poll_id, []).append(values)
        if packed:
            connection.execute(
                _packed.insert(),
                [
                    {
                        "poll_id": poll_id,
                        "interface_count": len(interfaces),
                        "rows": json.dumps(interfaces, separators=(",", ":")),
                    }
                    for poll_id, interfaces in packed.items()
                ],
            )
    # The rates of rows without a role were never read; the rows themselves are packed now.
    op.execute(
        "DELETE FROM interface_rates WHERE EXISTS (SELECT 1 FROM interface_samples s"
        " WHERE s.poll_id = interface_rates.poll_id AND s.seq = interface_rates.seq"
        " AND s.role IS NULL)"
    )
    op.execute("DELETE FROM interface_samples WHERE role IS NULL")


def downgrade() -> None:
    connection = op.get_bind()
    for first, last in _poll_steps(connection):
        found = connection.execute(
            sa.select(_packed.c.poll_id, _packed.c.rows).where(
                _packed.c.poll_id.between(first, last)
            )
        )
        samples = [
            {"poll_id": poll_id, "seq": seq, **dict(zip(FIELDS, values, strict=False))}
            for poll_id, text in found
            for seq, values in enumerate(json.loads(text))
        ]
        # Uplinks have their rows already; a poll's every other interface gets one back.
        missing = [
            {f: row.get(f) for f in ("poll_id", "seq", *FIELDS)}
            | {"counter_bits": row.get("counter_bits") or 0}
            for row in samples
            if row.get("role") is None
        ]
        if missing:
            connection.execute(_samples.insert(), missing)
    op.drop_table("poll_interfaces")


def _poll_steps(connection: sa.Connection) -> Iterator[tuple[int, int]]:
    """Ranges of poll ids, POLLS_PER_STEP polls each, covering every poll; read a step at a
    time (a district's year of polls is hundreds of millions of ids)."""
    after = None
    while True:
        query = sa.select(_polls.c.poll_id).order_by(_polls.c.poll_id).limit(POLLS_PER_STEP)
        if after is not None:
            query = query.where(_polls.c.poll_id > after)
        ids = list(connection.scalars(query))
        if not ids:
            return
        yield ids[0], ids[-1]
        after = ids[-1]
