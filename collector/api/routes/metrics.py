"""GET /metrics for Prometheus, and the HTTP service discovery that lists per-district scrapes.

Each scrape renders the readiness board as the background refresh left it (see
`collector.readiness.keeper`) and reads the rest from the store. Scrapes take turns on a
connection reserved for them instead of queueing behind result posts in the store gate.

Both need a user's token (Prometheus: `authorization` with `credentials_file` in its scrape and
`http_sd_configs`) of scope `all`: a scrape is one page over every school, cached as one, so a
narrower scope would need a page of its own (`collector.api.auth.ScraperDep`).
"""

from __future__ import annotations

from typing import Annotated, Literal

import anyio.to_thread
from fastapi import APIRouter, HTTPException, Query, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from collector.api.auth import ScraperDep
from collector.api.errors import UNKNOWN_DISTRICT, error_responses
from collector.metrics.scrape import ScrapeRenderer, ScrapeRequest
from collector.readiness.keeper import BoardKeeper
from collector.store.latest import Scope
from collector.store.models import District, School

router = APIRouter(tags=["metrics"])
NO_DISTRICT = "none"


class ScrapeTarget(BaseModel):
    """One entry of Prometheus `http_sd_configs`."""

    targets: list[str]
    labels: dict[str, str]


@router.get("/metrics", include_in_schema=False)
async def metrics(
    request: Request,
    scraper: ScraperDep,
    district: Annotated[str | None, Query(max_length=20)] = None,
    interfaces: Annotated[Literal["all", "none"], Query()] = "all",
) -> Response:
    state = request.app.state
    scope = Scope() if district is None else _district_scope(district)
    scrape = ScrapeRequest(
        detail=district is not None,
        scope=scope,
        interfaces=interfaces == "all",
        interface_budget=state.settings.metrics_interface_budget,
    )
    keeper: BoardKeeper = state.board_keeper
    snapshot = await keeper.snapshot()
    gate_load = state.gate.load()
    renderer: ScrapeRenderer = state.scrape_renderer

    def render() -> bytes | None:
        with state.session_factory() as session:
            if not scope.everything and scope.district_id is not None:
                if session.get(District, scope.district_id) is None:
                    return None
            return renderer.render(session=session, request=scrape, board=snapshot, gate=gate_load)

    body = await anyio.to_thread.run_sync(render, limiter=state.scrape_limiter)
    if body is None:
        raise HTTPException(404, UNKNOWN_DISTRICT)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _district_scope(district: str) -> Scope:
    if district == NO_DISTRICT:
        return Scope(everything=False, district_id=None)
    if not district.isdigit():
        raise HTTPException(404, UNKNOWN_DISTRICT)
    return Scope(everything=False, district_id=int(district))


@router.get("/api/v1/metrics/targets", responses=error_responses(401, 403, 503))
async def scrape_targets(request: Request, scraper: ScraperDep) -> list[ScrapeTarget]:
    """Prometheus `http_sd_configs`: one per-district detail scrape per district."""
    host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"

    def read(session: Session) -> list[tuple[str, str]]:
        districts = [(str(i), n) for i, n in session.execute(select(District.id, District.name))]
        orphans = session.scalar(select(School.id).where(School.district_id.is_(None)).limit(1))
        return districts + ([(NO_DISTRICT, "")] if orphans is not None else [])

    rows = await request.app.state.gate.run(read)
    return [
        ScrapeTarget(
            targets=[host],
            labels={"__metrics_path__": "/metrics", "__param_district": key, "district": name},
        )
        for key, name in rows
    ]
