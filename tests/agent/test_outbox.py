"""The durable outbox: ids kept once, order kept, survives reopening, fails loudly when full."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.errors import OutboxError
from agent.outbox import Outbox
from agent.wire import ThroughputTest


def _test(mbps: float) -> ThroughputTest:
    return ThroughputTest(path="onnet", server="http://127.0.0.1", download_bps=mbps * 1e6)


def test_results_survive_reopening_in_order(tmp_path: Path) -> None:
    results = [_test(i) for i in range(5)]
    with Outbox(tmp_path / "outbox.sqlite3") as outbox:
        assert outbox.add(results) == 5
    with Outbox(tmp_path / "outbox.sqlite3") as outbox:
        assert [m.id for m in outbox.pending(limit=10)] == [m.id for m in results]
        assert outbox.pending(limit=2) == results[:2]


def test_same_id_is_queued_once(tmp_path: Path) -> None:
    result = _test(1)
    with Outbox(tmp_path / "o.sqlite3") as outbox:
        assert outbox.add([result]) == 1
        assert outbox.add([result, _test(2)]) == 1
        assert len(outbox) == 2


def test_remove_forgets_only_delivered(tmp_path: Path) -> None:
    results = [_test(i) for i in range(3)]
    with Outbox(tmp_path / "o.sqlite3") as outbox:
        outbox.add(results)
        outbox.remove([results[0].id, results[2].id])
        assert outbox.pending(limit=10) == [results[1]]


def test_unwritable_state_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OutboxError, match="cannot open outbox"):
        Outbox(blocker / "outbox.sqlite3")


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 256 KiB filesystem (tmpfs), so 'disk full' comes from the kernel, not a fake."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)], check=True
    )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


def test_full_disk_raises_and_keeps_what_was_queued(tiny_disk: Path) -> None:
    with Outbox(tiny_disk / "outbox.sqlite3") as outbox:
        first = _test(1)
        outbox.add([first])
        with pytest.raises(OutboxError, match="full"):
            for _ in range(1000):
                outbox.add([_test(2) for _ in range(50)])
        # What was queued before the disk filled is still there, readable and intact.
        assert outbox.pending(limit=1) == [first]
        assert len(outbox) > 1
