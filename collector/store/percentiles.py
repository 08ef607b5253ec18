"""Percentiles per group, computed by the database, the same on PostgreSQL and SQLite.

PostgreSQL has `percentile_cont`. SQLite has no percentile aggregate, so each value is numbered
within its group with a window function and the two rows around the percentile are
interpolated, with PostgreSQL's own arithmetic (`lo + (hi - lo) * fraction`, positions from
`fraction * (n - 1)`), so both backends give the same float, not merely a close one. NULL values
are left out, as `percentile_cont` leaves them out; a group with none gets NULL.

Only one row per group leaves the database: loading every test of 1,000 schools into Python
took about 150 MB at each readiness refresh.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    Subquery,
    case,
    cast,
    func,
    literal,
    select,
)
from sqlalchemy.sql.expression import ColumnCollection

Columns = ColumnCollection[str, ColumnElement[Any]]
Aggregates = Callable[[Columns], Sequence[ColumnElement[Any]]]


@dataclass(frozen=True)
class Percentile:
    """The `fraction` percentile (0.5 is the median) of column `column` of the source."""

    column: str
    fraction: float


def grouped_percentiles(
    *,
    dialect: str,
    source: Subquery,
    keys: Sequence[str],
    percentiles: Sequence[Percentile],
    aggregates: Aggregates,
) -> Select[Any]:
    """One row per group of `keys`: the keys, then each percentile, then `aggregates(columns)`.

    `source` is the rows to summarise; `aggregates` builds further aggregate columns (counts,
    minimums) from the columns it is given, which are the source's on either backend.
    """
    if dialect == "postgresql":
        c = source.c
        values: list[ColumnElement[Any]] = [
            func.percentile_cont(p.fraction).within_group(c[p.column]) for p in percentiles
        ]
        return select(*(c[k] for k in keys), *values, *aggregates(c)).group_by(
            *(c[k] for k in keys)
        )
    ranked = _ranked(source, keys, {p.column for p in percentiles})
    c = ranked.c
    values = [
        _interpolated(c[p.column], c[f"{p.column}__pos"], c[f"{p.column}__n"], p.fraction)
        for p in percentiles
    ]
    return select(*(c[k] for k in keys), *values, *aggregates(c)).group_by(*(c[k] for k in keys))


def _ranked(source: Subquery, keys: Sequence[str], columns: set[str]) -> Subquery:
    """The source with, for each column, its rank in the group (NULLs last) and its count."""
    group = [source.c[k] for k in keys]
    extra: list[ColumnElement[Any]] = []
    for name in sorted(columns):
        value = source.c[name]
        extra += [
            func.row_number()
            .over(partition_by=group, order_by=value.asc().nulls_last())
            .label(f"{name}__pos"),
            func.count(value).over(partition_by=group).label(f"{name}__n"),
        ]
    return select(source, *extra).subquery()


def _interpolated(
    value: ColumnElement[Any],
    position: ColumnElement[Any],
    count: ColumnElement[Any],
    fraction: float,
) -> ColumnElement[Any]:
    # PostgreSQL: first_row = floor(f * (n - 1)), proportion = f * (n - 1) - first_row (0-based).
    rank = literal(fraction) * (count - 1)
    lower = cast(rank, Integer) + 1  # CAST truncates, floor for the non-negative ranks used
    low = func.max(case((position == lower, value)))
    high = func.max(case((position == lower + 1, value)))
    proportion = func.max(rank - cast(rank, Integer))
    return low + (func.coalesce(high, low) - low) * proportion
