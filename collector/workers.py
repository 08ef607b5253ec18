"""`readynet-collector serve --workers N`: N collector processes on one port.

The collector keeps nothing that must be shared in process memory (slots, leases and every
result are in the database; the readiness board and token caches are per-process caches), so
it scales out by running more of itself: here N children of `readynet-collector serve
--reuse-port`, each a whole server, which the kernel hands new connections to in turn
(SO_REUSEPORT); elsewhere, replicas behind a load balancer (deploy/compose). This parent only
supervises: a worker that dies is started again (after a pause that grows while it keeps
dying), and SIGTERM or SIGINT is passed on to every worker, which then finish their requests.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from types import FrameType

logger = logging.getLogger(__name__)

# A worker that dies sooner than this after its start counts as failing to start.
HEALTHY_AFTER_S = 10.0
MAX_RESTART_DELAY_S = 30.0
STOP_TIMEOUT_S = 30.0


def run_workers(count: int, *, host: str, port: int) -> int:
    """Run `count` workers until SIGTERM/SIGINT; the exit status is 0 after a clean stop."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    command = [
        sys.executable,
        "-m",
        "collector",
        "serve",
        "--host",
        host,
        "--port",
        str(port),
        "--reuse-port",
    ]
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    workers: dict[int, tuple[subprocess.Popen[bytes], float, float]] = {}

    def start(slot: int, delay_s: float) -> None:
        proc = subprocess.Popen(command, env={**os.environ, "READYNET_COLLECTOR_WORKER": str(slot)})
        workers[slot] = (proc, time.monotonic(), delay_s)
        logger.info("worker %d started (pid %d)", slot, proc.pid)

    for slot in range(count):
        start(slot, 0.0)
    try:
        while not stopping:
            time.sleep(0.2)
            for slot, (proc, started, delay_s) in list(workers.items()):
                code = proc.poll()
                if code is None or stopping:
                    continue
                failing = time.monotonic() - started < HEALTHY_AFTER_S
                delay_s = min(MAX_RESTART_DELAY_S, max(1.0, 2 * delay_s)) if failing else 0.0
                logger.warning(
                    "worker %d (pid %d) exited with %d; starting it again in %.0f s",
                    slot,
                    proc.pid,
                    code,
                    delay_s,
                )
                time.sleep(delay_s)
                if not stopping:
                    start(slot, delay_s)
    finally:
        for proc, _, _ in workers.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for proc, _, _ in workers.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return 0
