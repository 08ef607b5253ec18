"""SQLAlchemy 2 models: schools, agents, and the measurements agents send.

A measurement row holds what every kind shares (id, who, when, error); one child table per kind
holds the typed values, so queries and metrics never parse JSON.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    TypeDecorator,
    Uuid,
)
from sqlalchemy.engine.interfaces import Dialect as _Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeEngine


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Counter64(TypeDecorator[int]):
    """An unsigned 64-bit SNMP counter, exact on every backend.

    BIGINT is signed (tops out at 2**63-1) and SQLite's NUMERIC turns large integers into floats,
    so PostgreSQL gets NUMERIC(20) and SQLite gets the decimal digits as text.
    """

    impl = Numeric(20, 0)
    cache_ok = True

    def load_dialect_impl(self, dialect: _Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(20))
        return dialect.type_descriptor(Numeric(20, 0))

    def process_bind_param(self, value: int | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return str(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        return None if value is None else int(value)


class Base(DeclarativeBase):
    pass


class School(Base):
    __tablename__ = "schools"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    students: Mapped[int] = mapped_column(Integer)
    staff: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    agents: Mapped[list[Agent]] = relationship(back_populates="school")


class Agent(Base):
    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id"))
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # Only a SHA-256 of the token is kept: a leaked database leaks no credentials.
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_seen_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_version: Mapped[str | None] = mapped_column(String(40), nullable=True)

    school: Mapped[School] = relationship(back_populates="agents")


class Measurement(Base):
    __tablename__ = "measurements"
    __table_args__ = (
        Index("ix_measurements_school_kind_time", "school_id", "kind", "measured_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"))
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id"))
    kind: Mapped[str] = mapped_column(String(32))
    measured_at: Mapped[datetime] = mapped_column(UtcDateTime)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class ThroughputResult(Base):
    __tablename__ = "throughput_results"

    measurement_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("measurements.id", ondelete="CASCADE"), primary_key=True
    )
    path: Mapped[str] = mapped_column(String(16))
    server: Mapped[str] = mapped_column(String(300))
    streams: Mapped[int] = mapped_column(Integer)
    download_bps: Mapped[float | None] = mapped_column(Float, nullable=True)
    upload_bps: Mapped[float | None] = mapped_column(Float, nullable=True)
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    download_bytes: Mapped[int] = mapped_column(BigInteger)
    upload_bytes: Mapped[int] = mapped_column(BigInteger)
    duration_s: Mapped[float] = mapped_column(Float)


class SnmpPollResult(Base):
    __tablename__ = "snmp_polls"

    measurement_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("measurements.id", ondelete="CASCADE"), primary_key=True
    )
    device: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(300))
    sys_object_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    sys_uptime_ticks: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class InterfaceSample(Base):
    __tablename__ = "interface_samples"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    measurement_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("measurements.id", ondelete="CASCADE"), index=True
    )
    ifindex: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(200))
    octets_in: Mapped[int | None] = mapped_column(Counter64, nullable=True)
    octets_out: Mapped[int | None] = mapped_column(Counter64, nullable=True)
    counter_bits: Mapped[int] = mapped_column(Integer)
    speed_mbps: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
