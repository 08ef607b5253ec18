"""Scale-out: HTTP ingest per backend, with 1 and 2 workers and two replicas on PostgreSQL.

64 agents, each a school of its own, post fresh batches of 100 throughput tests for
`HTTP_SECONDS` to:

* **1 worker**: one `readynet-collector serve` process;
* **2 workers**: `serve --workers 2` (two processes on one port, SO_REUSEPORT);
* **2 replicas**: two `serve` processes on two ports, the agents split between them (as a load
  balancer would).

Reference, in the same run: the same rows written with plain SQLAlchemy Core executemany, one
commit per batch (`bench.ingest.measure_raw`), into a fresh database of the same backend.
Figures: results/s over HTTP as a ratio to the reference (target >= 0.6, as for one process in
`bench.ingest`), and each post's latency, p50 and p99. On SQLite one process only: it has one
writer, and `serve --workers` refuses it.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import httpx

from bench._collector import BenchError, postgres_unreachable, start_collector, throwaway_postgres
from bench._common import Figure, say
from bench.ingest import (
    RATIO_TARGET,
    REQUEST_TIMEOUT_S,
    WORKLOADS,
    FreshBodies,
    _agents,
    _analyze,
    _stored,
    measure_raw,
)
from collector.store.db import make_engine
from collector.store.migrate import upgrade_to_head

AGENTS = 64
HTTP_SECONDS = 10.0
THROUGHPUT = WORKLOADS[0]


@dataclass
class _Agent:
    latencies_s: list[float] = field(default_factory=list)
    batches: int = 0
    failures: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Run:
    setup: str
    batches: int
    seconds: float
    latencies_s: list[float]
    failures: list[str]

    @property
    def results_per_s(self) -> float:
        return self.batches * THROUGHPUT.rows_per_result * 100 / self.seconds

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies_s)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _agent_loop(
    url: str,
    token: str,
    bodies: FreshBodies,
    start: threading.Barrier,
    until: list[float],
    out: _Agent,
) -> None:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    with httpx.Client(base_url=url, headers=headers, timeout=REQUEST_TIMEOUT_S) as client:
        client.post("/api/v1/results", content=bodies.body())  # warm-up: connection, token
        start.wait()
        while time.monotonic() < until[0]:
            began = time.perf_counter()
            try:
                answer = client.post("/api/v1/results", content=bodies.body())
            except httpx.HTTPError as exc:
                out.failures.append(type(exc).__name__)
                continue
            out.latencies_s.append(time.perf_counter() - began)
            if answer.status_code == 200:
                out.batches += 1
            else:
                out.failures.append(f"HTTP {answer.status_code}")


def _post(setup: str, urls: list[str], tokens: list[str], before_clock: partial[None]) -> Run:
    bodies = FreshBodies(THROUGHPUT.build(datetime.now(UTC)))
    until: list[float] = []

    def start_clock() -> None:
        before_clock()
        until.append(time.monotonic() + HTTP_SECONDS)

    start = threading.Barrier(len(tokens) + 1, action=start_clock)
    agents = [_Agent() for _ in tokens]
    threads = [
        threading.Thread(
            target=_agent_loop,
            args=(urls[n % len(urls)], token, bodies, start, until, agents[n]),
        )
        for n, token in enumerate(tokens)
    ]
    for thread in threads:
        thread.start()
    start.wait(timeout=REQUEST_TIMEOUT_S)
    began = time.monotonic()
    for thread in threads:
        thread.join()
    return Run(
        setup=setup,
        batches=sum(a.batches for a in agents),
        seconds=time.monotonic() - began,
        latencies_s=[x for a in agents for x in a.latencies_s],
        failures=[f for a in agents for f in a.failures],
    )


def _setups(database_url: str, workdir: Path) -> Iterator[tuple[str, list[str]]]:
    """Each setup's name and the URLs its agents post to, while it runs."""
    with start_collector(database_url, workdir) as one:
        yield "1 worker", [one.url]
    if database_url.startswith("sqlite"):
        return  # one writer: `serve --workers` refuses SQLite, and so would a second replica
    with start_collector(database_url, workdir, serve_args=("--workers", "2")) as two:
        yield "2 workers", [two.url]
    with ExitStack() as replicas:
        urls = [replicas.enter_context(start_collector(database_url, workdir)).url for _ in "ab"]
        yield "2 replicas", urls


def _backend(name: str, database_url: str, raw_url: str, workdir: Path) -> list[Figure]:
    upgrade_to_head(database_url)
    engine = make_engine(database_url)
    try:
        tokens = [token for _, _, token in _agents(engine, AGENTS)]
        runs = []
        for setup, urls in _setups(database_url, workdir):
            before = _stored(engine)
            result = _post(setup, urls, tokens, partial(_analyze, engine))
            stored = _stored(engine) - before
            if result.failures or stored < result.batches * 100:
                raise BenchError(
                    f"{name} {setup}: {len(result.failures)} failed posts "
                    f"{sorted(set(result.failures))[:5]}, {stored} stored"
                )
            runs.append(result)
    finally:
        engine.dispose()
    raw = measure_raw(raw_url, THROUGHPUT, max(r.batches for r in runs))
    raw_rate = raw.batches * 100 / raw.seconds
    figures = []
    for result in runs:
        ratio = result.results_per_s / raw_rate
        verdict = "PASS" if ratio >= RATIO_TARGET else "MISS"
        figures.append(
            Figure(
                group="scale-out",
                label=f"{name} {result.setup}, {AGENTS} agents",
                unit="results/s",
                ours_name="http",
                value=result.results_per_s,
                reference_name="raw",
                reference=raw_rate,
                lower_is_better=False,
                note=(
                    f"p50 {result.percentile_ms(0.5):.0f} ms, p99 {result.percentile_ms(0.99):.0f}"
                    f" ms over {len(result.latencies_s)} posts"
                ),
                verdict=f"target >= {RATIO_TARGET}: {verdict}",
            )
        )
    return figures


def run() -> list[Figure]:
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        figures += _backend(
            "sqlite", f"sqlite:///{workdir / 'http.db'}", f"sqlite:///{workdir / 'raw.db'}", workdir
        )
        unreachable = postgres_unreachable()
        if unreachable:
            say(f"scale-out postgresql: skipped: {unreachable}")
        else:
            with throwaway_postgres() as database_url, throwaway_postgres() as raw_url:
                figures += _backend("postgresql", database_url, raw_url, workdir)
    for figure in figures:
        say(f"{figure.line()}; {figure.note}")
    return figures


if __name__ == "__main__":
    run()
