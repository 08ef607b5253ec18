"""Each district's newest tests, kept between detail scrapes and re-read only where news came.

Prometheus scrapes each district's detail once a minute and agents report about once an hour,
so ranking a month of a district's tests at every scrape (0.6 s for 200 schools of hourly
tests) would recompute the same answer nearly every time. The newest rows of each school are
kept per scope instead; a scrape re-reads only the schools that received a throughput or
latency result since the previous read of that scope (looking back the board's commit margin,
for late commits) and schools new to the scope, with the same few statements whatever their
number. Names are read at every scrape, so a renamed or moved school shows at once. A group
whose newest test is older than the window start is dropped when rendered: then none of its
tests is in the window.

Not thread-safe: used by one scrape at a time, as its `ScrapeRenderer` is.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from collector.readiness.board import COMMIT_MARGIN
from collector.store.latest import Scope
from collector.store.newest import (
    AgentBudget,
    NewestLatency,
    NewestTest,
    agent_budgets,
    newest_latencies,
    newest_tests,
    schools_with_results_since,
    scope_schools,
)


@dataclass(frozen=True)
class SchoolNewest:
    """One school's newest tests per path and room, latency tests per destination, budgets."""

    tests: tuple[NewestTest, ...] = ()
    latencies: tuple[NewestLatency, ...] = ()
    budgets: tuple[AgentBudget, ...] = ()


_NOTHING = SchoolNewest()


@dataclass(frozen=True)
class ScopeNewest:
    """The schools of a scope by id: their names and their newest tests."""

    names: dict[int, str]
    schools: dict[int, SchoolNewest] = field(default_factory=dict)


@dataclass(frozen=True)
class _Held:
    read_at: datetime
    schools: dict[int, SchoolNewest]


class NewestCache:
    """The newest tests of each scope's schools, brought up to date at each `read`."""

    def __init__(self) -> None:
        self._held: dict[Scope, _Held] = {}

    def read(self, *, session: Session, scope: Scope, since: datetime) -> ScopeNewest:
        """The schools of `scope` with their newest tests since `since` (older rows may remain:
        drop what is older than `since` when rendering)."""
        read_at = datetime.now(UTC)
        names = scope_schools(session=session, scope=scope)
        held = self._held.get(scope)
        stale: set[int] | None = None
        if held is not None:
            stale = schools_with_results_since(
                session=session, scope=scope, received_since=held.read_at - COMMIT_MARGIN
            )
            stale = (stale | (names.keys() - held.schools.keys())) & names.keys()
        fresh = _read(session, scope, stale, since) if stale is None or stale else {}
        kept = {} if held is None else held.schools
        schools = {
            school_id: fresh.get(school_id, _NOTHING)
            if stale is None or school_id in stale
            else kept[school_id]
            for school_id in names
        }
        self._held[scope] = _Held(read_at, schools)
        return ScopeNewest(names, schools)


def read_newest(*, session: Session, scope: Scope, since: datetime) -> ScopeNewest:
    """One read without a cache."""
    return NewestCache().read(session=session, scope=scope, since=since)


def _read(
    session: Session, scope: Scope, schools: Collection[int] | None, since: datetime
) -> dict[int, SchoolNewest]:
    tests: dict[int, list[NewestTest]] = {}
    for t in newest_tests(session=session, scope=scope, schools=schools, since=since):
        tests.setdefault(t.school_id, []).append(t)
    latencies: dict[int, list[NewestLatency]] = {}
    for r in newest_latencies(session=session, scope=scope, schools=schools, since=since):
        latencies.setdefault(r.school_id, []).append(r)
    budgets: dict[int, list[AgentBudget]] = {}
    for b in agent_budgets(session=session, scope=scope, schools=schools, since=since):
        budgets.setdefault(b.school_id, []).append(b)
    return {
        school_id: SchoolNewest(
            tuple(tests.get(school_id, ())),
            tuple(latencies.get(school_id, ())),
            tuple(budgets.get(school_id, ())),
        )
        for school_id in tests.keys() | latencies.keys() | budgets.keys()
    }
