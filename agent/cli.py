"""`readynet-agent`: take measurements, queue them in the outbox, deliver them."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

import httpx

from agent import __version__
from agent.errors import ReadyNetError, UploadError
from agent.outbox import Outbox
from agent.probes.base import Probe, ProbeResult
from agent.probes.onnet import OnNetProbe
from agent.probes.snmp import SnmpProbe
from agent.redact import redact, scrub
from agent.settings import DEFAULT_CONFIG_PATH, AgentSettings, load_settings
from agent.uploader import deliver


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        # load_settings never quotes a value, so its errors need no redaction.
        settings = load_settings(args.config)
    except ReadyNetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        result: int = asyncio.run(args.handler(settings))
    except ReadyNetError as exc:
        print(f"error: {redact(str(exc), settings.secrets())}", file=sys.stderr)
        return 1
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="readynet-agent", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    once = sub.add_parser("once", help="run every probe once, then deliver the outbox")
    once.set_defaults(handler=run_once)
    flush = sub.add_parser("flush", help="deliver what waits in the outbox")
    flush.set_defaults(handler=flush_outbox)
    for command in (once, flush):
        command.add_argument(
            "--config",
            type=Path,
            default=DEFAULT_CONFIG_PATH,
            help=f"agent.yaml (default: {DEFAULT_CONFIG_PATH})",
        )
    return parser


def build_probes(settings: AgentSettings) -> list[Probe]:
    probes: list[Probe] = []
    if settings.onnet.enabled:
        probes.append(
            OnNetProbe(
                collector_url=settings.collector_url,
                token=settings.token.get_secret_value(),
                settings=settings.onnet,
            )
        )
    probes.extend(SnmpProbe(device) for device in settings.devices)
    return probes


async def run_once(settings: AgentSettings) -> int:
    results: list[ProbeResult] = []
    for probe in build_probes(settings):
        # One at a time: a throughput test must not compete with the polls it is measured beside.
        results.extend(await probe.run())
    # Each probe masks its own credential; this masks every one, in every result, once more.
    results = [scrub(result, settings.secrets()) for result in results]
    for result in results:
        print(_describe(result))
    with Outbox(settings.state_dir / "outbox.sqlite3") as outbox:
        outbox.add(results)
    return await flush_outbox(settings)


async def flush_outbox(settings: AgentSettings) -> int:
    headers = {"Authorization": f"Bearer {settings.token.get_secret_value()}"}
    async with httpx.AsyncClient(
        base_url=settings.collector_url, headers=headers, timeout=settings.upload_timeout_s
    ) as client:
        with Outbox(settings.state_dir / "outbox.sqlite3") as outbox:
            try:
                delivery = await deliver(
                    outbox,
                    client=client,
                    batch_size=settings.batch_size,
                    secrets=settings.secrets(),
                )
            except UploadError as exc:
                reason = redact(str(exc), settings.secrets())
                print(f"not delivered, kept {len(outbox)} results in the outbox: {reason}")
                return 1
    print(
        f"delivered: {delivery.accepted} new, {delivery.duplicates} already stored, "
        f"{delivery.remaining} waiting"
    )
    return 0


def _describe(result: ProbeResult) -> str:
    if result.error is not None:
        return f"{result.kind}: error: {result.error}"
    if result.kind == "throughput":
        down = (result.download_bps or 0) / 1e6
        up = (result.upload_bps or 0) / 1e6
        return f"throughput ({result.path}): down {down:.1f} Mbps, up {up:.1f} Mbps"
    if result.kind == "latency":
        p50 = "n/a" if result.rtt_p50_ms is None else f"{result.rtt_p50_ms:.1f} ms"
        sent = result.answered + result.lost
        return f"latency ({result.target}): p50 {p50}, {result.lost} of {sent} lost"
    return f"snmp {result.device}: {len(result.interfaces)} interfaces"
