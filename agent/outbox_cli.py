"""`readynet-agent outbox`: what waits in the outbox, and the results the collector refused.

readynet-agent outbox [--format json]            the status (pending, cap, losses, dead letters)
readynet-agent outbox requeue --id ID ... | --all  dead letters back to the queue
readynet-agent outbox purge --id ID ... | --all | --older-than DAYS   dead letters deleted
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.outbox import MB, Outbox, OutboxStatus
from agent.settings import AgentSettings

OUTBOX_FILE = "outbox.sqlite3"


def add_parser(sub: argparse._SubParsersAction[Any]) -> argparse.ArgumentParser:
    status: argparse.ArgumentParser = sub.add_parser(
        "outbox", help="what waits in the outbox, and the results the collector refused"
    )
    status.add_argument("--format", choices=("text", "json"), default="text")
    status.set_defaults(report=show_outbox)
    actions = status.add_subparsers(dest="action", metavar="ACTION")
    requeue = actions.add_parser(
        "requeue", help="move dead letters back to the queue (e.g. after a collector upgrade)"
    )
    _which(requeue, older_than=False)
    requeue.set_defaults(report=requeue_dead_letters)
    purge = actions.add_parser("purge", help="delete dead letters")
    _which(purge, older_than=True)
    purge.set_defaults(report=purge_dead_letters)
    for action in (requeue, purge):
        # SUPPRESS: without the option here, the value given before the action stays.
        action.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="agent.yaml")
    return status


def _which(parser: argparse.ArgumentParser, *, older_than: bool) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", dest="ids", action="append", metavar="ID", help="a dead letter's id")
    which.add_argument("--all", action="store_true", help="every dead letter")
    if older_than:
        which.add_argument(
            "--older-than", type=float, metavar="DAYS", help="dead letters refused over DAYS ago"
        )


def _open(settings: AgentSettings) -> Outbox:
    return Outbox.configured(settings.state_dir / OUTBOX_FILE, settings.outbox)


def requeue_dead_letters(settings: AgentSettings, args: argparse.Namespace) -> int:
    with _open(settings) as outbox:
        moved = outbox.requeue(None if args.all else args.ids)
        left = outbox.status(newest=0).dead_letters
    print(f"requeued {moved} dead letters ({left} left); `readynet-agent flush` sends them now")
    return 0


def purge_dead_letters(settings: AgentSettings, args: argparse.Namespace) -> int:
    with _open(settings) as outbox:
        if args.older_than is not None:
            purged = outbox.purge(older_than=timedelta(days=args.older_than))
        else:
            purged = outbox.purge(None if args.all else args.ids)
        left = outbox.status(newest=0).dead_letters
    print(f"purged {purged} dead letters ({left} left)")
    return 0


def show_outbox(settings: AgentSettings, args: argparse.Namespace) -> int:
    """Pending results, the oldest one's age, the cap and what it cost, and the dead letters
    with their newest reasons."""
    with _open(settings) as outbox:
        status = outbox.status(newest=5)
    now = datetime.now(UTC)
    age = None if status.oldest_pending is None else (now - status.oldest_pending).total_seconds()
    if args.format == "json":
        print(json.dumps(as_json(status, age), indent=2))
        return 0
    oldest = "" if age is None else f" (oldest queued {_age(age)} ago)"
    print(f"pending: {status.pending}{oldest}")
    dropped = (
        f" ({status.dead_letters_dropped} oldest dropped over the cap of {status.dead_letters_max})"
        if status.dead_letters_dropped
        else ""
    )
    print(f"dead letters: {status.dead_letters}{dropped}")
    for d in status.newest_dead_letters:
        print(f"  {_iso(d.failed_at)} {d.kind} {d.id}: HTTP {d.status}: {d.reason}")
    print(f"size: {status.bytes / MB:.1f} of {status.max_bytes / MB:.1f} MB")
    if status.summarised or status.dropped:
        summarised, lost = _kinds(status.summarised), _kinds(status.dropped)
        print(f"over the size cap: summarised {summarised}; dropped {lost}")
    last = "never" if status.last_delivered_at is None else _iso(status.last_delivered_at)
    print(f"delivered: {status.delivered_total} (last {last})")
    return 0


def as_json(status: OutboxStatus, age_s: float | None) -> dict[str, Any]:
    """The status as `readynet-agent outbox --format json` prints it."""
    return {
        "pending": status.pending,
        "oldest_pending_at": _iso(status.oldest_pending),
        "oldest_pending_age_s": None if age_s is None else round(age_s, 1),
        "bytes": status.bytes,
        "max_bytes": status.max_bytes,
        "summarised": status.summarised,
        "dropped": status.dropped,
        "delivered_total": status.delivered_total,
        "last_delivered_at": _iso(status.last_delivered_at),
        "dead_letters": status.dead_letters,
        "dead_letters_max": status.dead_letters_max,
        "dead_letters_dropped": status.dead_letters_dropped,
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
    }


def _kinds(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "none"


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
