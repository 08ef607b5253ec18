"""Collector settings from `READYNET_COLLECTOR_*` environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CollectorSettings(BaseSettings):
    """Built once in `main()` and passed to `create_app(settings)`; never a module singleton."""

    model_config = SettingsConfigDict(
        env_prefix="READYNET_COLLECTOR_", env_nested_delimiter="__", extra="forbid"
    )

    database_url: str = "sqlite:///readynet-collector.db"
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # Largest transfer one on-net speed-test request may ask for.
    speedtest_max_bytes: int = Field(default=1_000_000_000, ge=1)
    # Largest request body accepted on POST /api/v1/results.
    max_batch_bytes: int = Field(default=8_000_000, ge=1024)
    target_profile: str = "setda-2012"
    # Database work that may run at once (the store gate); the rest queues in arrival order.
    # The connection pool is sized above it, so requests never wait on each other for one.
    db_workers: int = Field(default=8, ge=1, le=64)

    # Transport limits (collector/server.py): slow clients and connection floods.
    # A request head must be complete within this many seconds of the connection opening or of
    # the previous response on it; bytes trickling in do not extend it.
    header_timeout_s: float = Field(default=10, gt=0)
    # Longest pause between two pieces of a request body before it is answered 408.
    body_idle_timeout_s: float = Field(default=15, gt=0)
    # Slowest average body rate kept after the first body_idle_timeout_s: a trickle is cut off.
    body_min_bytes_per_s: float = Field(default=1000, gt=0)
    # Open connections served at once; beyond it a new connection gets 503 + Retry-After.
    max_connections: int = Field(default=4096, ge=1)
    # An idle keep-alive connection is closed after this many seconds.
    keep_alive_s: int = Field(default=5, ge=1)
