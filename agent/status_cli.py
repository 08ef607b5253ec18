"""`readynet-agent status`, `check-config` and `rotate-token`: a technician's view of one agent.

- `status` prints what the running daemon last wrote (`status.json`: heartbeat, deliveries,
  tests, polls, clock offset, remote config) and what waits in the outbox. `--format json` for
  scripts (`deploy/pi/install.sh` waits on `last_delivery_at` / `last_heartbeat_at`).
- `check-config` loads agent.yaml as the daemon would and says exactly what is wrong (exit 1),
  or what it will do (exit 0), with warnings for files others can read that hold secrets.
- `rotate-token` asks the collector for a new token and writes it to `token_file`; the old one
  keeps working until the new one is first used, so a crash in between locks nobody out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import stat
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agent.control import RotatedToken
from agent.daemon import open_outbox
from agent.enrol_cli import write_token
from agent.errors import ConfigError, UploadError
from agent.heartbeat import StatusFile, raise_for_status, send
from agent.measure import collector_client
from agent.redact import redact
from agent.settings import AgentSettings, load_settings


def add_parsers(sub: argparse._SubParsersAction[Any]) -> list[argparse.ArgumentParser]:
    status: argparse.ArgumentParser = sub.add_parser(
        "status", help="the daemon's last heartbeat, delivery, test and poll, and the outbox"
    )
    status.add_argument("--format", choices=("text", "json"), default="text")
    status.set_defaults(report=show_status)
    check: argparse.ArgumentParser = sub.add_parser(
        "check-config", help="load agent.yaml as the daemon would; say what is wrong, if anything"
    )
    check.set_defaults(checked=check_config)
    rotate: argparse.ArgumentParser = sub.add_parser(
        "rotate-token", help="get a new token from the collector and write it to token_file"
    )
    rotate.set_defaults(report=rotate_token)
    return [status, check, rotate]


def show_status(settings: AgentSettings, args: argparse.Namespace) -> int:
    status = StatusFile(settings.state_dir).load()
    with open_outbox(settings) as outbox:
        figures = outbox.status(newest=0)
    report = {
        **asdict(status),
        "collector_url": settings.collector_url,
        "outbox_pending": figures.pending,
        "outbox_oldest_pending_at": None
        if figures.oldest_pending is None
        else figures.oldest_pending.isoformat(timespec="seconds"),
        "dead_letters": figures.dead_letters,
        "delivered_total": figures.delivered_total,
    }
    if args.format == "json":
        print(json.dumps(report, indent=2))
        return 0
    width = max(len(key) for key in report)
    for key, value in report.items():
        print(f"{key:<{width}}  {'-' if value is None else value}")
    return 0


def check_config(config: Path) -> int:
    """Exit 0 with a summary and warnings, or 1 with what is wrong (never a secret's value)."""
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    warnings = readable_secrets(config, settings)
    if not settings.state_dir.exists():
        warnings.append(f"state_dir {settings.state_dir} does not exist yet (the daemon makes it)")
    s = settings
    print(f"{config}: valid")
    print(f"  collector   {s.collector_url}")
    print(f"  token       {'from ' + str(s.token_file) if s.token_file else 'in the config'}")
    print(f"  state_dir   {s.state_dir}")
    print(f"  devices     {len(s.devices)}" + (f" (uplink: {s.uplink.device})" if s.uplink else ""))
    tests = [
        name for name, on in (("on-net", s.onnet.enabled), ("internet", s.internet.enabled)) if on
    ]
    print(f"  tests       {', '.join(tests) or 'none'}; SNMP polls every {s.snmp_interval_s:g} s")
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def readable_secrets(config: Path, settings: AgentSettings) -> list[str]:
    """Files holding the token or SNMP credentials that others than their owner may read."""
    holders = [config] if settings.token_file is None or settings.devices else []
    if settings.token_file is not None:
        holders.append(settings.token_file)
    found = []
    for path in holders:
        try:
            mode = path.stat().st_mode
        except OSError:
            continue
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            found.append(
                f"{path} holds secrets and is readable by others (mode {stat.S_IMODE(mode):o}): "
                f"chmod 600 {path}"
            )
    return found


def rotate_token(settings: AgentSettings, args: argparse.Namespace) -> int:
    if settings.token_file is None:
        print(
            "error: the token is written in the config: move it to token_file first "
            "(readynet-agent enroll does that)",
            file=sys.stderr,
        )
        return 1
    try:
        rotated = asyncio.run(_rotate(settings))
    except UploadError as exc:
        print(f"error: {redact(str(exc), settings.secrets())}", file=sys.stderr)
        return 1
    write_token(settings.token_file, rotated.token)
    print(
        f"new token written to {settings.token_file}; the old one works until it is first used "
        f"or {rotated.old_valid_until:%Y-%m-%d %H:%M} UTC; the daemon reads the new one "
        "before its next heartbeat"
    )
    return 0


async def _rotate(settings: AgentSettings) -> RotatedToken:
    async with collector_client(settings) as client:
        response = await send(client, "POST", "/api/v1/agent/token", settings.secrets())
        raise_for_status(response, settings.secrets())
    try:
        return RotatedToken.model_validate_json(response.content)
    except ValidationError:
        raise UploadError("the collector sent an unreadable token") from None
