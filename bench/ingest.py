"""Ingest: result batches over HTTP into a real collector, against raw Core inserts of the rows.

Per backend (a SQLite file, a throwaway PostgreSQL database) and per kind of batch:

* throughput: batches of 100 `ThroughputTest`;
* snmp: batches of 20 `SnmpPoll` (two devices, ten polls each) with 30 interfaces per poll.

Ours: eight client threads, each an agent of its own school, post fresh batches (new UUIDs every
time) to ``POST /api/v1/results`` of a real ``readynet-collector serve`` for a fixed time.
Reference: the same rows, batch by batch, written with plain SQLAlchemy Core executemany
(``connection.execute(insert(table), rows)``, one commit per batch, one connection) into a fresh
database migrated with the same schema (`upgrade_to_head`), through the collector's engine
settings (`make_engine`; on PostgreSQL with SQLAlchemy's default executemany, the faster one
here). The ratio HTTP / raw says how much of the database's insert rate the whole HTTP path
(parsing, validation, duplicate check, device pointers, answer) keeps; the target is 0.6 or more.
Run alone with ``python -m bench.ingest``.
"""

from __future__ import annotations

import json
import resource
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, cast

import httpx
from sqlalchemy import Engine, Table, func, insert, select

from agent.wire import AnyMeasurement, Batch, InterfaceCounters, SnmpPoll, ThroughputTest
from bench._collector import (
    BenchError,
    postgres_unreachable,
    start_collector,
    throwaway_postgres,
    tree_cpu_seconds,
)
from bench._common import LOOPBACK, Figure, say
from collector.localrun import log_tail
from collector.store.db import make_engine, make_session_factory
from collector.store.interface_rows import pack_interfaces
from collector.store.migrate import upgrade_to_head
from collector.store.models import (
    Device,
    InterfaceSample,
    Measurement,
    PollInterfaces,
    SnmpPollResult,
    ThroughputResult,
)
from collector.store.queries import create_school, enroll_agent

CLIENTS = 8
HTTP_SECONDS = 10.0
# The reference stops after this long even if it has not written as many batches as HTTP did.
RAW_MAX_SECONDS = 20.0
REQUEST_TIMEOUT_S = 60.0
RATIO_TARGET = 0.6
TESTS_PER_BATCH = 100
DEVICES = ("router", "switch")
POLLS_PER_DEVICE = 10
INTERFACES_PER_POLL = 30
SERVER = f"http://{LOOPBACK}:8080"

_measurements = cast(Table, Measurement.__table__)
_tests = cast(Table, ThroughputResult.__table__)
_devices = cast(Table, Device.__table__)
_polls = cast(Table, SnmpPollResult.__table__)
_samples = cast(Table, InterfaceSample.__table__)
_packed = cast(Table, PollInterfaces.__table__)


def throughput_batch(now: datetime) -> Batch:
    """100 throughput tests, one a minute back from `now`, as an agent would queue them."""
    tests: list[AnyMeasurement] = [
        ThroughputTest(
            path="onnet",
            server=SERVER,
            streams=4,
            download_bps=4.5e8 + 1e6 * i,
            upload_bps=2.2e8 + 1e6 * i,
            latency_ms=3.5,
            download_bytes=100_000_000,
            upload_bytes=25_000_000,
            duration_s=8.2,
            measured_at=now - timedelta(minutes=i),
        )
        for i in range(TESTS_PER_BATCH)
    ]
    return Batch(agent_version="bench-ingest", measurements=tests)


def snmp_batch(now: datetime) -> Batch:
    """20 polls (two devices, every 5 minutes) of 30 interfaces each, with Counter64 values."""
    polls: list[AnyMeasurement] = []
    for k in range(POLLS_PER_DEVICE):
        for d, device in enumerate(DEVICES):
            interfaces = [
                InterfaceCounters(
                    ifindex=i + 1,
                    name=f"GigabitEthernet1/0/{i + 1}",
                    # Past 2**63 on some ports: the signed-column round trip is exercised too.
                    octets_in=(2**63 + i if i % 10 == 9 else 10**12 * (i + 1)) + k * 10**9,
                    octets_out=10**11 * (i + 1) + k * 10**8,
                    speed_mbps=1000,
                )
                for i in range(INTERFACES_PER_POLL)
            ]
            polls.append(
                SnmpPoll(
                    device=device,
                    address=f"{LOOPBACK}:{161 + d}",
                    sys_object_id="1.3.6.1.4.1.9.1.2494",
                    sys_uptime_ticks=100_000_000 + k * 30_000,
                    measured_at=now - timedelta(minutes=5 * (POLLS_PER_DEVICE - k)),
                    interfaces=interfaces,
                )
            )
    return Batch(agent_version="bench-ingest", measurements=polls)


@dataclass(frozen=True)
class Workload:
    """One kind of batch: how it is built and which rows the figure counts."""

    name: str
    build: Callable[[datetime], Batch]
    # Rows the figure counts per measurement: 1 for tests, the interfaces for a poll.
    rows_per_result: int
    row_unit: str


WORKLOADS = (
    Workload("throughput", throughput_batch, 1, "results/s"),
    Workload("snmp", snmp_batch, INTERFACES_PER_POLL, "if rows/s"),
)


class FreshBodies:
    """JSON bodies of one batch, each with fresh measurement ids and otherwise byte-identical.

    Splicing new UUIDs into the serialised batch costs a few microseconds per measurement, so
    the client threads stay a small share of the CPU next to the server they load.
    """

    def __init__(self, batch: Batch) -> None:
        text = batch.model_dump_json()
        self._pieces: list[str] = []
        for m in batch.measurements:
            head, text = text.split(str(m.id), 1)
            self._pieces.append(head)
        self._tail = text
        self.results = len(batch.measurements)

    def body(self) -> bytes:
        parts: list[str] = []
        for piece in self._pieces:
            parts += (piece, str(uuid.uuid4()))
        parts.append(self._tail)
        return "".join(parts).encode()


@dataclass
class _Tally:
    batches: int = 0
    failures: list[str] = field(default_factory=list)
    finished: float = 0.0


@dataclass(frozen=True)
class HttpRun:
    batches: int
    warm_up_batches: int
    seconds: float
    failures: tuple[str, ...]
    server_cpu_s: float
    client_cpu_s: float


@dataclass(frozen=True)
class RawRun:
    batches: int
    seconds: float


def _post_until(
    url: str,
    token: str,
    bodies: FreshBodies,
    start: threading.Barrier,
    box: list[float],
    warm_up: _Tally,
) -> _Tally:
    tally = _Tally()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    with httpx.Client(base_url=url, headers=headers, timeout=REQUEST_TIMEOUT_S) as client:
        # Warm-up (connection, token lookup): stored, but outside the clock.
        _post(client, bodies, warm_up)
        start.wait()
        deadline = box[0] + HTTP_SECONDS
        while time.monotonic() < deadline:
            _post(client, bodies, tally)
    tally.finished = time.monotonic()
    return tally


def _post(client: httpx.Client, bodies: FreshBodies, tally: _Tally) -> None:
    try:
        answer = client.post("/api/v1/results", content=bodies.body())
    except httpx.HTTPError as exc:
        tally.failures.append(type(exc).__name__)
        return
    if answer.status_code != 200:
        tally.failures.append(f"HTTP {answer.status_code}")
    elif len(json.loads(answer.content)["accepted"]) != bodies.results:
        tally.failures.append("fresh ids answered as duplicates")
    else:
        tally.batches += 1


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def post_batches(
    url: str, pid: int, tokens: list[str], bodies: FreshBodies, before_clock: Callable[[], None]
) -> HttpRun:
    """Every token's client posts fresh batches for HTTP_SECONDS, all starting together once
    each has made its warm-up post and `before_clock` has run."""
    box: list[float] = []

    def start_clock() -> None:
        before_clock()
        box.append(time.monotonic())

    start = threading.Barrier(len(tokens) + 1, action=start_clock)
    tallies: list[_Tally] = [_Tally() for _ in tokens]
    warm_ups: list[_Tally] = [_Tally() for _ in tokens]

    def client(n: int) -> None:
        try:
            tallies[n] = _post_until(url, tokens[n], bodies, start, box, warm_ups[n])
        except threading.BrokenBarrierError:
            tallies[n].failures.append("client did not start")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(len(tokens))]
    for thread in threads:
        thread.start()
    start.wait(timeout=REQUEST_TIMEOUT_S)
    server_cpu, client_cpu = tree_cpu_seconds(pid), _own_cpu_seconds()
    for thread in threads:
        thread.join()
    return HttpRun(
        batches=sum(t.batches for t in tallies),
        warm_up_batches=sum(t.batches for t in warm_ups),
        seconds=max(t.finished for t in tallies) - box[0],
        failures=tuple(f for t in warm_ups + tallies for f in t.failures),
        server_cpu_s=tree_cpu_seconds(pid) - server_cpu,
        client_cpu_s=_own_cpu_seconds() - client_cpu,
    )


def _agents(engine: Engine, count: int) -> list[tuple[int, int, str]]:
    """`count` schools with one agent each: (school id, agent id, token)."""
    sessions = make_session_factory(engine)
    agents = []
    with sessions() as session:
        for n in range(count):
            school = create_school(session=session, name=f"Ingest {n}", students=450, staff=50)
            agent, token = enroll_agent(session=session, school_id=school.id, name=f"ingest-{n}")
            agents.append((school.id, agent.id, token))
    return agents


def _analyze(engine: Engine) -> None:
    """Planner statistics, as autovacuum keeps them on a live server.

    The local test PostgreSQL runs with autovacuum off: on a never-analysed `measurements`
    every duplicate-id check of a batch is a sequential scan (10.8 ms a 100-result batch at
    15,000 rows here, growing with the table), which a production database does not pay.
    """
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("ANALYZE")


def _stored(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(_measurements)) or 0)


def measure_http(
    database_url: str, workdir: Path, workloads: tuple[Workload, ...]
) -> list[HttpRun]:
    """Each workload in turn against one real collector with CLIENTS agents."""
    upgrade_to_head(database_url)
    engine = make_engine(database_url)
    try:
        tokens = [token for _, _, token in _agents(engine, CLIENTS)]
        runs = []
        with start_collector(database_url, workdir) as collector:
            for workload in workloads:
                bodies = FreshBodies(workload.build(datetime.now(UTC)))
                before = _stored(engine)
                run = post_batches(
                    collector.url, collector.pid, tokens, bodies, partial(_analyze, engine)
                )
                expected = (run.batches + run.warm_up_batches) * bodies.results
                stored = _stored(engine) - before
                if stored < expected or not run.batches:
                    raise BenchError(
                        f"{workload.name}: {stored} results stored, {expected} answered 200, "
                        f"{len(run.failures)} posts failed {sorted(set(run.failures))}; "
                        f"collector log tail:\n{log_tail(collector.log_path)}"
                    )
                runs.append(run)
        return runs
    finally:
        engine.dispose()


def _rows(
    batch: Batch, school_id: int, agent_id: int, devices: dict[str, int], next_poll: int
) -> list[tuple[Table, list[dict[str, Any]]]]:
    """The batch's rows for each table, in foreign-key order, with fresh ids."""
    now = datetime.now(UTC)
    measurements: list[dict[str, Any]] = []
    tests: list[dict[str, Any]] = []
    polls: list[dict[str, Any]] = []
    packed: list[dict[str, Any]] = []
    samples: list[dict[str, Any]] = []
    for m in batch.measurements:
        new_id = uuid.uuid4()
        measurements.append(
            {
                "id": new_id,
                "agent_id": agent_id,
                "school_id": school_id,
                "kind": m.kind,
                "measured_at": m.measured_at,
                "received_at": now,
                "error": m.error,
            }
        )
        if isinstance(m, ThroughputTest):
            values = m.model_dump(exclude={"id", "kind", "measured_at", "error"})
            tests.append({"measurement_id": new_id, **values})
            continue
        assert isinstance(m, SnmpPoll)
        polls.append(
            {
                "poll_id": next_poll,
                "measurement_id": new_id,
                "device_id": devices[m.device],
                "address": m.address,
                "sys_object_id": m.sys_object_id,
                "sys_uptime_ticks": m.sys_uptime_ticks,
                "ordered_at": m.measured_at,
            }
        )
        # As the collector stores a poll: its interfaces in one packed row, uplinks as rows too.
        packed.append(
            {
                "poll_id": next_poll,
                "interface_count": len(m.interfaces),
                "rows": pack_interfaces(m.interfaces),
            }
        )
        samples += [
            {"poll_id": next_poll, "seq": seq, **i._asdict(), "counter_bits": i.counter_bits or 0}
            for seq, i in enumerate(m.interfaces)
            if i.role is not None
        ]
        next_poll += 1
    tables = [
        (_measurements, measurements),
        (_tests, tests),
        (_polls, polls),
        (_packed, packed),
        (_samples, samples),
    ]
    return [(table, rows) for table, rows in tables if rows]


def measure_raw(database_url: str, workload: Workload, batches: int) -> RawRun:
    """`batches` batches of the workload's rows with Core executemany, one commit per batch.

    The collector's engine settings (SQLite pragmas, pool), but on PostgreSQL SQLAlchemy's own
    executemany (psycopg pipelines it): here it measured about 2.3x the rows/s of the multi-row
    VALUES pages `make_engine` switches on, so it is the stronger reference.
    """
    upgrade_to_head(database_url)
    engine = make_engine(database_url)
    engine.dialect.use_insertmanyvalues_wo_returning = False
    try:
        school_id, agent_id, _ = _agents(engine, 1)[0]
        with engine.begin() as connection:
            connection.execute(
                insert(_devices), [{"school_id": school_id, "name": d} for d in DEVICES]
            )
            found = connection.execute(select(_devices.c.name, _devices.c.id))
            devices = {str(name): int(device_id) for name, device_id in found}
        batch = workload.build(datetime.now(UTC))
        elapsed = 0.0
        done = 0
        while done < batches and elapsed < RAW_MAX_SECONDS:
            # Rows are built outside the clock: the reference is the database's insert rate.
            tables = _rows(batch, school_id, agent_id, devices, 1 + done * len(batch.measurements))
            started = time.perf_counter()
            with engine.begin() as connection:
                for table, rows in tables:
                    connection.execute(insert(table), rows)
            elapsed += time.perf_counter() - started
            done += 1
        return RawRun(done, elapsed)
    finally:
        engine.dispose()


@dataclass(frozen=True)
class IngestResult:
    """One backend and workload: HTTP and the raw reference, rows counted the same way."""

    backend: str
    workload: Workload
    results_per_batch: int
    http: HttpRun
    raw: RawRun

    def rate(self, batches: int, seconds: float, per_result: int = 1) -> float:
        return batches * self.results_per_batch * per_result / seconds if seconds else 0.0

    @property
    def http_rows_per_s(self) -> float:
        return self.rate(self.http.batches, self.http.seconds, self.workload.rows_per_result)

    @property
    def raw_rows_per_s(self) -> float:
        return self.rate(self.raw.batches, self.raw.seconds, self.workload.rows_per_result)

    @property
    def ratio(self) -> float | None:
        return self.http_rows_per_s / self.raw_rows_per_s if self.raw_rows_per_s else None

    @property
    def verdict(self) -> str:
        met = self.ratio is not None and self.ratio >= RATIO_TARGET and not self.http.failures
        return f"target >= {RATIO_TARGET}: {'PASS' if met else 'MISS'}"

    def describe(self) -> str:
        http, raw = self.http, self.raw
        polls = ""
        if self.workload.rows_per_result > 1:
            polls = (
                f" ({self.rate(http.batches, http.seconds):,.0f} vs "
                f"{self.rate(raw.batches, raw.seconds):,.0f} polls/s)"
            )
        failed = f", {len(http.failures)} failed ({http.failures[0]})" if http.failures else ""
        ratio = "n/a" if self.ratio is None else f"{self.ratio:.2f}"
        return (
            f"{self.backend} {self.workload.name}: http {CLIENTS} clients {http.batches} batches "
            f"in {http.seconds:.1f} s{failed}, {self.http_rows_per_s:,.0f} {self.workload.row_unit}"
            f" (collector {http.server_cpu_s:.1f} CPU-s, bench client {http.client_cpu_s:.1f}"
            f" CPU-s) | raw Core {raw.batches} batches in {raw.seconds:.1f} s, "
            f"{self.raw_rows_per_s:,.0f} {self.workload.row_unit}{polls} | ratio {ratio}, "
            f"{self.verdict}"
        )

    def figure(self) -> Figure:
        return Figure(
            group="ingest",
            label=f"{self.backend} {self.workload.name}",
            unit=self.workload.row_unit,
            ours_name="http",
            value=self.http_rows_per_s,
            reference_name="raw Core",
            reference=self.raw_rows_per_s,
            lower_is_better=False,
            verdict=self.verdict,
        )


def measure_backend(
    backend: str, new_database: Callable[[], AbstractContextManager[str]], workdir: Path
) -> list[Figure]:
    """HTTP for every workload on one database, then the reference, each on a fresh one."""
    say(
        f"ingest, {backend}: {CLIENTS} clients posting for {HTTP_SECONDS:.0f} s per kind, "
        "then raw Core executemany of as many batches"
    )
    with new_database() as database_url:
        http_runs = measure_http(database_url, workdir, WORKLOADS)
    figures = []
    for workload, http in zip(WORKLOADS, http_runs, strict=True):
        with new_database() as database_url:
            raw = measure_raw(database_url, workload, http.batches)
        size = len(workload.build(datetime.now(UTC)).measurements)
        result = IngestResult(backend, workload, size, http, raw)
        say(f"  {result.describe()}")
        figures.append(result.figure())
    return figures


@contextmanager
def sqlite_database(workdir: Path) -> Iterator[str]:
    """A new SQLite file in `workdir` (the directory goes away with the run)."""
    yield f"sqlite:///{workdir / f'ingest-{uuid.uuid4().hex[:8]}.db'}"


def run() -> list[Figure]:
    """Both kinds of batch on SQLite, then on PostgreSQL when it answers on 127.0.0.1:5432."""
    with tempfile.TemporaryDirectory(prefix="rn-bench-ingest-") as tmp:
        workdir = Path(tmp)
        figures = measure_backend("sqlite", partial(sqlite_database, workdir), workdir)
        unreachable = postgres_unreachable()
        if unreachable is not None:
            skipped = f"skipped: {unreachable}"
            return [
                *figures,
                Figure("ingest", "postgres", "", "", None, "", None, False, instead=skipped),
            ]
        return figures + measure_backend("postgres", throwaway_postgres, workdir)


if __name__ == "__main__":
    for figure in run():
        say(figure.line())
