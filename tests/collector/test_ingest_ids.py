"""Every id of a batch answered on its own, on both databases: stored, a duplicate of the
sender's own, or rejected with the reason; and overlapping retries from 100 agents at once
stored exactly once."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from agent.outbox import Outbox
from agent.uploader import deliver
from agent.wire import Batch, InterfaceCounters, LatencyTest, SnmpPoll
from collector.store.agents import set_agent_config
from collector.store.ingest import FOREIGN_ID
from collector.store.models import Measurement
from tests.fixtures.collector import RunningCollector


def _latency(**fields: Any) -> LatencyTest:
    return LatencyTest(target="127.0.0.1:1", method="http", answered=1, lost=0, **fields)


def _post(collector: RunningCollector, token: str, body: str) -> httpx.Response:
    return httpx.post(
        f"{collector.url}/api/v1/results",
        content=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )


def test_an_id_another_agent_stored_is_rejected_not_a_duplicate(
    collector_any_db: RunningCollector,
) -> None:
    collector = collector_any_db
    school = collector.add_school()
    mine, theirs = collector.enroll(school), collector.enroll(school)
    result = _latency()
    first = _post(collector, mine, Batch(measurements=[result]).model_dump_json())
    assert first.json() == {"accepted": [str(result.id)], "duplicates": []}

    fresh = _latency()
    answer = _post(collector, theirs, Batch(measurements=[result, fresh]).model_dump_json())
    assert answer.status_code == 200
    assert answer.json() == {
        "accepted": [str(fresh.id)],
        "duplicates": [],
        "rejected": [{"id": str(result.id), "reason": FOREIGN_ID}],
    }
    again = _post(collector, mine, Batch(measurements=[result]).model_dump_json())
    assert again.json() == {"accepted": [], "duplicates": [str(result.id)]}


def _poll(device: str) -> SnmpPoll:
    return SnmpPoll(
        device=device,
        address="127.0.0.1:161",
        interfaces=[InterfaceCounters(ifindex=1, name="ge-0/0/0", octets_in=1, octets_out=2)],
    )


def test_polls_of_devices_the_held_settings_do_not_name_are_rejected(
    collector_any_db: RunningCollector,
) -> None:
    collector = collector_any_db
    token = collector.enroll(collector.add_school(), name="pi-1")
    anything = _poll("rogue")
    assert _post(collector, token, Batch(measurements=[anything]).model_dump_json()).json()[
        "accepted"
    ] == [str(anything.id)]
    with collector.sessions() as session:
        set_agent_config(
            session=session,
            name="pi-1",
            config={"devices": [{"name": "core", "address": "127.0.0.1"}]},
        )
    core, rogue = _poll("core"), _poll("rogue")
    answer = _post(collector, token, Batch(measurements=[core, rogue]).model_dump_json()).json()
    assert answer["accepted"] == [str(core.id)]
    [rejection] = answer["rejected"]
    assert rejection["id"] == str(rogue.id)
    assert rejection["reason"].startswith("unknown device 'rogue': the settings the collector")


def test_an_unknown_wire_version_names_the_accepted_ones(collector: RunningCollector) -> None:
    token = collector.enroll(collector.add_school())
    body = (
        Batch(measurements=[_latency()])
        .model_dump_json()
        .replace('"wire_version":2', '"wire_version":3')
    )
    answer = _post(collector, token, body)
    assert answer.status_code == 422
    [problem] = answer.json()["errors"]
    assert problem["loc"] == ["wire_version"]
    assert problem["msg"].startswith("unknown wire_version: this collector accepts 1, 2;")


def test_100_agents_posting_overlapping_retries_store_each_result_once(
    collector_any_db: RunningCollector,
) -> None:
    collector = collector_any_db
    school = collector.add_school()
    tokens = [collector.enroll(school) for _ in range(100)]
    results = {token: [_latency() for _ in range(20)] for token in tokens}

    async def run() -> list[tuple[str, dict[str, Any]]]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:

            async def post(token: str, part: list[LatencyTest]) -> tuple[str, dict[str, Any]]:
                answer = await client.post(
                    f"{collector.url}/api/v1/results",
                    content=Batch(measurements=part).model_dump_json(),
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert answer.status_code == 200, answer.text
                return token, answer.json()

            # Each agent sends its results three times over, overlapping, all at once: a
            # retry racing its original, and a bigger batch covering both.
            posts = [
                post(token, part)
                for token, mine in results.items()
                for part in (mine[:15], mine[5:], mine)
            ]
            return await asyncio.gather(*posts)

    answers = asyncio.run(run())
    accepted: Counter[str] = Counter()
    for token, answer in answers:
        assert "rejected" not in answer
        own = {str(r.id) for r in results[token]}
        assert set(answer["accepted"]) | set(answer["duplicates"]) <= own
        accepted.update(answer["accepted"])
    every = {str(r.id) for mine in results.values() for r in mine}
    assert set(accepted) == every
    assert set(accepted.values()) == {1}  # each accepted exactly once
    with collector.sessions() as session:
        stored = session.scalar(select(func.count()).select_from(Measurement))
    assert stored == 2000
    assert uuid.UUID(next(iter(every)))


async def test_the_agent_sets_rejected_results_aside(
    collector: RunningCollector, tmp_path: Path
) -> None:
    school = collector.add_school()
    mine, theirs = collector.enroll(school), collector.enroll(school)
    taken = _latency()
    assert _post(collector, mine, Batch(measurements=[taken]).model_dump_json()).status_code == 200
    fresh = _latency()
    async with httpx.AsyncClient(
        base_url=collector.url, headers={"Authorization": f"Bearer {theirs}"}
    ) as client:
        with Outbox(tmp_path / "outbox.sqlite3") as outbox:
            outbox.add([taken, fresh])
            delivery = await deliver(outbox, client=client, batch_size=10)
            status = outbox.status()
    assert (delivery.accepted, delivery.dead_lettered, delivery.remaining) == (1, 1, 0)
    [dead] = status.newest_dead_letters
    assert (dead.id, dead.reason) == (str(taken.id), FOREIGN_ID)
