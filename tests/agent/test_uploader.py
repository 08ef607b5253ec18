"""Delivering the outbox: to a real collector, one that is down, and ones that misbehave."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from agent.errors import CollectorRejected, CollectorUnavailable, TokenRefused
from agent.outbox import Outbox
from agent.uploader import deliver
from agent.wire import ThroughputTest
from tests.fixtures.collector import RunningCollector, ServerThread


def _queue(path: Path, count: int) -> Outbox:
    outbox = Outbox(path / "outbox.sqlite3")
    outbox.add(
        [ThroughputTest(path="onnet", server="x", download_bps=float(i)) for i in range(count)]
    )
    return outbox


def _client(url: str, token: str = "t", timeout: float = 5) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout
    )


async def test_delivers_in_batches_and_empties_the_outbox(
    collector: RunningCollector, tmp_path: Path
) -> None:
    token = collector.enroll(collector.add_school())
    with _queue(tmp_path, 25) as outbox:
        async with _client(collector.url, token) as client:
            delivery = await deliver(outbox, client=client, batch_size=10)
        assert (delivery.accepted, delivery.duplicates, delivery.remaining) == (25, 0, 0)
        assert len(outbox) == 0


async def test_collector_down_for_a_day_loses_nothing(
    collector: RunningCollector, tmp_path: Path
) -> None:
    token = collector.enroll(collector.add_school())
    collector.server.stop()
    with _queue(tmp_path, 3) as outbox:
        async with _client(collector.url, token) as client:
            for _ in range(3):  # every scheduled attempt while it is away fails the same way
                with pytest.raises(CollectorUnavailable, match="cannot reach the collector"):
                    await deliver(outbox, client=client, batch_size=10)
            assert len(outbox) == 3
            collector.server.start()
            delivery = await deliver(outbox, client=client, batch_size=10)
    assert (delivery.accepted, delivery.remaining) == (3, 0)


async def test_wrong_token_is_rejected_and_results_are_kept(
    collector: RunningCollector, tmp_path: Path
) -> None:
    collector.add_school()
    with _queue(tmp_path, 2) as outbox:
        async with _client(collector.url, "wrong-token") as client:
            with pytest.raises(CollectorRejected) as caught:
                await deliver(outbox, client=client, batch_size=10)
        assert caught.value.status_code == 401
        assert caught.value.detail == "invalid or missing agent token"
        assert isinstance(caught.value, TokenRefused)
        assert str(caught.value).startswith("the collector refused the agent's token (HTTP 401")
        assert len(outbox) == 2


async def test_resent_batch_after_lost_receipt_is_counted_as_duplicate(
    collector: RunningCollector, tmp_path: Path
) -> None:
    token = collector.enroll(collector.add_school())
    with _queue(tmp_path, 4) as outbox:
        first = outbox.pending(limit=10)
        async with _client(collector.url, token) as client:
            await deliver(outbox, client=client, batch_size=10)
            # The agent crashed before deleting: the same results are queued again.
            outbox.add(first)
            delivery = await deliver(outbox, client=client, batch_size=10)
    assert (delivery.accepted, delivery.duplicates, delivery.remaining) == (0, 4, 0)


@pytest.mark.parametrize(
    ("fault_server", "error", "message"),
    [
        ("http-500", CollectorUnavailable, "HTTP 500"),
        ("http-503-html", CollectorUnavailable, "HTTP 503"),
        ("truncated-json", CollectorUnavailable, "unreadable receipt"),
        ("wrong-shape-json", CollectorUnavailable, "unreadable receipt"),
        ("hangs", CollectorUnavailable, "ReadTimeout"),
    ],
    indirect=["fault_server"],
)
async def test_misbehaving_collector_keeps_results(
    fault_server: ServerThread, tmp_path: Path, error: type[Exception], message: str
) -> None:
    with _queue(tmp_path, 2) as outbox:
        async with _client(fault_server.url, timeout=0.5) as client:
            with pytest.raises(error, match=message):
                await deliver(outbox, client=client, batch_size=10)
        assert len(outbox) == 2
