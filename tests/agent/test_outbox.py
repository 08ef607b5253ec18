"""The durable outbox: ids kept once, order kept, survives reopening, fails loudly when full,
stays under its size cap by its policy (counted), and its dead letters requeued or purged."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.cli import main
from agent.errors import OutboxError
from agent.outbox import MB, Outbox
from agent.wire import (
    AccessPoint,
    AnyMeasurement,
    InterfaceCounters,
    SnmpPoll,
    Ssid,
    ThroughputTest,
)


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


# --- the size cap --------------------------------------------------------------------------


def _switch_poll(ports: int = 48, *, aps: int = 0) -> SnmpPoll:
    """A 48-port switch's poll, port 1 its configured uplink; with `aps`, a controller's too."""
    interfaces = [
        InterfaceCounters(
            ifindex=i,
            name=f"GigabitEthernet1/0/{i}",
            octets_in=10**9 * i,
            octets_out=10**8 * i,
            counter_bits=64,
            speed_mbps=1000,
            oper_status=1,
            role="internet" if i == 1 else None,
        )
        for i in range(1, ports + 1)
    ]
    access_points = [
        AccessPoint(key=f"ap-{i}", name=f"room-{i}", clients=3, up=True) for i in range(aps)
    ]
    return SnmpPoll(
        device="switch",
        address="127.0.0.1:161",
        sys_uptime_ticks=123_456,
        interfaces=interfaces,
        clients=3 * aps if aps else None,
        aps_up=aps or None,
        aps_total=aps or None,
        aps=access_points,
        ssids=[Ssid(name="students", clients=3 * aps)] if aps else [],
    )


def _size(result: AnyMeasurement) -> int:
    return len(result.model_dump_json().encode())


def test_past_the_cap_oldest_polls_are_summarised_then_dropped_and_tests_go_last(
    tmp_path: Path,
) -> None:
    polls = [_switch_poll(aps=4) for _ in range(10)]
    tests = [_test(i) for i in range(10)]
    cap = sum(map(_size, polls)) + sum(map(_size, tests))
    with Outbox(tmp_path / "o.sqlite3", max_bytes=cap) as outbox:
        outbox.add([*polls[:5], *tests[:5]])
        outbox.add([*polls[5:], *tests[5:]])
        status = outbox.status()
        assert (status.bytes, status.max_bytes) == (cap, cap)
        assert (status.summarised, status.dropped) == ({}, {})

        # Two more polls: the oldest polls are summarised to make room, nothing is lost (three
        # of them: a summary frees a poll's size less its own).
        outbox.add([_switch_poll(aps=4), _switch_poll(aps=4)])
        status = outbox.status()
        assert status.summarised == {"snmp_poll": 3} and status.dropped == {}
        assert status.pending == 22 and status.bytes <= cap
        first, _, third, fourth = outbox.pending(limit=4)
        assert isinstance(first, SnmpPoll) and first.id == polls[0].id
        # Same wire type; the device totals and the uplink stay, the detail goes.
        assert [i.name for i in first.interfaces] == ["GigabitEthernet1/0/1"]
        assert first.interfaces[0].role == "internet"
        assert first.interfaces[0].octets_in == 10**9
        summary = (first.clients, first.aps_up, first.aps_total, first.aps, first.ssids)
        assert summary == (12, 4, 4, [], [])
        assert first.sys_uptime_ticks == 123_456 and first.measured_at == polls[0].measured_at
        assert isinstance(third, SnmpPoll) and len(third.interfaces) == 1
        assert fourth == polls[3]

        # Far past it: every poll is summarised first, then the oldest polls are dropped.
        for _ in range(200):
            outbox.add([_switch_poll(aps=4) for _ in range(4)])
            status = outbox.status()
            assert "throughput" not in status.dropped and status.bytes <= cap
            if status.dropped:
                break
        assert status.dropped["snmp_poll"] > 0 and status.summarised["snmp_poll"] > 10
        kept = [m.id for m in outbox.pending(limit=1000)]
        assert all(t.id in kept for t in tests)

        # Only tests left to make room with: then the oldest tests go, counted as such.
        many = [_test(1000 + i) for i in range(4 * cap // _size(tests[0]))]
        for start in range(0, len(many), 10):
            outbox.add(many[start : start + 10])
        status = outbox.status()
        assert status.dropped["throughput"] > 0 and status.bytes <= cap
        remaining = outbox.pending(limit=100_000)
        assert all(isinstance(m, ThroughputTest) for m in remaining)
        assert remaining[-1].id == many[-1].id  # the newest are kept
        assert status.pending == len(remaining)


def test_queued_bytes_follow_adds_deliveries_and_dead_letters(tmp_path: Path) -> None:
    results = [_test(i) for i in range(6)]
    with Outbox(tmp_path / "o.sqlite3") as outbox:
        outbox.add(results)
        outbox.add(results[:2])  # known already: not counted twice
        assert outbox.status().bytes == sum(map(_size, results))
        outbox.remove([results[0].id, results[1].id])
        outbox.bury([results[2].id], status=422, reason="invalid")
        assert outbox.status().bytes == sum(map(_size, results[3:]))
        outbox.remove([r.id for r in results[3:]])
        assert outbox.status().bytes == 0
    # An outbox written before the count existed is measured once when opened.
    path = tmp_path / "old.sqlite3"
    with Outbox(path) as outbox:
        outbox.add(results)
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM meta")
    db.close()
    with Outbox(path) as outbox:
        assert outbox.status().bytes == sum(map(_size, results))


def test_deliveries_are_counted_with_their_time(tmp_path: Path) -> None:
    results = [_test(i) for i in range(3)]
    with Outbox(tmp_path / "o.sqlite3") as outbox:
        assert (outbox.status().delivered_total, outbox.status().last_delivered_at) == (0, None)
        outbox.add(results)
        before = datetime.now(UTC)
        outbox.remove([results[0].id, results[1].id, uuid.uuid4()])  # an unknown id is no delivery
        outbox.remove([results[0].id])
    with Outbox(tmp_path / "o.sqlite3") as outbox:
        status = outbox.status()
    assert status.delivered_total == 2
    assert status.last_delivered_at is not None and status.last_delivered_at >= before


def test_dead_letters_past_their_cap_drop_the_oldest_counted(tmp_path: Path) -> None:
    results = [_test(i) for i in range(15)]
    with Outbox(tmp_path / "o.sqlite3", dead_letters_max=10) as outbox:
        outbox.add(results)
        for r in results:
            outbox.bury([r.id], status=422, reason=f"refused {r.download_bps}")
        status = outbox.status(newest=20)
    assert (status.dead_letters, status.dead_letters_dropped, status.pending) == (10, 5, 0)
    assert {d.id for d in status.newest_dead_letters} == {str(r.id) for r in results[5:]}


def test_dead_letters_requeued_and_purged(tmp_path: Path) -> None:
    results = [_test(i) for i in range(6)]
    with Outbox(tmp_path / "o.sqlite3") as outbox:
        outbox.add(results)
        outbox.bury([r.id for r in results[:5]], status=422, reason="schema too new")
        assert outbox.requeue([str(results[0].id), "no-such-id"]) == 1
        assert [m.id for m in outbox.pending(limit=10)] == [results[5].id, results[0].id]
        assert outbox.purge([str(results[1].id)]) == 1
        assert outbox.purge(older_than=timedelta(days=1)) == 0
        assert outbox.purge(older_than=timedelta(seconds=0)) == 3
        outbox.bury([results[5].id], status=422, reason="again")
        assert outbox.requeue() == 1 and outbox.status().dead_letters == 0
        assert outbox.status().bytes == sum(map(_size, [results[0], results[5]]))


# --- a full disk -----------------------------------------------------------------------------


def test_full_disk_names_the_outbox_corrupts_nothing_and_recovers(tiny_disk: Path) -> None:
    filler = tiny_disk / "filler"
    filler.write_bytes(b"\0" * 64 * 1024)
    path = tiny_disk / "outbox.sqlite3"
    queued: list[ThroughputTest] = []
    with Outbox(path) as outbox:
        with pytest.raises(OutboxError) as full:
            for _ in range(1000):
                batch = [_test(2) for _ in range(50)]
                outbox.add(batch)
                queued += batch
        assert str(path) in str(full.value) and "disk full" in str(full.value)
        assert "\n" not in str(full.value)
        assert [m.id for m in outbox.pending(limit=100_000)] == [m.id for m in queued]
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        db.close()
        filler.unlink()  # room again: the same outbox takes results
        assert outbox.add([_test(3) for _ in range(50)]) == 50
    with Outbox(path) as outbox:
        assert len(outbox) == len(queued) + 50


# --- readynet-agent outbox -------------------------------------------------------------------


def test_outbox_command_shows_the_cap_s_cost_and_requeues_and_purges(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "agent.yaml"
    state = tmp_path / "state"
    config.write_text(
        f"collector_url: http://127.0.0.1:9\ntoken: t\nstate_dir: {state}\noutbox: {{max_mb: 1}}\n"
    )
    tests = [_test(i) for i in range(3)]
    # Filled under a small cap (the counts stay whatever the cap), shown under the config's.
    with Outbox(state / "outbox.sqlite3", max_bytes=100_000) as outbox:
        outbox.add(tests)
        for _ in range(100):
            outbox.add([_switch_poll(aps=4) for _ in range(4)])
        outbox.remove([tests[0].id])
        outbox.bury([tests[1].id, tests[2].id], status=422, reason="schema too new")
        expected = outbox.status()
    assert expected.summarised["snmp_poll"] > 0 and expected.dropped["snmp_poll"] > 0

    def command(*args: str) -> str:
        assert main(["outbox", *args, "--config", str(config)]) == 0
        return capsys.readouterr().out

    report = json.loads(command("--format", "json"))
    assert report["summarised"] == expected.summarised and report["dropped"] == expected.dropped
    assert (report["bytes"], report["max_bytes"]) == (expected.bytes, MB)
    assert report["delivered_total"] == 1 and report["last_delivered_at"] is not None
    assert report["dead_letters"] == 2
    text = command().splitlines()
    summarised, dropped = expected.summarised["snmp_poll"], expected.dropped["snmp_poll"]
    assert (
        f"over the size cap: summarised {summarised} snmp_poll; dropped {dropped} snmp_poll" in text
    )
    assert f"size: {expected.bytes / MB:.1f} of 1.0 MB" in text

    assert command("requeue", "--id", str(tests[1].id)).startswith(
        "requeued 1 dead letters (1 left)"
    )
    assert command("purge", "--all") == "purged 1 dead letters (0 left)\n"
    assert command("purge", "--older-than", "1") == "purged 0 dead letters (0 left)\n"
    assert command("requeue", "--all").startswith("requeued 0 dead letters (0 left)")
    with Outbox(state / "outbox.sqlite3") as outbox:
        assert outbox.pending(limit=100_000)[-1] == tests[1]


def test_a_batch_is_read_up_to_the_body_limit_as_bytes(tmp_path: Path) -> None:
    polls = [_switch_poll() for _ in range(10)]
    size = _size(polls[0])
    with Outbox(tmp_path / "o.sqlite3") as outbox:
        outbox.add(polls)
        batch = outbox.next_batch(limit=500, max_bytes=3 * size + size // 2)
        # Read until past the limit (the fourth), no further: the uploader sends three.
        assert [row.id for row in batch] == [str(p.id) for p in polls[:4]]
        assert batch[0].payload == polls[0].model_dump_json().encode()
        assert len(outbox.next_batch(limit=2, max_bytes=10**9)) == 2
        assert len(outbox.next_batch(limit=500, max_bytes=1)) == 1
        # From a place in the queue on: what a batch already in flight holds is not read again.
        after = outbox.next_batch(limit=3, max_bytes=10**9, after=batch[1].rowid)
        assert [row.id for row in after] == [str(p.id) for p in polls[2:5]]
        assert outbox.next_batch(limit=3, max_bytes=10**9, after=after[-1].rowid + 10**6) == []


def test_removing_delivered_results_does_not_write_them_again(tmp_path: Path) -> None:
    """On an SD card every byte written wears it: forgetting delivered results must not zero
    their payloads on disk (Debian's SQLite has secure_delete on), only unlink them."""
    path = tmp_path / "outbox.sqlite3"
    polls = [
        SnmpPoll(
            device="switch",
            address="127.0.0.1:161",
            interfaces=[
                InterfaceCounters(ifindex=i, name=f"GigabitEthernet1/0/{i}", alias="x" * 200)
                for i in range(48)
            ],
        )
        for _ in range(50)
    ]
    with Outbox(path) as outbox:
        outbox.add(polls)
        queued = outbox.status().bytes
        assert queued > 500_000
        with sqlite3.connect(path) as other:
            other.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        other.close()
        assert path.with_name("outbox.sqlite3-wal").stat().st_size == 0
        outbox.remove([p.id for p in polls])
        assert len(outbox) == 0
        written = path.with_name("outbox.sqlite3-wal").stat().st_size
    # The pages that list the freed ones and the b-tree's own: a small part of what was freed.
    assert written < queued / 4, (written, queued)
