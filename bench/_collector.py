"""A real collector for the benchmarks: throwaway databases and ``readynet-collector serve``.

Shared by `bench.load`, `bench.ingest` and `bench.scale`. The collector runs as its own process,
as deployed, on a free 127.0.0.1 port; PostgreSQL databases are created on the local server
(127.0.0.1:5432, user postgres) under a random name and dropped afterwards.
"""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from bench._common import LOOPBACK, VENV_BIN
from collector.localrun import free_port, log_tail, stop_process, wait_for_http

STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0
_START_ATTEMPTS = 3
POSTGRES_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


class BenchError(RuntimeError):
    pass


@dataclass(frozen=True)
class CollectorProcess:
    """A ``readynet-collector serve`` process on 127.0.0.1 and where it logs."""

    url: str
    pid: int
    database_url: str
    log_path: Path


@dataclass(frozen=True)
class RunningCollector:
    """A ``readynet-collector serve`` process with one school and one enrolled agent."""

    url: str
    token: str
    database_url: str
    log_path: Path


def collector_cli(database_url: str, *args: str) -> str:
    """Run ``readynet-collector <args>`` on `database_url`; its stdout, or BenchError."""
    env = {**os.environ, "READYNET_COLLECTOR_DATABASE_URL": database_url}
    done = subprocess.run(
        [str(VENV_BIN / "readynet-collector"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"readynet-collector {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def enroll(database_url: str) -> str:
    """Migrate, add a school and enrol one agent through the real CLI; returns its token."""
    collector_cli(database_url, "migrate")
    school_id = collector_cli(
        database_url, "school", "add", "--name", "Load School", "--students", "450", "--staff", "50"
    )
    token = collector_cli(
        database_url, "agent", "add", "--school", school_id, "--name", "load-agent"
    )
    return token.splitlines()[0]


def reader_token(database_url: str) -> str:
    """A new viewer of scope all and its API token, through the real CLI (reads need one)."""
    name = f"bench-{uuid.uuid4().hex[:8]}@bench.example"
    collector_cli(database_url, "user", "add", "--name", name, "--role", "viewer")
    return collector_cli(database_url, "token", "create", "--user", name, "--name", "bench")


@contextmanager
def start_collector(
    database_url: str,
    workdir: Path,
    *,
    env: Mapping[str, str] | None = None,
    stop_timeout_s: float = STOP_TIMEOUT_S,
    serve_args: Sequence[str] = (),
) -> Iterator[CollectorProcess]:
    """``readynet-collector serve`` on a migrated database, on a free 127.0.0.1 port, until the
    block ends. `env` adds ``READYNET_COLLECTOR_*`` settings, `serve_args` options to `serve`
    (e.g. ``--workers 2``)."""
    full_env = {**os.environ, **(env or {}), "READYNET_COLLECTOR_DATABASE_URL": database_url}
    process: subprocess.Popen[bytes] | None = None
    try:
        for attempt in range(_START_ATTEMPTS):
            # Another process may take the free port first: then try another one.
            port = free_port(socket.SOCK_STREAM)
            log_path = workdir / f"collector-{attempt}.log"
            command = ["serve", "--host", LOOPBACK, "--port", str(port), *serve_args]
            with log_path.open("wb") as log:
                process = subprocess.Popen(
                    [str(VENV_BIN / "readynet-collector"), *command],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=full_env,
                )
            url = f"http://{LOOPBACK}:{port}"
            if wait_for_http(process, f"{url}/healthz", STARTUP_TIMEOUT_S):
                break
            stop_process(process)
        else:
            raise BenchError(f"the collector did not start; log tail:\n{log_tail(log_path)}")
        yield CollectorProcess(url, process.pid, database_url, log_path)
    finally:
        stop_process(process, timeout_s=stop_timeout_s)


@contextmanager
def serve_collector(database_url: str, workdir: Path) -> Iterator[RunningCollector]:
    """A migrated, enrolled collector serving on a free 127.0.0.1 port, stopped afterwards."""
    token = enroll(database_url)
    # Requests wrk abandoned may still be queued at the end: do not wait for them all.
    with start_collector(database_url, workdir) as process:
        yield RunningCollector(process.url, token, database_url, process.log_path)


def peak_rss_bytes(pid: int) -> int | None:
    """The process's peak resident set (VmHWM in /proc), or None when it cannot be read."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


def stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first), or None if the
    process has gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None  # gone meanwhile


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants alive now (a collector: its fork server and store processes)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := stat_fields(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def process_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of one running process so far."""
    fields = stat_fields(pid)
    if fields is None:
        raise BenchError(f"process {pid} has gone")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of `pid`'s process tree: the processes alive now, and the
    children they have reaped. A collector parses and stores in its store processes, so the
    serving process's own figure leaves most of its work out."""
    ticks = 0
    for member in process_tree(pid):
        fields = stat_fields(member)
        if fields is not None:
            ticks += sum(int(fields[i]) for i in (11, 12, 13, 14))
    return ticks / os.sysconf("SC_CLK_TCK")


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A fresh database on the local PostgreSQL (127.0.0.1:5432), dropped afterwards."""
    name = f"readynet_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def postgres_unreachable() -> str | None:
    """Why the local PostgreSQL cannot be used, or None when it answers."""
    try:
        with psycopg.connect(POSTGRES_ADMIN, connect_timeout=5):
            return None
    except psycopg.OperationalError as exc:
        first_line = next(iter(str(exc).splitlines()), "")
        return f"PostgreSQL not reachable on 127.0.0.1:5432 ({first_line})"
