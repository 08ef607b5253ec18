"""`readynet-agent`: take measurements, queue them in the outbox, deliver them."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

from agent import __version__, enrol_cli, outbox_cli, status_cli, tls
from agent.daemon import AgentDaemon, open_outbox
from agent.errors import ReadyNetError, UploadError
from agent.heartbeat import StatusFile, build_heartbeat, iso, send_heartbeat
from agent.measure import collector_client, measurement_round
from agent.probes.base import ProbeResult
from agent.redact import redact
from agent.schedule.policy import TestPolicy
from agent.settings import DEFAULT_CONFIG_PATH, AgentSettings, load_settings
from agent.snmp import probe_cli
from agent.uploader import deliver
from agent.wire import SnmpPoll, ThroughputTest


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if hasattr(args, "standalone"):
        # A technician's command that needs no agent.yaml and no token (`snmp probe`).
        standalone: int = args.standalone(args)
        return standalone
    if hasattr(args, "checked"):
        # `check-config`: loading the config is the command itself.
        checked: int = args.checked(args.config)
        return checked
    try:
        # load_settings never quotes a value, so its errors need no redaction.
        settings = load_settings(args.config)
    except ReadyNetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    tls.use_ca_bundle(settings.ca_bundle)
    if hasattr(args, "handler"):
        # The daemon and manual rounds: said where the journal keeps it.
        for warning in status_cli.readable_secrets(args.config, settings):
            print(f"warning: {warning}", file=sys.stderr)
    if hasattr(args, "report"):
        try:
            report: int = args.report(settings, args)
        except ReadyNetError as exc:
            print(f"error: {redact(str(exc), settings.secrets())}", file=sys.stderr)
            return 1
        return report
    try:
        result: int = asyncio.run(args.handler(settings))
    except ReadyNetError as exc:
        print(f"error: {redact(str(exc), settings.secrets())}", file=sys.stderr)
        return 1
    return result


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line like the command's other errors, not argparse's usage block (sub-commands
        # inherit the class). Exit status 2: the command line is wrong.
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="readynet-agent", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="the long-running agent: scheduled tests, polls, delivery")
    run.set_defaults(handler=run_daemon)
    once = sub.add_parser("once", help="run every probe once, then deliver the outbox")
    once.set_defaults(handler=run_once)
    flush = sub.add_parser("flush", help="deliver what waits in the outbox")
    flush.set_defaults(handler=flush_outbox)
    status = outbox_cli.add_parser(sub)
    enrol_cli.add_parser(sub)
    for command in (run, once, flush, status, *status_cli.add_parsers(sub)):
        command.add_argument(
            "--config",
            type=Path,
            default=DEFAULT_CONFIG_PATH,
            help=f"agent.yaml (default: {DEFAULT_CONFIG_PATH})",
        )
    snmp = sub.add_parser("snmp", help="SNMP tools for a technician (no agent.yaml needed)")
    snmp_commands = snmp.add_subparsers(required=True, metavar="SNMP_COMMAND")
    probe = snmp_commands.add_parser(
        "probe", help="poll one device now: which profile matches, what would be reported"
    )
    probe_cli.add_arguments(probe)
    probe.set_defaults(standalone=probe_cli.run)
    return parser


async def run_daemon(settings: AgentSettings) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await AgentDaemon(settings).run(stop)
    return 0


async def run_once(settings: AgentSettings) -> int:
    """Every test and poll now, whatever the schedule says (a technician's manual round)."""
    results = await measurement_round(settings)
    # Imported here: the daemon (`run`) keeps pysnmp out of its process (agent.snmp.poller).
    from agent.snmp.round import snmp_round

    results += await snmp_round(settings.devices, settings.secrets(), settings.snmp)
    policy = TestPolicy(settings.schedule, settings.state_dir)
    try:
        tests = [r for r in results if isinstance(r, ThroughputTest)]
        results = [
            policy.record(r, final=r.id == tests[-1].id) if isinstance(r, ThroughputTest) else r
            for r in results
        ]
    finally:
        policy.close()
    for result in results:
        print(_describe(result))
    with open_outbox(settings) as outbox:
        outbox.add(results)
    delivered = await flush_outbox(settings)
    await _heartbeat_once(settings, results)
    return delivered


async def _heartbeat_once(settings: AgentSettings, results: list[ProbeResult]) -> None:
    """A manual round says it was here, as the daemon does every minute (agent list: ok)."""
    status_file = StatusFile(settings.state_dir)
    status = status_file.load()
    now = datetime.now(UTC)
    status.version, status.started_at = __version__, iso(now)
    if any(isinstance(r, ThroughputTest) and r.error is None for r in results):
        status.last_test_at = iso(now)
    if any(isinstance(r, SnmpPoll) and r.error is None for r in results):
        status.last_poll_at = iso(now)
    with open_outbox(settings) as outbox:
        figures = outbox.status(newest=0)
    if figures.last_delivered_at is not None:
        status.last_delivery_at = iso(figures.last_delivered_at)
    beat = build_heartbeat(status, figures, None, sent_at=now)
    async with collector_client(settings) as client:
        try:
            receipt = await send_heartbeat(client, beat, secrets=settings.secrets())
        except UploadError as exc:
            status.last_heartbeat_error = redact(str(exc), settings.secrets())
            print(f"heartbeat not delivered: {status.last_heartbeat_error}")
        else:
            status.last_heartbeat_at, status.last_heartbeat_error = iso(receipt.received_at), None
            status.clock_offset_s = round(receipt.clock_offset_s, 3)
    status_file.save(status)


async def flush_outbox(settings: AgentSettings) -> int:
    async with collector_client(settings) as client:
        with open_outbox(settings) as outbox:
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
    if delivery.dead_lettered:
        print(
            f"refused by the collector and set aside: {delivery.dead_lettered} "
            "(see readynet-agent outbox)"
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
    up = sum(1 for i in result.interfaces if i.oper_up)
    line = f"snmp {result.device} ({result.profile}): {len(result.interfaces)} interfaces, {up} up"
    if result.clients is not None:
        line += f"; {result.clients} Wi-Fi clients"
    if result.aps_up is not None:
        line += f" on {result.aps_up} APs up"
    return line
