"""`readynet-agent outbox`: what waits in the outbox, and the results the collector refused."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from agent.outbox import Outbox
from agent.settings import AgentSettings


def add_parser(sub: argparse._SubParsersAction[Any]) -> argparse.ArgumentParser:
    status: argparse.ArgumentParser = sub.add_parser(
        "outbox", help="what waits in the outbox, and the results the collector refused"
    )
    status.add_argument("--format", choices=("text", "json"), default="text")
    status.set_defaults(report=show_outbox)
    return status


def show_outbox(settings: AgentSettings, args: argparse.Namespace) -> int:
    """Pending results, the oldest one's age, and the dead letters with their newest reasons."""
    with Outbox(settings.state_dir / "outbox.sqlite3") as outbox:
        status = outbox.status(newest=5)
    now = datetime.now(UTC)
    age = None if status.oldest_pending is None else (now - status.oldest_pending).total_seconds()
    if args.format == "json":
        print(
            json.dumps(
                {
                    "pending": status.pending,
                    "oldest_pending_at": _iso(status.oldest_pending),
                    "oldest_pending_age_s": None if age is None else round(age, 1),
                    "dead_letters": status.dead_letters,
                    "newest_dead_letters": [
                        {
                            "id": d.id,
                            "kind": d.kind,
                            "queued_at": _iso(d.queued_at),
                            "failed_at": _iso(d.failed_at),
                            "status": d.status,
                            "reason": d.reason,
                        }
                        for d in status.newest_dead_letters
                    ],
                },
                indent=2,
            )
        )
        return 0
    oldest = "" if age is None else f" (oldest queued {_age(age)} ago)"
    print(f"pending: {status.pending}{oldest}")
    print(f"dead letters: {status.dead_letters}")
    for d in status.newest_dead_letters:
        print(f"  {_iso(d.failed_at)} {d.kind} {d.id}: HTTP {d.status}: {d.reason}")
    return 0


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat(timespec="seconds")


def _age(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"
