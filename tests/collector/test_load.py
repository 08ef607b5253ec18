"""Many agents posting at once must not stop the collector (issue 6).

A real ``readynet-collector serve`` process, on SQLite and on PostgreSQL, takes 8 connections for
3 s (the baseline), then 200 and 1,000 for 4 s each, every request a fresh 100-measurement batch
(wrk with bench/load.lua; see bench/README.md). Each run must answer no 5xx, time nothing out, keep
at least 0.8x the baseline's throughput, and answer /healthz (asked every 100 ms throughout) within
1 s nine times in ten and never slower than 3 s. After the 200-connection run one more batch must
be answered within the request timeout. The longer version, with figures, is
``python -m bench.load``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench._common import say
from bench.load import (
    BASELINE_CONNECTIONS,
    BATCH_SIZE,
    LoadRun,
    raise_open_files_limit,
    run_load,
    run_wrk,
    serve_collector,
    stored_results,
)

# Run alone by `make test`, after the rest (see the Makefile).
pytestmark = pytest.mark.load

BASELINE_SECONDS = 3
WARM_UP_SECONDS = 2
# (connections, seconds, late post afterwards): the late post after 200 also waits until what
# that run left queued is worked off, so the 1,000-connection run starts clean.
LOADS = ((200, 4, True), (1000, 4, False))


def _failure(missed: list[str], runs: list[LoadRun]) -> str:
    figures = "\n".join(run.describe() for run in runs)
    return f"missed: {'; '.join(missed)}\n{figures}"


def test_many_agents_at_once(database_url: str, tmp_path: Path) -> None:
    assert shutil.which("wrk"), "wrk not found: apt-get install wrk (scripts/system-deps.sh)"
    needed = 2 * max(n for n, _, _ in LOADS) + 100
    assert raise_open_files_limit() >= needed, f"RLIMIT_NOFILE cannot reach {needed}"
    backend = "sqlite" if database_url.startswith("sqlite") else "postgres"
    runs: list[LoadRun] = []
    with serve_collector(database_url, tmp_path) as collector:
        # Not counted: the baseline should not be measured on empty tables and cold caches
        # while the heavier runs after it meet grown ones.
        run_wrk(collector, BASELINE_CONNECTIONS, WARM_UP_SECONDS)
        baseline = run_load(
            collector, backend, BASELINE_CONNECTIONS, BASELINE_SECONDS, fail_fast=True
        )
        runs.append(baseline)
        say(baseline.describe())
        missed = baseline.problems() + ([] if baseline.ok else ["no batch stored"])
        assert not missed, _failure(missed, runs)
        for connections, seconds, late_post in LOADS:
            run = run_load(
                collector,
                backend,
                connections,
                seconds,
                baseline=baseline,
                late_post=late_post,
                fail_fast=True,
            )
            runs.append(run)
            say(run.describe())
            missed = run.problems()
            assert not missed, _failure(missed, runs)
    # Every batch answered 200 was stored whole: the ids really were fresh.
    answered = sum(run.ok for run in runs) * BATCH_SIZE
    assert stored_results(database_url) >= answered
