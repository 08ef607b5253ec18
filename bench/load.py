"""Load: many agents posting result batches at once to a real collector, driven by wrk.

A real collector (``readynet-collector migrate``, ``school add``, ``agent enroll``, then ``serve``
as its own process on 127.0.0.1) on SQLite and on PostgreSQL (a throwaway database, dropped
afterwards) takes 8, 200 and 1,000 concurrent connections, each posting 100-measurement batches
with fresh ids (``bench/load.lua``), for a bounded time each. Meanwhile a separate client asks
``/healthz`` every 100 ms; after each run one more batch is posted, as an agent arriving just
then would, and timed. The figures per backend and concurrency: answered batches and results per
second, p50/p99 latency, 5xx, timeouts and socket errors, the slowest ``/healthz``, and
throughput(N) / throughput(8), which should stay at 0.8 or above.

wrk is the load generator so that client CPU does not distort the figures: C with LuaJIT, two
threads, against a server on the same 2 cores. Run alone with ``python -m bench.load``.
"""

from __future__ import annotations

import json
import os
import resource
import secrets
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType

import httpx
from sqlalchemy import func, select

from agent.settings import AgentSettings
from agent.wire import Batch, ThroughputTest
from bench._collector import (
    BenchError,
    RunningCollector,
    postgres_unreachable,
    serve_collector,
    throwaway_postgres,
)
from bench._common import REPO_DIR, Figure, require_tool, say
from collector.store.db import make_engine
from collector.store.models import Measurement

BASELINE_CONNECTIONS = 8
CONNECTIONS = (BASELINE_CONNECTIONS, 200, 1000)
RUN_SECONDS = 10
BATCH_SIZE = 100
WRK_THREADS = 2
WRK_SCRIPT = REPO_DIR / "bench" / "load.lua"
# The target's timeout: an answer slower than this counts as a timeout (wrk --timeout).
REQUEST_TIMEOUT_S = 60.0
# The agent itself gives up sooner; answers slower than this are flagged in the detail lines.
AGENT_UPLOAD_TIMEOUT_S = float(AgentSettings.model_fields["upload_timeout_s"].default)

THROUGHPUT_TARGET = 0.8
HEALTHZ_INTERVAL_S = 0.1
# Nine in ten /healthz answers within HEALTHZ_LIMIT_S and none slower than HEALTHZ_MAX_S: on 2 cores
# shared with PostgreSQL and wrk one sample may lose the CPU for a second or two (seen once in CI:
# 2.06 s among 21 samples), while a stalled loop shows as many slow samples or a timeout.
HEALTHZ_LIMIT_S = 1.0
HEALTHZ_MAX_S = 3.0
# A stuck /healthz is recorded as this long and failed; the sampler then asks again.
HEALTHZ_TIMEOUT_S = 5.0

# 1,000 connections need 1,000 descriptors in wrk and as many in the server, plus their files.
WANTED_OPEN_FILES = 65536
_RESULT_MARKER = "READYNET-LOAD-JSON "


@dataclass(frozen=True)
class HealthzRecord:
    """What the /healthz client saw during one run: every latency, and what failed."""

    latencies_s: tuple[float, ...]
    failures: tuple[str, ...]

    @property
    def max_s(self) -> float | None:
        return max(self.latencies_s, default=None)

    @property
    def p90_s(self) -> float | None:
        if not self.latencies_s:
            return None
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]

    def problem(self) -> str:
        """What misses the /healthz targets, or ''."""
        p90, worst = self.p90_s, self.max_s
        if p90 is None or worst is None or self.failures:
            return f"/healthz: {len(self.latencies_s)} answers, {len(self.failures)} failed"
        if p90 >= HEALTHZ_LIMIT_S or worst >= HEALTHZ_MAX_S:
            return f"/healthz p90 {_ms(p90)} (limit {_ms(HEALTHZ_LIMIT_S)}), max {_ms(worst)}"
        return ""


@dataclass(frozen=True)
class LatePost:
    """One batch posted right after a run, while the server works off what the run left."""

    seconds: float
    status: int | None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200 and not self.timed_out

    @property
    def timed_out(self) -> bool:
        return self.error == "timeout" or self.seconds >= REQUEST_TIMEOUT_S


@dataclass(frozen=True)
class LoadRun:
    """One wrk run at one concurrency: its answers, errors and latencies, /healthz meanwhile,
    and the late post after it (None when none was made).

    `ok` counts 200 answers (batches stored); throughput figures count only those. `timeouts`
    adds wrk's timeouts (no answer within REQUEST_TIMEOUT_S) and a late post not answered in
    that time. `baseline` is the run whose throughput this one is compared with.
    """

    backend: str
    connections: int
    duration_s: float
    statuses: Mapping[str, int]
    socket_errors: int
    wrk_timeouts: int
    duplicate_answers: int
    latency_ms: Mapping[str, float]
    healthz: HealthzRecord
    # CPU seconds wrk itself used: the load generator's share of the 2 cores.
    client_cpu_s: float = 0.0
    late_post: LatePost | None = None
    baseline: LoadRun | None = None

    @property
    def ok(self) -> int:
        return self.statuses.get("200", 0)

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status.startswith("5"))

    @property
    def other_answers(self) -> int:
        return sum(self.statuses.values()) - self.ok - self.server_errors

    @property
    def timeouts(self) -> int:
        late_timeout = self.late_post is not None and self.late_post.timed_out
        return self.wrk_timeouts + int(late_timeout)

    @property
    def requests_per_s(self) -> float:
        return self.ok / self.duration_s

    @property
    def results_per_s(self) -> float:
        return self.requests_per_s * BATCH_SIZE

    @property
    def ratio(self) -> float | None:
        """Throughput over the baseline's; None without a baseline or when it stored nothing."""
        if self.baseline is None or self.baseline.requests_per_s == 0:
            return None
        return self.requests_per_s / self.baseline.requests_per_s

    def problems(self) -> list[str]:
        """Every target this run misses; empty when it meets them all."""
        counts = {
            "answers 5xx": self.server_errors,
            "answers neither 200 nor 5xx": self.other_answers,
            "timeouts": self.timeouts,
            "socket errors": self.socket_errors,
            "fresh batches answered with duplicates": self.duplicate_answers,
        }
        found = [f"{count} {what}" for what, count in counts.items() if count]
        if self.late_post is not None and not self.late_post.ok:
            found.append(f"late post: {_late(self.late_post)}")
        if healthz_problem := self.healthz.problem():
            found.append(healthz_problem)
        if self.baseline is not None and (self.ratio or 0.0) < THROUGHPUT_TARGET:
            shown = "n/a" if self.ratio is None else f"{self.ratio:.2f}"
            found.append(f"throughput {shown}x of {self.baseline.connections} connections")
        return found

    def describe(self) -> str:
        lat = self.latency_ms
        late = "none" if self.late_post is None else _late(self.late_post)
        return (
            f"{self.backend}, {self.connections} connections, {self.duration_s:.1f} s: "
            f"{self.ok} batches stored ({self.requests_per_s:.1f} req/s, "
            f"{self.results_per_s:.0f} results/s), p50 {_ms_value(lat.get('p50'))}, "
            f"p99 {_ms_value(lat.get('p99'))}, max {_ms_value(lat.get('max'))}; "
            f"5xx {self.server_errors}, other non-200 {self.other_answers}, "
            f"timeouts {self.timeouts}, socket errors {self.socket_errors}; "
            f"/healthz p90 {_ms(self.healthz.p90_s)}, max {_ms(self.healthz.max_s)} over "
            f"{len(self.healthz.latencies_s)} "
            f"samples ({len(self.healthz.failures)} failed); late post {late}; "
            f"wrk used {self.client_cpu_s:.1f} CPU-s"
            + ("" if self.ratio is None else f"; throughput {self.ratio:.2f}x baseline")
            + self._agent_timeout_note()
        )

    def _agent_timeout_note(self) -> str:
        slowest_s = max(
            self.latency_ms.get("max", 0.0) / 1000,
            0.0 if self.late_post is None else self.late_post.seconds,
        )
        if slowest_s < AGENT_UPLOAD_TIMEOUT_S:
            return ""
        return f" (slowest answer {slowest_s:.0f} s: past the agent's own upload timeout)"


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.0f} ms"


def _ms_value(ms: float | None) -> str:
    return "n/a" if not ms else f"{ms:.0f} ms"


def _late(post: LatePost) -> str:
    answer = post.error or f"HTTP {post.status}"
    return f"{answer} in {post.seconds:.1f} s"


def raise_open_files_limit(wanted: int = WANTED_OPEN_FILES) -> int:
    """Raise this process's soft RLIMIT_NOFILE towards `wanted` (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


class HealthzSampler:
    """Asks GET /healthz every `interval_s` from its own thread, on a new connection each time
    (as a load balancer's probe would), and records how long each answer took."""

    def __init__(self, url: str, interval_s: float = HEALTHZ_INTERVAL_S) -> None:
        self._url = f"{url}/healthz"
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._latencies: list[float] = []
        self._failures: list[str] = []
        self._thread = threading.Thread(target=self._sample, name="healthz-sampler", daemon=True)

    def __enter__(self) -> HealthzSampler:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=HEALTHZ_TIMEOUT_S + 5)

    def record(self) -> HealthzRecord:
        return HealthzRecord(tuple(self._latencies), tuple(self._failures))

    def _sample(self) -> None:
        limits = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(timeout=HEALTHZ_TIMEOUT_S, limits=limits) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                failure = _probe(client, self._url)
                elapsed = time.monotonic() - started
                self._latencies.append(elapsed)
                if failure:
                    self._failures.append(failure)
                self._stop.wait(max(0.0, self._interval_s - elapsed))


def _probe(client: httpx.Client, url: str) -> str:
    """'' when GET `url` answers 200, else what went wrong."""
    try:
        status = client.get(url).status_code
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}"
    return "" if status == 200 else f"HTTP {status}"


def post_late_batch(collector: RunningCollector) -> LatePost:
    """Post one fresh batch and time its answer, giving up after REQUEST_TIMEOUT_S."""
    batch = Batch(
        agent_version="bench-load",
        measurements=[ThroughputTest(path="onnet", server=collector.url, download_bps=1e8)],
    )
    headers = {"Authorization": f"Bearer {collector.token}", "Content-Type": "application/json"}
    started = time.monotonic()
    try:
        status = httpx.post(
            f"{collector.url}/api/v1/results",
            content=batch.model_dump_json(),
            headers=headers,
            timeout=REQUEST_TIMEOUT_S,
        ).status_code
    except httpx.TimeoutException:
        return LatePost(time.monotonic() - started, None, "timeout")
    except httpx.HTTPError as exc:
        return LatePost(time.monotonic() - started, None, type(exc).__name__)
    return LatePost(time.monotonic() - started, status)


def run_wrk(collector: RunningCollector, connections: int, seconds: int) -> dict[str, object]:
    """wrk with bench/load.lua against POST /api/v1/results; the script's JSON summary, plus
    the CPU seconds wrk used under "client_cpu_s"."""
    env = {
        **os.environ,
        "READYNET_LOAD_TOKEN": collector.token,
        "READYNET_LOAD_SEED": str(secrets.randbits(31)),
        "READYNET_LOAD_BATCH": str(BATCH_SIZE),
    }
    command = [
        "wrk",
        f"-t{min(WRK_THREADS, connections)}",
        f"-c{connections}",
        f"-d{seconds}s",
        f"--timeout={REQUEST_TIMEOUT_S:.0f}s",
        f"-s{WRK_SCRIPT}",
        f"{collector.url}/api/v1/results",
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=seconds + 120, check=False
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    for line in done.stdout.splitlines():
        if line.startswith(_RESULT_MARKER):
            summary: dict[str, object] = json.loads(line.removeprefix(_RESULT_MARKER))
            summary["client_cpu_s"] = cpu_s
            return summary
    raise BenchError(f"wrk exited {done.returncode} without a summary: {done.stderr.strip()}")


def run_load(
    collector: RunningCollector,
    backend: str,
    connections: int,
    seconds: int = RUN_SECONDS,
    *,
    baseline: LoadRun | None = None,
    late_post: bool = True,
    fail_fast: bool = False,
) -> LoadRun:
    """`connections` posting for `seconds`, then one late post, all under the /healthz sampler.

    The late post also waits out what the run left queued, so the next run starts clean. With
    `fail_fast`, a run that has missed a target already makes no late post (it could take the
    whole request timeout to fail).
    """
    with HealthzSampler(collector.url) as sampler:
        summary = run_wrk(collector, connections, seconds)
        run = _load_run(backend, connections, summary, sampler.record(), baseline)
        if late_post and not (fail_fast and run.problems()):
            run = replace(run, late_post=post_late_batch(collector))
    return replace(run, healthz=sampler.record())


def _load_run(
    backend: str,
    connections: int,
    summary: Mapping[str, object],
    healthz: HealthzRecord,
    baseline: LoadRun | None,
) -> LoadRun:
    errors = _counts(summary["errors"])
    latency_us = _counts(summary["latency_us"])
    return LoadRun(
        backend=backend,
        connections=connections,
        duration_s=_number(summary["duration_us"]) / 1e6,
        statuses=_counts(summary["statuses"]),
        socket_errors=errors["connect"] + errors["read"] + errors["write"],
        wrk_timeouts=errors["timeout"],
        duplicate_answers=int(_number(summary["duplicate_answers"])),
        latency_ms={name: value / 1000 for name, value in latency_us.items()},
        healthz=healthz,
        client_cpu_s=_number(summary["client_cpu_s"]),
        baseline=baseline,
    )


def _number(value: object) -> float:
    if not isinstance(value, int | float):
        raise BenchError(f"wrk summary: expected a number, got {value!r}")
    return float(value)


def _counts(value: object) -> dict[str, int]:
    if not isinstance(value, dict):
        raise BenchError(f"wrk summary: expected an object, got {value!r}")
    return {str(key): int(_number(count)) for key, count in value.items()}


def stored_results(database_url: str) -> int:
    """How many measurements the collector's database holds."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(connection.scalar(select(func.count()).select_from(Measurement)) or 0)
    finally:
        engine.dispose()


def measure_backend(backend: str, database_url: str, workdir: Path) -> list[LoadRun]:
    """Every concurrency in turn against one collector; detail lines as it goes."""
    runs: list[LoadRun] = []
    with serve_collector(database_url, workdir) as collector:
        baseline = None
        for connections in CONNECTIONS:
            run = run_load(collector, backend, connections, baseline=baseline)
            say(f"  {run.describe()}")
            runs.append(run)
            baseline = baseline or run
    posted = sum(run.ok for run in runs) * BATCH_SIZE
    stored = stored_results(database_url)
    say(f"  {backend}: {stored} results stored, {posted} answered 200 (wrk's batches)")
    if stored < posted:
        raise BenchError(f"{backend}: only {stored} of {posted} answered results are stored")
    return runs


def figures(runs: list[LoadRun]) -> list[Figure]:
    """Summary lines: the baseline, then for each higher concurrency throughput, /healthz and
    errors."""
    baseline, *loaded = runs
    lat = baseline.latency_ms
    result = [
        Figure(
            group="load",
            label=f"{baseline.backend} {baseline.connections} conn (baseline)",
            unit="req/s",
            ours_name="",
            value=baseline.requests_per_s,
            reference_name="",
            reference=None,
            lower_is_better=False,
            instead=(
                f"{baseline.requests_per_s:.1f} req/s, {baseline.results_per_s:.0f} results/s; "
                f"p50 {_ms_value(lat.get('p50'))}, p99 {_ms_value(lat.get('p99'))}; "
                f"/healthz max {_ms(baseline.healthz.max_s)}; {_verdict(baseline)}"
            ),
        )
    ]
    for run in loaded:
        result += _run_figures(run, baseline)
    return result


def _run_figures(run: LoadRun, baseline: LoadRun) -> list[Figure]:
    head = f"{run.backend} {run.connections} conn"
    healthz_max = run.healthz.max_s
    lat = run.latency_ms
    return [
        Figure(
            "load",
            f"{head}, req/s",
            "req/s",
            f"{run.connections} conn",
            run.requests_per_s,
            f"{baseline.connections} conn",
            baseline.requests_per_s,
            lower_is_better=False,
        ),
        Figure(
            "load",
            f"{head}, /healthz max",
            "ms",
            "healthz",
            None if healthz_max is None else healthz_max * 1000,
            "limit",
            HEALTHZ_LIMIT_S * 1000,
            lower_is_better=True,
        ),
        Figure(
            "load",
            f"{head}, errors",
            "",
            "",
            None,
            "",
            None,
            lower_is_better=True,
            instead=(
                f"5xx {run.server_errors}, timeouts {run.timeouts}, "
                f"socket errors {run.socket_errors}; p50 {_ms_value(lat.get('p50'))}, "
                f"p99 {_ms_value(lat.get('p99'))}; {_verdict(run)}"
            ),
        ),
    ]


def _verdict(run: LoadRun) -> str:
    problems = run.problems()
    return "targets met" if not problems else "MISSED: " + "; ".join(problems)


def _backend(backend: str, database_url: str, workdir: Path) -> list[Figure]:
    say(f"load, {backend}: {', '.join(map(str, CONNECTIONS))} connections, {RUN_SECONDS} s each")
    return figures(measure_backend(backend, database_url, workdir))


def _skipped(backend: str, reason: str) -> Figure:
    return Figure("load", f"{backend} (all)", "", "", None, "", None, False, instead=reason)


def run() -> list[Figure]:
    """The load runs on SQLite, then on PostgreSQL when it answers on 127.0.0.1:5432."""
    missing = require_tool("wrk")
    if missing is not None:
        return [_skipped("load", f"skipped: {missing} (apt-get install wrk)")]
    open_files = raise_open_files_limit()
    if open_files < 2 * max(CONNECTIONS) + 100:
        return [_skipped("load", f"skipped: open files limit {open_files} is too low")]
    with tempfile.TemporaryDirectory(prefix="rn-bench-load-") as tmp:
        workdir = Path(tmp)
        result = _backend("sqlite", f"sqlite:///{workdir / 'collector.db'}", workdir)
        unreachable = postgres_unreachable()
        if unreachable is not None:
            return [*result, _skipped("postgres", f"skipped: {unreachable}")]
        with throwaway_postgres() as database_url:
            result += _backend("postgres", database_url, workdir)
    return result


if __name__ == "__main__":
    for figure in run():
        say(figure.line())
