"""``python -m bench``: every benchmark in turn, then one summary line per figure."""

from __future__ import annotations

import signal
import sys
import time
import traceback
from collections.abc import Callable
from types import FrameType

from bench import (
    agent_idle,
    ingest,
    load,
    onnet,
    outbox_drain,
    rollups,
    scale,
    scale_out,
    snmp_poll,
)
from bench._common import Figure, say

BENCHMARKS: list[tuple[str, Callable[[], list[Figure]]]] = [
    ("snmp", snmp_poll.run),
    ("onnet", onnet.run),
    ("idle", agent_idle.run),
    ("load", load.run),
    ("ingest", ingest.run),
    ("scale-out", scale_out.run),
    ("drain", outbox_drain.run),
    ("scale", scale.run),
    ("rollup", rollups.run),
]


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # `make` or CI stopping the bench: unwind through every finally, so processes and
    # namespaces the bench started are cleaned up.
    raise SystemExit(128 + signum)


def main() -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    started = time.monotonic()
    figures: list[Figure] = []
    failed = 0
    for group, run in BENCHMARKS:
        try:
            figures += run()
        except Exception as exc:
            # One broken benchmark must not hide the others' figures.
            failed += 1
            traceback.print_exc()
            first_line = next(iter(str(exc).splitlines()), "")
            reason = f"FAILED: {type(exc).__name__}: {first_line}"
            figures.append(Figure(group, "(all)", "", "", None, "", None, True, instead=reason))
    say("")
    say(f"== summary ({time.monotonic() - started:.0f} s; ratio = ours / reference)")
    for figure in figures:
        say(figure.line())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
