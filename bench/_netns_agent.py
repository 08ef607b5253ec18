"""Run one `OnNetProbe` and print its `ThroughputTest` as JSON on the last line of stdout.

`bench.onnet` starts this inside the client network namespace it created
(``ip netns exec <ns> python -m bench._netns_agent ...``); the agent token comes in the
``READYNET_BENCH_TOKEN`` environment variable so it is not on a command line.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from agent.probes.onnet import OnNetProbe
from agent.settings import OnNetSettings
from agent.wire import ThroughputTest

TOKEN_ENV = "READYNET_BENCH_TOKEN"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench._netns_agent", description=__doc__)
    parser.add_argument("--url", required=True, help="collector base URL")
    parser.add_argument("--download-bytes", type=int, required=True)
    parser.add_argument("--upload-bytes", type=int, required=True)
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument("--max-seconds", type=float, default=15.0)
    args = parser.parse_args(argv)
    settings = OnNetSettings(
        download_bytes=args.download_bytes,
        upload_bytes=args.upload_bytes,
        streams=args.streams,
        max_seconds=args.max_seconds,
    )
    probe = OnNetProbe(collector_url=args.url, token=os.environ[TOKEN_ENV], settings=settings)
    [result] = asyncio.run(probe.run())
    if not isinstance(result, ThroughputTest):
        print(f"OnNetProbe returned {type(result).__name__}", file=sys.stderr)
        return 1
    print(result.model_dump_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
