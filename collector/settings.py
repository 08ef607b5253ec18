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
