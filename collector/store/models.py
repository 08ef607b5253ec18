"""SQLAlchemy 2 models: schools, agents, and the measurements agents send.

A measurement row holds what every kind shares (id, who, when, error); one child table per kind
holds the typed values, so queries and metrics never parse JSON.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


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
    """An unsigned 64-bit SNMP counter, exact on every backend, in 8 bytes.

    Both backends' 64-bit integers are signed, so the counter's bit pattern is stored as is:
    values from 2**63 up come back from the column negative and are turned back here. Counters
    are never ordered or summed in SQL, so the signed order does not matter.
    """

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: int | None, dialect: Dialect) -> int | None:
        if value is None:
            return None
        return value - 2**64 if value >= 2**63 else value

    def process_result_value(self, value: int | None, dialect: Dialect) -> int | None:
        if value is None:
            return None
        return value + 2**64 if value < 0 else value


# 64-bit keys for tables that grow with measurements; SQLite's rowid alias must be INTEGER.
BigId = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    pass


class District(Base):
    """A school district: the unit Prometheus scrapes interface detail by."""

    __tablename__ = "districts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # The state's two-letter code (NCES `ST`) and the NCES district id (LEAID), where known.
    state: Mapped[str | None] = mapped_column(String(2), nullable=True, index=True)
    leaid: Mapped[str | None] = mapped_column(String(7), nullable=True, unique=True)


class School(Base):
    __tablename__ = "schools"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    district_id: Mapped[int | None] = mapped_column(
        ForeignKey("districts.id"), nullable=True, index=True
    )
    students: Mapped[int] = mapped_column(Integer)
    staff: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # Schools behind one shared internet exit (a district hub) share this name: their agents
    # take turns for throughput tests, so that no two measure the same exit at once.
    shared_exit: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # The NCES school id (NCESSCH, 12 digits), where known.
    ncessch: Mapped[str | None] = mapped_column(String(12), nullable=True, unique=True)
    # Visitors and guests on the network at a busy time, an estimate (not in the targets'
    # denominator unless a target profile says so).
    guests: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Grade span as NCES writes it (GSLO / GSHI): PK, KG, 01..12, 13, UG, AE.
    grade_low: Mapped[str | None] = mapped_column(String(2), nullable=True)
    grade_high: Mapped[str | None] = mapped_column(String(2), nullable=True)

    agents: Mapped[list[Agent]] = relationship(back_populates="school")


class Circuit(Base):
    """A contracted circuit: a school's (or a district hub's) internet access or WAN link."""

    __tablename__ = "circuits"
    __table_args__ = (
        CheckConstraint(
            "(school_id IS NULL) <> (district_id IS NULL)", name="ck_circuits_one_owner"
        ),
        CheckConstraint("kind IN ('internet', 'wan')", name="ck_circuits_kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # A school's own circuit, or a district's (a hub several schools sit behind).
    school_id: Mapped[int | None] = mapped_column(
        ForeignKey("schools.id"), nullable=True, index=True
    )
    district_id: Mapped[int | None] = mapped_column(
        ForeignKey("districts.id"), nullable=True, index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(8))
    down_mbps: Mapped[float] = mapped_column(Float)
    up_mbps: Mapped[float] = mapped_column(Float)
    provider: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class AssessmentRoom(Base):
    """A room where students take online tests, and how many at once (classroom page rooms)."""

    __tablename__ = "testing_rooms"
    __table_args__ = (UniqueConstraint("school_id", "name", name="uq_testing_rooms_school_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    test_takers: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class User(Base):
    """A person who reads (viewer) or also changes (admin) what their scope covers.

    The scope is everything, one state (its two-letter code), one district or one school.
    """

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("role IN ('admin', 'viewer')", name="ck_users_role"),
        CheckConstraint("scope IN ('all', 'state', 'district', 'school')", name="ck_users_scope"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The sign-in name (an e-mail address, usually).
    name: Mapped[str] = mapped_column(String(200), unique=True)
    role: Mapped[str] = mapped_column(String(8))
    scope: Mapped[str] = mapped_column(String(8))
    scope_state: Mapped[str | None] = mapped_column(String(2), nullable=True)
    scope_district_id: Mapped[int | None] = mapped_column(ForeignKey("districts.id"), nullable=True)
    scope_school_id: Mapped[int | None] = mapped_column(ForeignKey("schools.id"), nullable=True)
    # scrypt, with its parameters and salt, for the web sign-in; None: API tokens only.
    password_hash: Mapped[str | None] = mapped_column(String(300), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class ApiToken(Base):
    """A user's API token (e.g. for a script or Prometheus); only its SHA-256 is kept."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class WebSession(Base):
    """A signed-in browser: the cookie's SHA-256 and the CSRF token's, until it expires."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_sha256: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AuditEntry(Base):
    """Who changed what in the inventory, people or agents, and when."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # `user:<name>`, `token:<name> of <user>`, `cli:<unix user>`, `agent:<name>`.
    actor: Mapped[str] = mapped_column(String(300))
    action: Mapped[str] = mapped_column(String(32))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # What changed, as JSON (old and new values; never a secret).
    details: Mapped[str] = mapped_column(Text, default="{}")


class Agent(Base):
    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id"))
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # Only a SHA-256 of the token is kept: a leaked database leaks no credentials. None until
    # the agent has exchanged its enrolment code for a token.
    token_sha256: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_seen_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_version: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # When the code was exchanged (or the token minted directly), and from which host.
    enrolled_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    hostname: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # A revoked agent keeps its row and history; its token answers 401 until it is re-enrolled.
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # After the agent rotates its token, the old one still works until the new one is first
    # used or this time passes: an agent that crashed before saving the new token is not
    # locked out.
    previous_token_sha256: Mapped[str | None] = mapped_column(
        String(64), unique=True, nullable=True
    )
    previous_token_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)

    school: Mapped[School] = relationship(back_populates="agents")
    heartbeat: Mapped[AgentHeartbeat | None] = relationship(back_populates="agent")


class EnrolmentCode(Base):
    """A one-time code a technician types on the agent's box; only its SHA-256 is kept."""

    __tablename__ = "enrolment_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class AgentHeartbeat(Base):
    """The newest heartbeat of one agent: what district IT needs to see it is alive and well."""

    __tablename__ = "agent_heartbeats"

    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    version: Mapped[str] = mapped_column(String(40))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    outbox_pending: Mapped[int] = mapped_column(BigInteger)
    outbox_oldest_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    dead_letters: Mapped[int] = mapped_column(BigInteger)
    # Results the outbox summarised or dropped to stay under its size cap (never silently).
    outbox_lost: Mapped[int] = mapped_column(BigInteger)
    last_test_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_poll_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_delivery_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    ceiling_mbps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    ceiling_wifi: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    ceiling_interface: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The agent's clock minus the collector's, in seconds (positive: the agent is ahead).
    clock_offset_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    config_etag: Mapped[str | None] = mapped_column(String(64), nullable=True)
    config_error: Mapped[str | None] = mapped_column(String(500), nullable=True)

    agent: Mapped[Agent] = relationship(back_populates="heartbeat")


class AgentConfig(Base):
    """The part of an agent's settings the collector holds: schedule, devices, uplink."""

    __tablename__ = "agent_configs"

    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"), primary_key=True)
    # Canonical JSON (sorted keys), so the ETag names the content.
    document: Mapped[str] = mapped_column(Text)
    etag: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Measurement(Base):
    __tablename__ = "measurements"
    __table_args__ = (
        Index("ix_measurements_school_kind_time", "school_id", "kind", "measured_at"),
        # The readiness window of every school at once: one range scan per kind.
        Index("ix_measurements_kind_time", "kind", "measured_at"),
        # What arrived since the last readiness refresh.
        Index("ix_measurements_kind_received", "kind", "received_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    # None for a classroom test taken in a browser with the school's classroom code.
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"), nullable=True)
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
    download_p90_bps: Mapped[float | None] = mapped_column(Float, nullable=True)
    upload_p90_bps: Mapped[float | None] = mapped_column(Float, nullable=True)
    loaded_latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    responsiveness_rpm: Mapped[float | None] = mapped_column(Float, nullable=True)
    agent_link_mbps: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    agent_wifi: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    agent_limited: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    background_bps: Mapped[float | None] = mapped_column(Float, nullable=True)
    budget_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    budget_used_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    server_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    sponsor: Mapped[str | None] = mapped_column(String(300), nullable=True)
    distance_km: Mapped[float | None] = mapped_column(Float, nullable=True)
    raw: Mapped[str | None] = mapped_column(Text, nullable=True)
    room: Mapped[str | None] = mapped_column(String(64), nullable=True)


class LatencyResult(Base):
    __tablename__ = "latency_results"

    measurement_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("measurements.id", ondelete="CASCADE"), primary_key=True
    )
    target: Mapped[str] = mapped_column(String(300))
    method: Mapped[str] = mapped_column(String(16))
    answered: Mapped[int] = mapped_column(Integer)
    lost: Mapped[int] = mapped_column(Integer)
    rtt_p50_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    rtt_p90_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    jitter_ms: Mapped[float | None] = mapped_column(Float, nullable=True)


class ClassroomCode(Base):
    """A short code a district hands to a school's teachers for the classroom test page.

    It lets a browser record classroom tests for that one school and nothing else, so it is kept
    as is (teachers are given it again, unlike agent tokens, which are stored hashed).
    """

    __tablename__ = "classroom_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id"), index=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class Device(Base):
    """A polled device of a school, with pointers to its newest polls.

    Kept current at ingest, so "the newest poll of every device" is one join, whatever the
    history holds. Newest means latest `ordered_at` (see SnmpPollResult), so a device clock
    running ahead cannot pin an old poll as the newest.
    """

    __tablename__ = "devices"
    __table_args__ = (UniqueConstraint("school_id", "name", name="uq_devices_school_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id"))
    name: Mapped[str] = mapped_column(String(64))
    last_poll_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    last_poll_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_ok_poll_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    last_ok_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class SnmpPollResult(Base):
    __tablename__ = "snmp_polls"
    __table_args__ = (
        PrimaryKeyConstraint("poll_id", name="pk_snmp_polls"),
        Index("ix_snmp_polls_device_time", "device_id", "ordered_at"),
    )

    poll_id: Mapped[int] = mapped_column(BigId, autoincrement=True)
    measurement_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("measurements.id", ondelete="CASCADE"), unique=True
    )
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    address: Mapped[str] = mapped_column(String(300))
    sys_object_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    sys_uptime_ticks: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # min(measured_at, received_at): when the poll counts as taken for "newest" questions.
    ordered_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # The device profile that read it, and the Wi-Fi totals (controllers and APs).
    profile: Mapped[str | None] = mapped_column(String(64), nullable=True)
    clients: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    aps_up: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    aps_total: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)


class PollInterfaces(Base):
    """Every interface of one poll, packed: one row a poll whatever the device's port count.

    `rows` is JSON, an array per interface holding the wire's `InterfaceCounters` fields in
    their order (counters as exact unsigned integers), in the order the device answered; a row
    from before a field was appended is shorter and reads with that field's default. A 48-port
    switch polled every 5 minutes was 48 rows in `interface_samples` each time, and writing them
    was most of the cost of storing a poll; only `latest` (the /metrics scrape) reads every port,
    and it reads one poll per device. Uplinks are kept as rows too (InterfaceSample).
    """

    __tablename__ = "poll_interfaces"

    poll_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("snmp_polls.poll_id", ondelete="CASCADE"), primary_key=True
    )
    interface_count: Mapped[int] = mapped_column(Integer)
    rows: Mapped[str] = mapped_column(Text)


class InterfaceSample(Base):
    """One uplink of one poll (an interface with a role): 8-byte keys and counters, no per-row
    surrogate id, the rows the rate maths and the readiness peaks read.

    The key is the poll and the row's position in it (not ifIndex: a device may report the same
    ifIndex twice, and a poll is stored as the device answered), the same position as in the
    poll's PollInterfaces. Before revision 0010 every interface had a row here; 0010 packed them.
    On SQLite the rows live in the key's own b-tree (WITHOUT ROWID), so no second index is kept.
    """

    __tablename__ = "interface_samples"
    __table_args__ = (
        PrimaryKeyConstraint("poll_id", "seq", name="pk_interface_samples"),
        {"sqlite_with_rowid": False},
    )

    poll_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("snmp_polls.poll_id", ondelete="CASCADE")
    )
    seq: Mapped[int] = mapped_column(Integer)
    ifindex: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    octets_in: Mapped[int | None] = mapped_column(Counter64, nullable=True)
    octets_out: Mapped[int | None] = mapped_column(Counter64, nullable=True)
    # 64 or 32, the counters' wrap point; 0 for a row without counters (kept NOT NULL since
    # 0002, so that 0004 adds columns without rebuilding this, the largest table).
    counter_bits: Mapped[int] = mapped_column(SmallInteger)
    speed_mbps: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    alias: Mapped[str | None] = mapped_column(String(255), nullable=True)
    if_type: Mapped[int | None] = mapped_column(Integer, nullable=True)
    admin_status: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    oper_status: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    role: Mapped[str | None] = mapped_column(String(8), nullable=True)


class InterfaceRate(Base):
    """The rate of one uplink row (poll, seq: a row with a role) since the device's previous
    successful poll: with polls every 5 minutes, the 5-minute rates the readiness engine's peaks
    are built on. Other ports get none (`collector.store.poll_rates`); revision 0010 removed the
    rates older versions computed for them.

    `no_rate` says why a row has none (first sample, reboot, counter reset, ambiguous 32-bit
    wrap, ...: `agent.snmp.rates`), so a gap is explained rather than filled with a spike.
    """

    __tablename__ = "interface_rates"
    __table_args__ = (
        PrimaryKeyConstraint("poll_id", "seq", name="pk_interface_rates"),
        {"sqlite_with_rowid": False},
    )

    poll_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("snmp_polls.poll_id", ondelete="CASCADE")
    )
    seq: Mapped[int] = mapped_column(Integer)
    seconds: Mapped[float] = mapped_column(Float)
    in_bps: Mapped[float | None] = mapped_column(Float, nullable=True)
    out_bps: Mapped[float | None] = mapped_column(Float, nullable=True)
    no_rate: Mapped[str | None] = mapped_column(String(16), nullable=True)


class AccessPointSample(Base):
    """One access point of one poll, as its controller (or the cloud dashboard) reported it."""

    __tablename__ = "access_point_samples"
    __table_args__ = (
        PrimaryKeyConstraint("poll_id", "seq", name="pk_access_point_samples"),
        {"sqlite_with_rowid": False},
    )

    poll_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("snmp_polls.poll_id", ondelete="CASCADE")
    )
    seq: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(200))
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    clients: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    up: Mapped[bool | None] = mapped_column(Boolean, nullable=True)


class SsidSample(Base):
    """One wireless network of one poll and its clients."""

    __tablename__ = "ssid_samples"
    __table_args__ = (
        PrimaryKeyConstraint("poll_id", "seq", name="pk_ssid_samples"),
        {"sqlite_with_rowid": False},
    )

    poll_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("snmp_polls.poll_id", ondelete="CASCADE")
    )
    seq: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    clients: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class ThroughputRollup(Base):
    """One school's throughput tests of one path over one UTC hour or day (`period`).

    `tests` counts successful tests (no error, a download figure): the ones the figures and
    sketches hold; `errors` the failed ones. Hour figures are exact; a day's medians and p90s
    are its merged hourly sketches' (`collector.store.rollups`), within the sketch's bound.
    """

    __tablename__ = "throughput_rollups"
    __table_args__ = (
        PrimaryKeyConstraint("school_id", "period", "path", "start", name="pk_throughput_rollups"),
        # One period's rows of every school at once: rebuilding an hour, merging a day.
        Index("ix_throughput_rollups_period_start", "period", "start"),
        CheckConstraint("period IN ('hour', 'day')", name="ck_throughput_rollups_period"),
    )

    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"))
    period: Mapped[str] = mapped_column(String(4))
    path: Mapped[str] = mapped_column(String(16))
    start: Mapped[datetime] = mapped_column(UtcDateTime)
    tests: Mapped[int] = mapped_column(Integer)
    errors: Mapped[int] = mapped_column(Integer)
    agent_limited: Mapped[int] = mapped_column(Integer)
    download_median_bps: Mapped[float | None] = mapped_column(Float, nullable=True)
    download_p90_bps: Mapped[float | None] = mapped_column(Float, nullable=True)
    download_min_bps: Mapped[float | None] = mapped_column(Float, nullable=True)
    download_max_bps: Mapped[float | None] = mapped_column(Float, nullable=True)
    upload_median_bps: Mapped[float | None] = mapped_column(Float, nullable=True)
    upload_p90_bps: Mapped[float | None] = mapped_column(Float, nullable=True)
    upload_min_bps: Mapped[float | None] = mapped_column(Float, nullable=True)
    upload_max_bps: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Over the tests that timed round trips both idle and under load (as the readiness answer).
    idle_latency_median_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    loaded_latency_median_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Mergeable sketches as JSON text (collector.store.rollups.Sketch).
    download_sketch: Mapped[str] = mapped_column(Text)
    upload_sketch: Mapped[str] = mapped_column(Text)
    idle_latency_sketch: Mapped[str] = mapped_column(Text)
    loaded_latency_sketch: Mapped[str] = mapped_column(Text)


class UplinkRollup(Base):
    """One uplink interface (device, ifIndex, role) over one UTC hour or day: the busier
    direction's 5-minute rates, as the readiness answer's uplink peaks take them."""

    __tablename__ = "uplink_rollups"
    __table_args__ = (
        PrimaryKeyConstraint(
            "device_id", "ifindex", "role", "period", "start", name="pk_uplink_rollups"
        ),
        Index("ix_uplink_rollups_school", "school_id", "period", "start"),
        Index("ix_uplink_rollups_period_start", "period", "start"),
        CheckConstraint("period IN ('hour', 'day')", name="ck_uplink_rollups_period"),
    )

    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    ifindex: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(8))
    period: Mapped[str] = mapped_column(String(4))
    start: Mapped[datetime] = mapped_column(UtcDateTime)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"))
    # The interface's name in the period's newest sample.
    ifname: Mapped[str] = mapped_column(String(200))
    speed_mbps: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # 5-minute rates, and intervals without one (restarts, counter resets: explained gaps).
    rates: Mapped[int] = mapped_column(Integer)
    gaps: Mapped[int] = mapped_column(Integer)
    p95_bps: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_bps: Mapped[float | None] = mapped_column(Float, nullable=True)
    sketch: Mapped[str] = mapped_column(Text)


class RollupState(Base):
    """How far the rollups have come (one row, name 'rollups').

    Hours before `hours_before` and days before `days_before` are rolled up; results received
    after `received_through` have not been looked at for late arrivals yet; raw measurements
    before `raw_deleted_before` are gone (their hours are never rebuilt).
    """

    __tablename__ = "rollup_state"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    hours_before: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    days_before: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    received_through: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    raw_deleted_before: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class JobLease(Base):
    """A periodic job's lease: whoever holds it (until `lease_until`) runs the job, once per
    period (`due_at`), across every replica on the database (`collector.jobs`)."""

    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_until: Mapped[datetime] = mapped_column(UtcDateTime)
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)


class JobRun(Base):
    """One run of a periodic job: who ran it, when, and what it did (or why it failed)."""

    __tablename__ = "job_runs"
    __table_args__ = (Index("ix_job_runs_name_started", "name", "started_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    holder: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # A short account ("12 hours, 0 days, 0 raw rows deleted") or the error.
    outcome: Mapped[str | None] = mapped_column(String(500), nullable=True)


class ExitSlot(Base):
    """A throughput test's turn on a shared exit (or its school): one row per exit key."""

    __tablename__ = "exit_slots"

    exit_key: Mapped[str] = mapped_column(String(120), primary_key=True)
    slot_id: Mapped[str] = mapped_column(String(32), unique=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"))
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime)
