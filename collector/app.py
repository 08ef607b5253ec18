"""The FastAPI application factory."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.to_thread
from fastapi import FastAPI

from collector import __version__
from collector.api.admission import Admission
from collector.api.classroom_access import CodeCache, classroom_limits, hide_codes_in_access_log
from collector.api.docs import install_docs
from collector.api.errors import install_error_handlers
from collector.api.gate import StoreGate
from collector.api.group_commit import GroupCommit, GroupStore, ThreadStore
from collector.api.limits import BodySizeLimit
from collector.api.methods import answer_other_methods
from collector.api.openapi import with_wire_schemas
from collector.api.post_rate import PostRate
from collector.api.routes import (
    agents,
    classroom,
    health,
    history,
    inventory,
    librespeed,
    metrics,
    people,
    results,
    results_read,
    schools,
    slots,
    speedtest,
)
from collector.api.speedtest_limits import SpeedtestLimiter
from collector.api.store_processes import ProcessStore
from collector.api.tokens import TokenCache
from collector.jobs import PeriodicJob
from collector.metrics.scrape import ScrapeRenderer
from collector.readiness.board import ReadinessBoard
from collector.readiness.keeper import BoardKeeper
from collector.readiness.targets import load_profile
from collector.settings import CollectorSettings
from collector.store.db import make_engine, make_session_factory
from collector.store.migrate import is_at_head
from collector.store.rollups import rollup_work

SPEEDTEST_PAYLOAD_BYTES = 1 << 20
# How long shutdown waits for a readiness refresh in flight (about a second at 10,000 schools).
REFRESH_SHUTDOWN_WAIT_S = 10.0
logger = logging.getLogger(__name__)


class SchemaNotMigrated(RuntimeError):
    pass


def _group_store(settings: CollectorSettings, gate: StoreGate, dialect: str) -> GroupStore:
    """Where result posts are parsed and stored: helper processes, or this process's threads."""
    # SQLite has one writer at a time: writes take turns, parsing need not.
    serialize_writes = dialect == "sqlite"
    if settings.store_processes == 0:
        return ThreadStore(gate, serialize_writes=serialize_writes)
    return ProcessStore(
        settings.database_url,
        processes=settings.store_processes,
        serialize_writes=serialize_writes,
    )


def create_app(settings: CollectorSettings) -> FastAPI:
    """Build the app for `settings`; its lifespan checks the schema and owns the engine."""
    engine = make_engine(settings.database_url, workers=settings.store_workers())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not is_at_head(engine, settings.database_url):
            raise SchemaNotMigrated(
                "the database schema is not at the newest migration: "
                "run `readynet-collector migrate` first"
            )
        async with anyio.create_task_group() as background:
            background.start_soon(app.state.board_keeper.run)
            background.start_soon(app.state.rollup_job.run)
            yield
            background.cancel_scope.cancel()
        if not await app.state.rollup_job.close(timeout_s=REFRESH_SHUTDOWN_WAIT_S):
            logger.warning("the rollup job still holds a database connection; disposing anyway")
        job_engine.dispose()
        await anyio.to_thread.run_sync(app.state.group_store.close)
        # The cancel abandons a refresh in flight; its connection must be back before the pool
        # is disposed, or it returns to the discarded pool and is left open.
        if not await app.state.board_keeper.close(timeout_s=REFRESH_SHUTDOWN_WAIT_S):
            logger.warning(
                "a readiness refresh still holds a database connection after %g s; "
                "disposing of the engine anyway",
                REFRESH_SHUTDOWN_WAIT_S,
            )
        engine.dispose()

    # FastAPI's own /docs and /redoc load from a CDN; collector/api/docs.py serves them offline.
    app = FastAPI(
        title="ReadyNet collector",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = make_session_factory(engine)
    app.state.gate = StoreGate(app.state.session_factory, workers=settings.store_workers())
    app.state.tokens = TokenCache(ttl_s=settings.agent_token_cache_s)
    app.state.group_store = _group_store(settings, app.state.gate, engine.dialect.name)
    app.state.group_commit = GroupCommit(app.state.gate, app.state.group_store)
    # One reserved connection each for /readyz and /metrics (store.db.RESERVED_CONNECTIONS).
    app.state.ready_limiter = anyio.CapacityLimiter(1)
    app.state.target_profile = load_profile(settings.target_profile)
    # Random bytes defeat compression on any middlebox between school and district.
    app.state.speedtest_payload = os.urandom(SPEEDTEST_PAYLOAD_BYTES)
    # Classroom tests: codes looked up through the gate and remembered briefly; one school's
    # classroom transfers share that school's limits.
    app.state.classroom_codes = CodeCache(app.state.gate, ttl_s=settings.classroom_code_cache_s)
    app.state.classroom_limiter = SpeedtestLimiter(classroom_limits(settings))
    app.state.classroom_result_rate = PostRate(per_hour=settings.classroom_results_per_hour)
    # Agents' result posts: per agent per minute, when set (collector/api/routes/results.py).
    app.state.agent_post_rate = (
        PostRate(per_minute=settings.agent_posts_per_minute)
        if settings.agent_posts_per_minute
        else None
    )
    hide_codes_in_access_log()
    app.state.board = ReadinessBoard(app.state.target_profile, days=settings.readiness_window_days)
    app.state.board_keeper = BoardKeeper(
        app.state.board, app.state.session_factory, interval_s=settings.readiness_refresh_s
    )
    # Rollups and retention, once across replicas (collector/jobs.py), on an engine of their own
    # so that they never take one of the connections the pool keeps for requests.
    job_engine = make_engine(settings.database_url, workers=1)
    app.state.rollup_job = PeriodicJob(
        "rollups",
        rollup_work(settings.raw_retention_days),
        make_session_factory(job_engine),
        interval_s=settings.rollup_interval_s,
    )
    # Scrapes take turns on their reserved connection instead of queueing behind ingest.
    app.state.scrape_limiter = anyio.CapacityLimiter(1)
    app.state.scrape_renderer = ScrapeRenderer()
    routers = (
        health,
        metrics,
        results,
        results_read,
        schools,
        speedtest,
        slots,
        librespeed,
        classroom,
        agents,
        inventory,
        people,
        history,
    )
    for module in routers:
        app.include_router(module.router)
    answer_other_methods(app, [module.router for module in routers])
    install_docs(app)
    install_error_handlers(app)
    # Only result posts are limited: on-net and classroom upload tests are meant to be large.
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_batch_bytes,
        prefixes=("/api/v1/results",),
        advertised=True,
    )
    app.add_middleware(
        BodySizeLimit,
        max_bytes=classroom.MAX_RESULT_BYTES,
        prefixes=("/api/v1/classroom/results",),
    )
    # Outermost of ours: held-back requests cost nothing of the layers below.
    app.add_middleware(Admission, limit=settings.admitted_requests)
    with_wire_schemas(app)
    return app
