"""Every school's readiness, kept current by recomputing only the schools that changed.

A scrape or an "all schools" read must not re-derive 30 days of tests for 10,000 schools each
time. The board holds the last verdict of every school and, on each refresh, recomputes only:
schools that received a throughput result since the last refresh, schools whose oldest test
has slid out of the window, and schools whose facts (name, users, district) changed. The first
refresh computes everything, in one set-based statement.

Thread-safe: refreshes are serialised by a lock, readers get an immutable snapshot.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from collector.readiness.evaluate import Readiness, SchoolFacts
from collector.readiness.report import judge, window_start
from collector.readiness.targets import TargetProfile
from collector.store.models import District, School
from collector.store.windows import SchoolWindow, school_windows, schools_with_tests_since

# A batch's received_at is taken before it commits: look back far enough to see late commits.
COMMIT_MARGIN = timedelta(seconds=60)


@dataclass(frozen=True)
class BoardEntry:
    facts: SchoolFacts
    district: str
    readiness: Readiness
    oldest_test: datetime | None


@dataclass(frozen=True)
class Snapshot:
    """The board at one instant: entries by school id, and when it was computed."""

    computed_at: datetime
    window_days: int
    entries: dict[int, BoardEntry] = field(default_factory=dict)


class ReadinessBoard:
    """Readiness of every school against one profile over a sliding window of `days` days."""

    def __init__(self, profile: TargetProfile, *, days: int) -> None:
        self._profile = profile
        self._days = days
        self._lock = threading.Lock()
        self._snapshot = Snapshot(datetime.min.replace(tzinfo=UTC), days)
        self._refreshed_at: datetime | None = None

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def refresh(self, session: Session, now: datetime | None = None) -> Snapshot:
        """Bring the board up to date; returns the new snapshot. Runs in a worker thread."""
        with self._lock:
            now = now or datetime.now(UTC)
            start = window_start(self._days, now)
            facts = _school_facts(session)
            stale = self._stale(session, facts, start)
            windows = school_windows(session=session, start=start, school_ids=stale)
            entries = {
                school_id: self._entry(facts[school_id], windows.get(school_id), start)
                if stale is None or school_id in stale
                else self._snapshot.entries[school_id]
                for school_id in facts
            }
            self._snapshot = Snapshot(now, self._days, entries)
            self._refreshed_at = now
            return self._snapshot

    def _stale(
        self, session: Session, facts: dict[int, tuple[SchoolFacts, str]], start: datetime
    ) -> set[int] | None:
        """School ids to recompute, or None for all of them (the first refresh)."""
        if self._refreshed_at is None:
            return None
        known = self._snapshot.entries
        stale = schools_with_tests_since(
            session=session, received_since=self._refreshed_at - COMMIT_MARGIN
        )
        for school_id, (school, district) in facts.items():
            entry = known.get(school_id)
            if (
                entry is None
                or (entry.facts, entry.district) != (school, district)
                or (entry.oldest_test is not None and entry.oldest_test < start)
            ):
                stale.add(school_id)
        return stale & set(facts)

    def _entry(
        self, facts: tuple[SchoolFacts, str], window: SchoolWindow | None, start: datetime
    ) -> BoardEntry:
        school, district = facts
        readiness = judge(
            school=school, window=window, start=start, days=self._days, profile=self._profile
        )
        oldest = None if window is None else window.oldest
        return BoardEntry(school, district, readiness, oldest)


def _school_facts(session: Session) -> dict[int, tuple[SchoolFacts, str]]:
    rows = session.execute(
        select(School.id, School.name, School.students, School.staff, District.name).outerjoin(
            District, District.id == School.district_id
        )
    )
    return {
        school_id: (SchoolFacts(school_id, name, students, staff), district or "")
        for school_id, name, students, staff, district in rows
    }
