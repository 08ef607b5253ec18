"""The agent's slot client against a real collector on loopback: shared exits take turns.

Agents here poll a busy exit every 50 ms instead of waiting the whole `Retry-After` (a whole
second at least), to keep the test short: what keeps them apart is the collector's board, not
how long they wait.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from agent.errors import CollectorRejected, CollectorUnavailable
from agent.schedule import Busy, Go, ScheduleSettings, Slot, TestPolicy, acquire, release
from agent.wire import ThroughputTest
from collector.store.queries import create_school
from tests.fixtures.collector import RunningCollector

HOLD_S = 0.15
ROUNDS = 3
POLL_S = 0.05
# A Tuesday morning, inside the default school day (08:00-15:00 New York).
TUESDAY_0930 = datetime(2026, 3, 3, 14, 30, tzinfo=UTC)


def enrolled(collector: RunningCollector, name: str, shared_exit: str | None) -> str:
    with collector.sessions() as session:
        school = create_school(
            session=session, name=name, students=300, staff=30, shared_exit=shared_exit
        )
    return collector.enroll(school.id)


def client_for(collector: RunningCollector, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=collector.url, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


async def agent_rounds(
    client: httpx.AsyncClient, policy: TestPolicy, held: list[tuple[float, float]]
) -> int:
    """The daemon's order: the policy says go, the collector gives a turn, the test runs."""
    deferred_for_slot = 0
    for _ in range(ROUNDS):
        while True:
            decision = policy.decide(TUESDAY_0930, estimate_bytes=1000)
            assert isinstance(decision, Go)
            slot = await acquire(client, 5)
            if isinstance(slot, Slot):
                break
            # Busy: give the round back, so the budget and the daily cap are untouched.
            policy.release(decision.ticket)
            deferred_for_slot += 1
            await asyncio.sleep(min(slot.retry_after_s, POLL_S))
        start = time.monotonic()
        await asyncio.sleep(HOLD_S)  # the test, holding the exit
        held.append((start, time.monotonic()))
        await release(client, slot)
        result = ThroughputTest(path="onnet", server="loopback", download_bps=1e8)
        policy.record(result, ticket=decision.ticket)
    return deferred_for_slot


def policy_at(tmp_path: Path, name: str) -> TestPolicy:
    settings = ScheduleSettings.model_validate({"goal": {"max_tests_per_day": ROUNDS}})
    return TestPolicy(settings, tmp_path / name, clock=lambda: TUESDAY_0930, rng=random.Random())


async def test_two_schools_behind_one_exit_never_test_at_once(
    collector: RunningCollector, tmp_path: Path
) -> None:
    tokens = [enrolled(collector, name, "north-hub") for name in ("Lincoln", "Jefferson")]
    held: list[list[tuple[float, float]]] = [[], []]
    policies = [policy_at(tmp_path, str(n)) for n in range(2)]
    async with client_for(collector, tokens[0]) as one, client_for(collector, tokens[1]) as two:
        waits = await asyncio.gather(
            agent_rounds(one, policies[0], held[0]), agent_rounds(two, policies[1], held[1])
        )
    assert [len(h) for h in held] == [ROUNDS, ROUNDS]
    for a_start, a_end in held[0]:
        for b_start, b_end in held[1]:
            assert a_end <= b_start or b_end <= a_start, "two tests behind one exit overlapped"
    assert sum(waits) >= 1  # they did meet, and one waited
    # Every round was counted once: the ones given back cost nothing.
    for policy in policies:
        assert policy.budget_figures(TUESDAY_0930).used_bytes == 0
        assert policy.progress(TUESDAY_0930).valid_tests == ROUNDS
        policy.close()


async def test_schools_with_their_own_exits_do_not_wait(
    collector: RunningCollector, tmp_path: Path
) -> None:
    tokens = [enrolled(collector, name, None) for name in ("Adams", "Monroe")]
    held: list[list[tuple[float, float]]] = [[], []]
    policies = [policy_at(tmp_path, str(n)) for n in range(2)]
    async with client_for(collector, tokens[0]) as one, client_for(collector, tokens[1]) as two:
        waits = await asyncio.gather(
            agent_rounds(one, policies[0], held[0]), agent_rounds(two, policies[1], held[1])
        )
    assert waits == [0, 0]
    # Side by side: their tests did overlap in time.
    assert any(
        a_start < b_end and b_start < a_end
        for a_start, a_end in held[0]
        for b_start, b_end in held[1]
    )
    for policy in policies:
        policy.close()


async def test_a_slot_expires_and_releasing_it_late_is_no_error(
    collector: RunningCollector,
) -> None:
    tokens = [enrolled(collector, name, "south-hub") for name in ("Lincoln", "Jefferson")]
    async with client_for(collector, tokens[0]) as one, client_for(collector, tokens[1]) as two:
        slot = await acquire(one, 1)
        assert isinstance(slot, Slot) and slot.seconds == 1
        assert slot.expires_at.tzinfo is not None
        assert await acquire(two, 5) == Busy(retry_after_s=1.0)
        await asyncio.sleep(1.05)
        assert isinstance(await acquire(two, 5), Slot)
        await release(one, slot)  # expired already: nothing to give back, not an error


async def test_client_errors(collector: RunningCollector) -> None:
    async with client_for(collector, "not-a-token") as stranger:
        with pytest.raises(CollectorRejected) as refused:
            await acquire(stranger, 30)
        assert refused.value.status_code == 401
        with pytest.raises(ValueError, match="seconds must be 1 to 3600"):
            await acquire(stranger, 0)
    # Nobody listens on a port taken and closed again.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2) as nowhere:
        with pytest.raises(CollectorUnavailable, match="cannot reach the collector"):
            await acquire(nowhere, 30)
