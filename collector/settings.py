"""Collector settings from `READYNET_COLLECTOR_*` environment variables."""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator
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
    # Unset: 8 on PostgreSQL, 2 on SQLite (one writer at a time; more only wait on its lock).
    db_workers: int | None = Field(default=None, ge=1, le=64)

    def store_workers(self) -> int:
        if self.db_workers is not None:
            return self.db_workers
        return 2 if self.database_url.startswith("sqlite") else 8

    # Helper processes that parse and store result posts, each a whole group at a time, so that
    # parsing runs on other cores than the one serving HTTP (collector/api/store_processes.py).
    # 0: in this process's store threads, under its one GIL (about 4,500 results/s at most).
    store_processes: int = Field(default=2, ge=0, le=64)

    # Requests inside the application at once; later ones wait outside, in arrival order, at
    # no cost (health, readiness and metrics are never held back).
    admitted_requests: int = Field(default=32, ge=1, le=10_000)
    # Readiness is judged on the tests of the last this many days.
    readiness_window_days: int = Field(default=30, ge=1, le=3650)
    # How often every school's readiness is brought up to date for /metrics (in the background).
    readiness_refresh_s: float = Field(default=30, gt=0, le=3600)
    # Interfaces in the default /metrics scrape; past it, each device's busiest ones only.
    metrics_interface_budget: int = Field(default=20_000, ge=0)

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

    # Per-agent speed-test limits (collector/api/speedtest_limits.py); beyond them, 429 with
    # Retry-After. speedtest_max_bytes above also caps one upload (413 beyond it).
    # Transfers open at once per agent and direction: the agent allows up to 16 streams.
    speedtest_max_streams: int = Field(default=16, ge=1)
    # Bytes one agent may move each way per rolling window. A 15 s test at 1 Gbit/s moves
    # 1.9 GB each way; the agent's timer runs at most every 15 minutes, so one test per window
    # always fits, with a third to spare, while a runaway client gets 2.5 GB per 10 minutes.
    speedtest_window_s: float = Field(default=600, gt=0)
    speedtest_download_budget_bytes: int = Field(default=2_500_000_000, ge=1)
    speedtest_upload_budget_bytes: int = Field(default=2_500_000_000, ge=1)
    # A transfer moving less than this over a whole rate window is cut off (8 kB/s per stream is
    # 0.5 Mbit/s over 8 streams, far below any target), freeing its stream and buffers.
    speedtest_min_bytes_per_s: float = Field(default=8000, gt=0)
    speedtest_rate_window_s: float = Field(default=5, gt=0)

    # Classroom tests (collector/api/routes/librespeed.py, classroom.py): browsers on a school's
    # classroom code share that school's limits, per direction, in the speed-test window above.
    # Two classrooms testing at once with the page's 5 streams (or LibreSpeed's 6) fit.
    classroom_max_streams: int = Field(default=12, ge=1)
    # A 10 s browser test at 500 Mbit/s moves 625 MB each way: several rooms per window fit.
    classroom_download_budget_bytes: int = Field(default=5_000_000_000, ge=1)
    classroom_upload_budget_bytes: int = Field(default=5_000_000_000, ge=1)
    # Classroom results one school may store per hour (a burst of this many, refilled evenly):
    # a code handed to teachers can leak, and must not let anyone fill the database.
    classroom_results_per_hour: int = Field(default=240, ge=1)
    # Result posts one agent may make per minute on /api/v1/results (a burst of this many, then
    # refilled evenly), answered 429 with Retry-After before the body is read; unset, no limit.
    # An agent delivers a backlog in batches back to back (500 results each): 60 lets a day's
    # backlog through in minutes while a runaway agent cannot take the admitted requests.
    agent_posts_per_minute: int | None = Field(default=None, ge=1)
    # Agents send a heartbeat every minute; one silent for longer than this is `stale`.
    agent_stale_after_s: float = Field(default=300, ge=60, le=7 * 86400)
    # How long a known agent token is answered from memory: a token revoked by `agent revoke`
    # (another process) stops working within this time.
    agent_token_cache_s: float = Field(default=60, ge=0, le=3600)
    # How long an enrolment code from `agent enroll` can be exchanged for a token.
    enrolment_code_days: float = Field(default=7, gt=0, le=365)
    # How long a code's lookup is remembered: a revoked code stops working within this time.
    classroom_code_cache_s: float = Field(default=10, ge=0, le=3600)
    # Where teachers reach the collector (e.g. https://readynet.district.example), for the page
    # URL that `classroom code` prints; unset, it is built from host and port.
    public_url: str | None = Field(default=None, pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")

    # People (collector/api/auth.py): a web sign-in lasts this many hours (its cookie too).
    web_session_hours: float = Field(default=12, gt=0, le=24 * 30)
    # Sign-in attempts per minute per name and per client address (a burst of this many, then
    # refilled evenly); beyond it, 429 with Retry-After, before the password is checked.
    signin_attempts_per_minute: int = Field(default=10, ge=1, le=10_000)

    def page_url(self, path: str) -> str:
        base = self.public_url or f"http://{self.host}:{self.port}"
        return base.rstrip("/") + path

    # Storage (collector/store/rollups.py, collector/jobs.py): every this many seconds one
    # replica rolls the complete hours and days up and deletes raw results past their retention.
    rollup_interval_s: float = Field(default=300, gt=0, le=86400)
    # Raw results are kept this many days (a school year and then some), and only once their
    # days are rolled up; 0 keeps them for ever. Never shorter than the readiness window.
    raw_retention_days: int = Field(default=400, ge=0, le=36500)

    @field_validator("raw_retention_days")
    @classmethod
    def _window_within_retention(cls, days: int, info: ValidationInfo) -> int:
        window = info.data.get("readiness_window_days")
        if days and window is not None and window > days:
            raise ValueError(
                f"shorter than readiness_window_days ({window}): the readiness window would "
                "reach results already deleted; keep raw results longer or shorten the window"
            )
        return days
