"""Backlog drain: 100,000 queued results (a week offline for a busy school) through the real
uploader into a real collector on 127.0.0.1.

The outbox holds a realistic mix in queue order: 90 % SNMP polls of 48-port switches (45
switches polled every 5 minutes over a week, 64-bit counters, 4.4 kB of JSON each), 5 %
on-net throughput tests and 5 % latency tests; about 0.4 GB in all. (It is written straight
into the outbox's table, as `Outbox.add` would store it: building 100,000 models takes longer
than the drain.)

- **Ours:** a separate agent process runs `readynet-agent flush` (`agent.cli.main`) on that
  outbox against a fresh ``readynet-collector serve``: batches of `batch_size` (500) under the
  body limit the collector advertises, each removed once confirmed. Results/s is the outbox's
  results over the process's wall time, start-up included; the collector's count is checked.
- **Reference, results/s:** the collector's own ingest of the same batches: the same rows in
  the same 500-result bodies, built beforehand, posted by a bare httpx loop to another fresh
  collector with as many under way at once as the uploader keeps (IN_FLIGHT, 2); from the
  first post to the last answer. The ratio says how much of the collector's ingest rate the
  agent keeps while it reads, packs and deletes.
- **Reference, RSS:** the agent process's own RSS after its imports, before draining; ours is
  its peak (VmHWM) at exit.
- **Targets** (issue 9): >= 5,000 results/s and peak RSS <= 80 MB.

Then the same count of tests alone (throughput and latency in turn, about 0.8 kB each), for the
results/s of the agent's side when the collector's interface rows are not what limits it.

SQLite; PostgreSQL too with ``--postgres`` (its ingest of interface rows is about half SQLite's
here, so that run takes twice as long). Run alone with ``python -m bench.outbox_drain
[--results N] [--postgres]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import httpx
import yaml
from sqlalchemy import func, select

from agent import __version__
from agent.outbox import Outbox
from agent.uploader import IN_FLIGHT
from agent.wire import (
    WIRE_VERSION,
    AnyMeasurement,
    InterfaceCounters,
    LatencyTest,
    SnmpPoll,
    ThroughputTest,
)
from bench._collector import (
    BenchError,
    enroll,
    postgres_unreachable,
    start_collector,
    throwaway_postgres,
)
from bench._common import LOOPBACK, Figure, say
from collector.localrun import log_tail
from collector.store.db import make_engine
from collector.store.models import Measurement

RESULTS = 100_000
BATCH = 500
SWITCHES = 45
PORTS = 48
# Of every 20 results: 18 polls, one throughput test, one latency test.
MIX = ("snmp_poll",) * 18 + ("throughput", "latency")
# The same count of tests alone: what the agent's side costs when the collector's interface
# rows are not the bottleneck.
TESTS_ONLY = ("throughput", "latency")
RATE_TARGET = 5000.0
RSS_TARGET_MB = 80.0
DRAIN_TIMEOUT_S = 1800.0
SERVER = f"http://{LOOPBACK}:8080"

# The agent process: RSS after its imports, `readynet-agent flush`, then its peak.
AGENT = """
import json, sys
from pathlib import Path
from agent.cli import main

def kb(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0

before = kb("VmRSS")
code = main(["flush", "--config", sys.argv[1]])
print(json.dumps({"code": code, "before_kb": before, "peak_kb": kb("VmHWM")}), flush=True)
sys.exit(code)
"""


def _examples(now: datetime) -> dict[str, AnyMeasurement]:
    interfaces = [
        InterfaceCounters(
            ifindex=i,
            name=f"GigabitEthernet1/0/{i}",
            octets_in=10**12 + 7_919 * i,
            octets_out=10**11 + 104_729 * i,
            counter_bits=64,
            speed_mbps=1000,
            alias=f"room {i}",
            if_type=6,
            admin_status=1,
            oper_status=1 if i % 3 else 2,
            role="internet" if i == PORTS else None,
        )
        for i in range(1, PORTS + 1)
    ]
    return {
        "snmp_poll": SnmpPoll(
            device="switch-00",
            address=f"{LOOPBACK}:161",
            profile="cisco_ios",
            sys_object_id="1.3.6.1.4.1.9.1.2494",
            sys_uptime_ticks=100_000_000,
            interfaces=interfaces,
            duration_s=0.42,
            measured_at=now,
        ),
        "throughput": ThroughputTest(
            path="onnet",
            server=SERVER,
            streams=8,
            download_bps=4.5e8,
            upload_bps=2.2e8,
            latency_ms=3.5,
            download_bytes=450_000_000,
            upload_bytes=165_000_000,
            duration_s=20.0,
            loaded_latency_ms=21.0,
            responsiveness_rpm=2857.0,
            measured_at=now,
        ),
        "latency": LatencyTest(
            target=f"{LOOPBACK}:8080",
            method="tcp_connect",
            answered=20,
            rtt_p50_ms=0.4,
            rtt_p90_ms=0.6,
            jitter_ms=0.1,
            measured_at=now,
        ),
    }


class _Template:
    """One result's JSON with its id, time (and device) left open, filled in per row."""

    def __init__(self, example: AnyMeasurement) -> None:
        text = example.model_dump_json()
        self._id = str(example.id)
        self._at = json.dumps(example.model_dump(mode="json")["measured_at"])
        self._text = text

    def fill(self, at: datetime, device: str | None) -> tuple[str, str]:
        new_id = str(uuid.uuid4())
        text = self._text.replace(self._id, new_id, 1).replace(
            self._at, json.dumps(at.isoformat()), 1
        )
        if device is not None:
            text = text.replace('"switch-00"', json.dumps(device), 1)
        return new_id, text


def build_outbox(path: Path, count: int, mix: tuple[str, ...] = MIX) -> tuple[int, dict[str, int]]:
    """`count` results in queue order in a fresh outbox at `path`; its bytes and kinds."""
    now = datetime.now(UTC).replace(microsecond=0)
    templates = {kind: _Template(m) for kind, m in _examples(now).items()}
    polls = sum(1 for i in range(count) if mix[i % len(mix)] == "snmp_poll")
    rounds = -(-polls // SWITCHES)
    start = now - timedelta(minutes=5 * rounds) - timedelta(minutes=1)
    kinds: dict[str, int] = {}
    with Outbox(path):
        pass  # the schema, as the agent creates it
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA synchronous=OFF")  # the bench's own set-up, not what is measured
        queued_at = now.isoformat()
        rows: list[tuple[str, str, str]] = []
        polled = 0
        for i in range(count):
            kind = mix[i % len(mix)]
            kinds[kind] = kinds.get(kind, 0) + 1
            if kind == "snmp_poll":
                at = start + timedelta(minutes=5 * (polled // SWITCHES))
                device = f"switch-{polled % SWITCHES:02d}"
                polled += 1
            else:
                at = start + timedelta(seconds=6 * i)
                device = None
            rows.append((*templates[kind].fill(min(at, now), device), queued_at))
            if len(rows) == 5000 or i == count - 1:
                db.execute("BEGIN")
                db.executemany("INSERT INTO outbox (id, payload, queued_at) VALUES (?, ?, ?)", rows)
                db.execute("COMMIT")
                rows = []
        db.execute("DELETE FROM meta")  # the agent's outbox counts its bytes when it opens
    finally:
        db.close()
    with Outbox(path, max_bytes=10**12) as outbox:
        size = outbox.status(newest=0).bytes
    return size, kinds


def _stored(database_url: str) -> int:
    engine = make_engine(database_url, workers=1)
    try:
        with engine.connect() as connection:
            return int(connection.scalar(select(func.count()).select_from(Measurement)) or 0)
    finally:
        engine.dispose()


def _bodies(path: Path) -> Iterator[tuple[int, bytes]]:
    """The outbox's rows in 500-result batches as the uploader sends them (its envelope)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        last = 0
        while True:
            rows = db.execute(
                "SELECT rowid, payload FROM outbox WHERE rowid > ? ORDER BY rowid LIMIT ?",
                (last, BATCH),
            ).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            envelope = {
                "wire_version": WIRE_VERSION,
                "agent_version": __version__,
                "sent_at": datetime.now(UTC).isoformat(),
            }
            head = json.dumps(envelope, separators=(",", ":"))[:-1] + ',"measurements":['
            body = head + ",".join(payload for _, payload in rows) + "]}"
            yield len(rows), body.encode()
    finally:
        db.close()


def bare_ingest(url: str, token: str, path: Path) -> tuple[int, float]:
    """The reference: every batch posted by a bare httpx loop, as many under way at once as
    the uploader keeps (IN_FLIGHT); results, and seconds from the first post to the last
    answer. The bodies are built before the clock starts."""
    bodies = list(_bodies(path))
    return asyncio.run(_post_all(url, token, bodies))


async def _post_all(url: str, token: str, bodies: list[tuple[int, bytes]]) -> tuple[int, float]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    waiting = iter(bodies)
    posted = 0

    async def poster(client: httpx.AsyncClient) -> None:
        nonlocal posted
        for results, body in waiting:
            answer = await client.post("/api/v1/results", content=body)
            if answer.status_code != 200 or len(answer.json()["accepted"]) != results:
                raise BenchError(f"reference post: HTTP {answer.status_code}: {answer.text[:200]}")
            posted += results

    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as client:
        started = time.perf_counter()
        await asyncio.gather(*(poster(client) for _ in range(IN_FLIGHT)))
        seconds = time.perf_counter() - started
    return posted, seconds


def agent_drain(url: str, token: str, state_dir: Path) -> tuple[float, dict[str, int], str]:
    """`readynet-agent flush` in its own process: its wall time, RSS figures and output."""
    config = state_dir.parent / "agent.yaml"
    settings = {
        "collector_url": url,
        "token": token,
        "state_dir": str(state_dir),
        "internet": {"enabled": False},
        "upload_timeout_s": 120,
    }
    config.write_text(yaml.safe_dump(settings))
    env = {**os.environ, "READYNET_AGENT_INTERNET__ENABLED": "false"}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", AGENT, str(config)],
        capture_output=True,
        text=True,
        timeout=DRAIN_TIMEOUT_S,
        env=env,
        check=False,
    )
    seconds = time.perf_counter() - started
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise BenchError(f"agent flush failed ({done.returncode}): {done.stdout} {done.stderr}")
    return seconds, json.loads(lines[-1]), "\n".join(lines[:-1])


def measure_backend(
    name: str,
    database: Callable[[], AbstractContextManager[str]],
    workdir: Path,
    count: int,
    mix: tuple[str, ...] = MIX,
) -> list[Figure]:
    outbox = workdir / "state" / "outbox.sqlite3"
    started = time.perf_counter()
    size, kinds = build_outbox(outbox, count, mix)
    queued = ", ".join(f"{n:,} {kind}" for kind, n in kinds.items())
    say(
        f"drain  {name}: outbox of {count:,} results ({queued}), {size / 1e6:,.0f} MB of JSON, "
        f"built in {time.perf_counter() - started:.0f} s"
    )
    with database() as url:
        token = enroll(url)
        with start_collector(url, workdir) as collector:
            posted, post_s = bare_ingest(collector.url, token, outbox)
        if _stored(url) != count:
            raise BenchError(f"reference: {_stored(url)} of {count} stored")
    reference = posted / post_s
    say(
        f"drain  {name}: bare httpx loop, {count // BATCH} posts, {IN_FLIGHT} at a time: "
        f"{post_s:.1f} s, "
        f"{reference:,.0f} results/s"
    )
    with database() as url:
        token = enroll(url)
        with start_collector(url, workdir) as collector:
            try:
                seconds, rss, output = agent_drain(collector.url, token, outbox.parent)
            except BenchError:
                say(log_tail(collector.log_path))
                raise
        stored = _stored(url)
    if stored != count or f"delivered: {count} new, 0 already stored, 0 waiting" not in output:
        raise BenchError(f"agent: {stored} of {count} stored; it said: {output}")
    rate = count / seconds
    before, peak = rss["before_kb"] / 1024, rss["peak_kb"] / 1024
    say(
        f"drain  {name}: agent process {seconds:.1f} s (start-up included), {rate:,.0f} "
        f"results/s; RSS {before:.1f} MB before, peak {peak:.1f} MB"
    )
    verdict = "PASS" if rate >= RATE_TARGET else "MISS"
    memory = "PASS" if peak <= RSS_TARGET_MB else "MISS"
    return [
        Figure(
            "drain",
            f"{name} {count:,} results",
            "results/s",
            "agent",
            rate,
            "bare",
            reference,
            False,
            verdict=f"target >= {RATE_TARGET:,.0f}/s: {verdict}",
        ),
        Figure(
            "drain",
            f"{name} agent peak RSS",
            "MB",
            "peak",
            peak,
            "before",
            before,
            True,
            verdict=f"target <= {RSS_TARGET_MB:.0f} MB: {memory}",
        ),
    ]


@contextmanager
def sqlite_database(workdir: Path) -> Iterator[str]:
    path = workdir / f"collector-{uuid.uuid4().hex[:8]}.db"
    try:
        yield f"sqlite:///{path}"
    finally:
        for leftover in workdir.glob(f"{path.name}*"):
            leftover.unlink()


def run(count: int = RESULTS, postgres: bool = False) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="rn-bench-drain-") as tmp:
        workdir = Path(tmp)
        sqlite = partial(sqlite_database, workdir)
        figures = measure_backend("sqlite", sqlite, workdir, count)
        figures += measure_backend("sqlite tests", sqlite, workdir, count, TESTS_ONLY)[:1]
        if not postgres:
            return figures
        unreachable = postgres_unreachable()
        if unreachable is not None:
            skipped = f"skipped: {unreachable}"
            return [
                *figures,
                Figure("drain", "postgres", "", "", None, "", None, False, instead=skipped),
            ]
        return figures + measure_backend("postgres", throwaway_postgres, workdir, count)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=RESULTS)
    parser.add_argument("--postgres", action="store_true")
    options = parser.parse_args()
    for figure in run(options.results, options.postgres):
        say(figure.line())
