"""Reading results back: `GET /api/v1/results` (pages of JSON) and `/api/v1/results.csv`.

One kind per request (`throughput`, `latency`, `snmp_poll`: the results' own `kind`), each
with its flat row; filters by school, path (throughput) and time range; keyset pages
(`next_cursor`). Viewers see the schools
of their scope only; a school outside it is simply not found (an empty page), like one that
does not exist.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime, BaseModel
from sqlalchemy.orm import Session

from collector.api.auth import ViewerDep
from collector.api.deps import GateDep
from collector.api.errors import error_responses
from collector.store.results_read import (
    MAX_PAGE,
    BadCursor,
    Kind,
    Page,
    ResultQuery,
    columns,
    read_results,
)

router = APIRouter(prefix="/api/v1", tags=["results"])


class ResultPage(BaseModel):
    """Rows oldest first; pass `next_cursor` back as `cursor` for the next page (null: done)."""

    kind: Kind
    rows: list[dict[str, Any]]
    next_cursor: str | None


KindQuery = Annotated[Kind, Query(description="which results: one kind per request")]
SchoolQuery = Annotated[int | None, Query(ge=1, le=2**31 - 1, description="one school")]
PathQuery = Annotated[
    Literal["onnet", "internet", "classroom"] | None,
    Query(description="throughput tests over this path only (other kinds have no path: none)"),
]
SinceQuery = Annotated[AwareDatetime | None, Query(description="measured at or after")]
UntilQuery = Annotated[AwareDatetime | None, Query(description="measured before")]


def _query(
    kind: Kind,
    school_id: int | None,
    path: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int = MAX_PAGE,
    cursor: str | None = None,
) -> ResultQuery:
    return ResultQuery(
        kind=kind,
        school_id=school_id,
        path=path,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )


@router.get("/results", response_model=ResultPage, responses=error_responses(401, 422))
async def list_results(
    viewer: ViewerDep,
    gate: GateDep,
    kind: KindQuery,
    school_id: SchoolQuery = None,
    path: PathQuery = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Any:
    """A page of stored results of one kind, oldest first, within the caller's scope."""
    query = _query(kind, school_id, path, since, until, limit, cursor)

    def read(session: Session) -> Page:
        return read_results(session=session, query=query, scope=viewer.scope)

    try:
        page = await gate.run(read)
    except BadCursor as exc:
        raise HTTPException(422, str(exc)) from None
    return ResultPage(kind=kind, rows=page.rows, next_cursor=page.next_cursor)


@router.get(
    "/results.csv",
    response_class=StreamingResponse,
    responses={
        **error_responses(401, 422),
        200: {"content": {"text/csv": {}}, "description": "one row per result, with a header"},
    },
)
async def export_results(
    viewer: ViewerDep,
    gate: GateDep,
    kind: KindQuery,
    school_id: SchoolQuery = None,
    path: PathQuery = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
) -> StreamingResponse:
    """Every stored result of one kind matching the filters, as CSV, oldest first."""
    query = _query(kind, school_id, path, since, until)
    header = columns(kind)

    async def body() -> AsyncIterator[str]:
        yield _csv_line(header)
        cursor: str | None = None
        while True:
            # A page per read, each in the gate on its own: a long export never holds a
            # database worker between pages.
            def page(session: Session, after: str | None = cursor) -> Page:
                return read_results(
                    session=session, query=replace(query, cursor=after), scope=viewer.scope
                )

            part = await gate.run(page)
            if part.rows:
                yield "".join(_csv_line([row[key] for key in header]) for row in part.rows)
            if part.next_cursor is None:
                return
            cursor = part.next_cursor

    filename = f"readynet-{kind}.csv"
    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _csv_line(values: list[Any]) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(["" if v is None else _text(v) for v in values])
    return out.getvalue()


def _text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
