"""`readynet-agent run`: the long-running agent, an APScheduler scheduler and its jobs.

Jobs:

- **round**: a measurement round (latency, on-net, internet tests) at the time the test policy
  (`agent.schedule.TestPolicy`) plans, so that each school collects 10+ valid tests over 5+ days
  across the school day. When it is due, the policy decides again (blackouts and quiet hours
  added since still stop it, the data budget may defer it); the collector grants a slot (schools
  behind one shared exit take turns); the uplink is checked for traffic already flowing (a busy
  line defers the test). Then the round runs and the next one is planned.
- **snmp**: every `snmp_interval_s`, a poll of every device. A poll of the uplink's device waits
  while a test runs, and a test waits for it: neither measures the other.
- **deliver**: every `delivery_interval_s`, and after each round, the outbox goes to the
  collector. While the collector cannot be reached, delivery backs off (`agent.backoff`):
  exponentially, with full jitter, up to `delivery_backoff_max_s`, never before a `Retry-After`
  (a 429 or 503); the next attempt is moved to that time, and a success resets it.
- **heartbeat**: at start and every `heartbeat_interval_s`, the agent tells the collector it is
  alive and how it is doing (`agent.heartbeat`); when the collector holds newer settings for it
  (schedule, devices, uplink: `agent.remote_config`), they are fetched, checked and applied
  without a restart, and kept as the last good copy; invalid ones are refused and reported.
- `add_periodic` adds jobs of the same kind.

The first round after install (no round has run from this state directory yet) starts
`first_round_s` after the daemon, inside the school day or not (blackouts, quiet hours and the
data budget still hold), so that whoever installed the agent sees it measure and deliver.

Everything a job measures goes into the durable outbox first. No job failure stops the daemon:
it is logged and the job runs again at its next time.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from pydantic import ValidationError

from agent import __version__, backoff
from agent.clock import Clock, SystemClock
from agent.errors import (
    CollectorUnavailable,
    OutboxError,
    ProbeError,
    ReadyNetError,
    UploadError,
)
from agent.heartbeat import (
    CLOCK_WARNING_S,
    StatusFile,
    build_heartbeat,
    fetch_config,
    iso,
    send_heartbeat,
)
from agent.measure import collector_client, measurement_round
from agent.outbox import Outbox
from agent.probes.base import ProbeResult
from agent.probes.ceiling import Ceiling, ceiling_towards
from agent.redact import redact, scrub
from agent.remote_config import RemoteConfigError, RemoteConfigFile, merged
from agent.schedule import slots
from agent.schedule.policy import Defer, Go, TestPolicy
from agent.settings import AgentSettings
from agent.snmp import poller
from agent.uploader import deliver
from agent.wire import SnmpPoll, ThroughputTest

logger = logging.getLogger(__name__)

OUTBOX_FILE = "outbox.sqlite3"
# Room for the round's own set-up and delivery in the slot asked of the collector.
SLOT_MARGIN_S = 30
# When the collector cannot be asked for a slot or the policy cannot plan: ask again after this.
RETRY_PLANNING = timedelta(minutes=30)
# A job that could not run on time (the box was suspended, the loop busy) still runs this late.
MISFIRE_GRACE_S = 300
# A delivery backing off is tried again this soon at the earliest (the job that failed has ended).
MIN_RETRY_S = 1.0
# A delivery moved to a later time may run this much early (the scheduler's and monotonic time).
RETRY_SLACK_S = 0.25


class _Deferred(Exception):
    """The round was put off and its retry planned."""


class AgentDaemon:
    """The agent's scheduler and jobs; `run()` until `stop` is set."""

    def __init__(
        self,
        settings: AgentSettings,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        # agent.yaml as read at start; settings the collector holds are laid over it.
        self.local_settings = settings
        self.clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.status_file = StatusFile(settings.state_dir)
        self.status = self.status_file.load()
        self.status.version = __version__
        self.status.started_at = iso(datetime.now(UTC))
        self.status.last_heartbeat_error = None
        self.remote_file = RemoteConfigFile(settings.state_dir)
        # A remote config the agent refused: not fetched again until the collector changes it.
        self.refused_etag: str | None = None
        self.settings = self._with_saved_remote(settings)
        self.policy = TestPolicy(
            self.settings.schedule, self.settings.state_dir, clock=self.clock.now
        )
        # A round and a change of settings never overlap.
        self.round_lock = asyncio.Lock()
        self.first_round = self.status.first_round_at is None and settings.first_round_s is not None
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        # Throughput tests and polls of the uplink's device never run at the same time.
        self.test_lock = asyncio.Lock()
        self.rounds_run = 0
        # Jobs running now, cancelled at shutdown before the state they write to is closed.
        self._running: set[asyncio.Task[Any]] = set()
        # No delivery before this time.monotonic(): backing off after `delivery_failures` failed
        # deliveries in a row, or the collector asked for a pause (Retry-After). Real seconds,
        # whatever the clock.
        self.deliver_not_before: float | None = None
        self.delivery_failures = 0

    def add_periodic(self, name: str, job: Callable[[], Awaitable[None]], every_s: float) -> None:
        """Run `job` every `every_s` seconds, first after one interval (heartbeats, config)."""
        self.scheduler.add_job(
            self._tracked(_logged(name, job)),
            IntervalTrigger(seconds=every_s, timezone=UTC),
            id=name,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=MISFIRE_GRACE_S,
        )

    async def run(self, stop: asyncio.Event) -> None:
        s = self.settings
        now = datetime.now(UTC)
        self.scheduler.add_job(
            self._tracked(_logged("snmp", self.poll_devices)),
            IntervalTrigger(seconds=s.snmp_interval_s, timezone=UTC, jitter=_jitter(s)),
            id="snmp",
            next_run_time=now,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=MISFIRE_GRACE_S,
        )
        self.add_periodic("deliver", self.deliver_outbox, s.delivery_interval_s)
        self.scheduler.add_job(
            self._tracked(_logged("heartbeat", self.heartbeat)),
            IntervalTrigger(seconds=s.heartbeat_interval_s, timezone=UTC),
            id="heartbeat",
            next_run_time=now,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=MISFIRE_GRACE_S,
        )
        if self.first_round and s.first_round_s is not None:
            self._plan_round(self.clock.now() + timedelta(seconds=s.first_round_s))
        else:
            self._plan_round(self.policy.next_start())
        self._save_status()
        self.scheduler.start()
        logger.info("agent running: %d devices, next test %s", len(s.devices), self._next_round())
        try:
            await stop.wait()
        finally:
            self.scheduler.shutdown(wait=False)
            # A test in flight is abandoned; its round stays on the ledger at its estimate.
            for task in list(self._running):
                task.cancel()
            await asyncio.gather(*self._running, return_exceptions=True)
            self.policy.close()

    # --- the measurement round -------------------------------------------------------------

    async def measurement_job(self) -> None:
        """The planned round: vet it, run it, plan the next. Never raises."""
        async with self.round_lock:
            try:
                await self._vetted_round()
            except Exception:
                logger.exception("measurement round failed")
                self._plan_round(self.clock.now() + RETRY_PLANNING)

    async def _vetted_round(self) -> None:
        decision = self.policy.decide(anytime=self.first_round)
        if isinstance(decision, Defer):
            self.first_round = False
            logger.info("test deferred: %s; next try %s", decision.reason, decision.retry_at)
            self._plan_round(self.policy.next_start(decision.retry_at) or decision.retry_at)
            return
        async with collector_client(self.settings) as client:
            try:
                slot = await self._slot(client, decision)
            except _Deferred:
                return
            try:
                await self._run_round(decision)
            finally:
                if isinstance(slot, slots.Slot):
                    await _quietly(slots.release(client, slot, secrets=self.settings.secrets()))
        await self.deliver_outbox()
        self._plan_round(self.policy.next_start())

    async def _slot(self, client: httpx.AsyncClient, decision: Go) -> slots.Slot | None:
        """A slot, or None to go ahead without one (collector unreachable).

        Raises _Deferred (and plans the retry) when another school behind the exit is testing.
        """
        try:
            answer = await slots.acquire(
                client, self._round_seconds(), secrets=self.settings.secrets()
            )
        except UploadError as exc:
            logger.warning("no test slot from the collector (%s); testing without one", exc)
            return None
        if isinstance(answer, slots.Busy):
            self.policy.release(decision.ticket)
            retry = self.clock.now() + timedelta(seconds=answer.retry_after_s)
            logger.info("another school behind the same exit is testing; retry at %s", retry)
            self._plan_round(retry)
            raise _Deferred
        return answer

    async def _run_round(self, decision: Go) -> None:
        async with self.test_lock:
            background = await self._background()
            if isinstance(background, str):
                self.policy.release(decision.ticket)
                retry = self.clock.now() + timedelta(minutes=self._uplink_retry_minutes())
                logger.info("test deferred: %s; next try %s", background, retry)
                self._plan_round(retry)
                return
            stopped = self.policy.holds_back(anytime=self.first_round)
            if stopped is not None:
                self.policy.release(decision.ticket)
                logger.info("test deferred at its start: %s", stopped.reason)
                self._plan_round(self.policy.next_start(stopped.retry_at) or stopped.retry_at)
                return
            results = await measurement_round(self.settings)
        self.rounds_run += 1
        now = iso(datetime.now(UTC))
        if self.first_round:
            self.first_round = False
            self.status.first_round_at = now
        if any(isinstance(r, ThroughputTest) and r.error is None for r in results):
            self.status.last_test_at = now
        try:
            self._queue(self._recorded(results, decision.ticket, background))
        except OutboxError as exc:
            # A full disk: this round is lost, said once; the daemon and the plan go on.
            logger.error("this round's results were not kept: %s", exc)
        self._save_status()

    async def _background(self) -> float | str | None:
        """The uplink's inbound traffic (bit/s), None if unknown, or why it is too busy."""
        uplink = self.settings.uplink
        if uplink is None:
            return None
        device = next(d for d in self.settings.devices if d.name == uplink.device)
        try:
            measured = await poller.background(device, uplink)
        except ProbeError as exc:
            logger.warning("uplink traffic unknown, testing anyway: %s", exc)
            return None
        return measured.busy(uplink) or measured.in_bps

    def _recorded(
        self, results: list[ProbeResult], ticket: int | None, background: float | None
    ) -> list[ProbeResult]:
        tests = [r for r in results if isinstance(r, ThroughputTest)]
        recorded: list[ProbeResult] = []
        for result in results:
            if isinstance(result, ThroughputTest):
                if background is not None:
                    result = result.model_copy(update={"background_bps": background})
                result = self.policy.record(result, ticket=ticket, final=result.id == tests[-1].id)
            recorded.append(result)
        return recorded

    def _plan_round(self, at: datetime | None) -> None:
        if at is None:
            logger.warning("no test can be planned in the coming year; asking again later")
            at = self.clock.now() + RETRY_PLANNING
        self.scheduler.add_job(
            self._tracked(self.measurement_job),
            DateTrigger(run_date=self.clock.wall(at), timezone=UTC),
            id="round",
            replace_existing=True,
            misfire_grace_time=MISFIRE_GRACE_S,
        )

    def _tracked(self, job: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            task = asyncio.current_task()
            assert task is not None
            self._running.add(task)
            try:
                await job()
            finally:
                self._running.discard(task)

        return run

    def _next_round(self) -> str:
        job = self.scheduler.get_job("round")
        return "not planned" if job is None else str(job.next_run_time)

    def _round_seconds(self) -> int:
        s = self.settings
        seconds = SLOT_MARGIN_S + (2 * s.onnet.duration_s + 5 if s.onnet.enabled else 0)
        if s.internet.enabled:
            seconds += s.internet.deadline_s
        if s.latency.enabled:
            seconds += s.latency.probes * (s.latency.interval_s + s.latency.timeout_s)
        return min(math.ceil(seconds), slots.MAX_SLOT_SECONDS)

    def _uplink_retry_minutes(self) -> float:
        return self.settings.uplink.retry_minutes if self.settings.uplink else 15

    # --- polls and delivery ----------------------------------------------------------------

    async def poll_devices(self) -> None:
        s = self.settings
        uplink = s.uplink.device if s.uplink else None
        others = [d for d in s.devices if d.name != uplink]
        # In a poller process of its own: pysnmp's memory is given back after each job.
        results: list[ProbeResult] = [*await poller.poll(others, s.snmp)]
        if uplink is not None:
            async with self.test_lock:
                results += await poller.poll([d for d in s.devices if d.name == uplink], s.snmp)
        self._queue([scrub(result, s.secrets()) for result in results])
        if any(isinstance(r, SnmpPoll) and r.error is None for r in results):
            self.status.last_poll_at = iso(datetime.now(UTC))
            self._save_status()

    async def deliver_outbox(self) -> None:
        s = self.settings
        if self.deliver_not_before is not None:
            wait_s = self.deliver_not_before - time.monotonic()
            if wait_s > RETRY_SLACK_S:
                logger.info("delivery waits %.0f s more (backing off)", wait_s)
                return
            self.deliver_not_before = None
        async with collector_client(s) as client:
            with open_outbox(s) as outbox:
                try:
                    done = await deliver(
                        outbox, client=client, batch_size=s.batch_size, secrets=s.secrets()
                    )
                except UploadError as exc:
                    later = ""
                    if isinstance(exc, CollectorUnavailable):
                        later = f"; next try in {self._back_off(exc.retry_after_s):.0f} s"
                    logger.warning(
                        "not delivered, %d results wait in the outbox: %s%s",
                        len(outbox),
                        redact(str(exc), s.secrets()),
                        later,
                    )
                    return
        self.delivery_failures = 0
        if done.accepted or done.duplicates:
            self.status.last_delivery_at = iso(datetime.now(UTC))
            self._save_status()
            logger.info("delivered %d new, %d already stored", done.accepted, done.duplicates)
        if done.dead_lettered:
            logger.warning(
                "%d results refused by the collector were set aside (readynet-agent outbox)",
                done.dead_lettered,
            )

    def _back_off(self, retry_after_s: float | None) -> float:
        """Put the next delivery off after a failure; the seconds it waits."""
        s = self.settings
        self.delivery_failures += 1
        wait_s = max(
            MIN_RETRY_S,
            backoff.delay_s(
                self.delivery_failures,
                base_s=s.delivery_interval_s,
                cap_s=s.delivery_backoff_max_s,
                rng=self.rng,
                retry_after_s=retry_after_s,
            ),
        )
        self.deliver_not_before = time.monotonic() + wait_s
        if self.scheduler.running and self.scheduler.get_job("deliver") is not None:
            # The periodic job runs at that time, then every interval from it.
            at = datetime.now(UTC) + timedelta(seconds=wait_s)
            self.scheduler.modify_job("deliver", next_run_time=at)
        return wait_s

    # --- heartbeat and remote config ------------------------------------------------------

    async def heartbeat(self) -> None:
        self._reread_token()
        s = self.settings
        with self._outbox() as outbox:
            figures = outbox.status(newest=0)
        beat = build_heartbeat(self.status, figures, self._ceiling(), sent_at=datetime.now(UTC))
        async with collector_client(s) as client:
            try:
                receipt = await send_heartbeat(client, beat, secrets=s.secrets())
            except UploadError as exc:
                self.status.last_heartbeat_error = redact(str(exc), s.secrets())
                self._save_status()
                logger.warning("heartbeat not delivered: %s", self.status.last_heartbeat_error)
                return
            self.status.last_heartbeat_at = iso(receipt.received_at)
            self.status.last_heartbeat_error = None
            self.status.clock_offset_s = round(receipt.clock_offset_s, 3)
            if abs(receipt.clock_offset_s) > CLOCK_WARNING_S:
                logger.warning(
                    "this box's clock is %+.0f s off the collector's: results carry its time; "
                    "enable NTP (systemd-timesyncd) and systemd-time-wait-sync.service",
                    receipt.clock_offset_s,
                )
            etag = receipt.config_etag
            if etag != self.status.config_etag and (etag is None or etag != self.refused_etag):
                await self._update_config(client, etag)
        self._save_status()

    async def _update_config(self, client: httpx.AsyncClient, etag: str | None) -> None:
        if etag is None:
            logger.info("the collector holds no settings for this agent: back to agent.yaml")
            self.remote_file.clear()
            self.status.config_etag = self.status.config_error = None
            await self.apply_settings(self.local_settings)
            return
        document = await fetch_config(
            client, self.status.config_etag, secrets=self.settings.secrets()
        )
        if document is None:
            return
        try:
            new = merged(self.local_settings, document.config)
        except RemoteConfigError as exc:
            self.refused_etag = document.etag
            self.status.config_error = f"settings {document.etag} refused: {exc}"
            logger.error("%s; keeping the settings in use", self.status.config_error)
            return
        self.remote_file.save(document.etag, document.config)
        await self.apply_settings(new)
        self.status.config_etag, self.status.config_error = document.etag, None
        logger.info(
            "settings %s from the collector applied: %d devices", document.etag, len(new.devices)
        )

    async def apply_settings(self, new: AgentSettings) -> None:
        """Run with `new` from now on: replan the rounds if the schedule changed, re-time polls."""
        async with self.round_lock:
            old, self.settings = self.settings, new
            if new.schedule != old.schedule:
                self.policy.close()
                self.policy = TestPolicy(new.schedule, new.state_dir, clock=self.clock.now)
                if self.scheduler.running and not self.first_round:
                    self._plan_round(self.policy.next_start())
            if new.snmp_interval_s != old.snmp_interval_s and self.scheduler.running:
                self.scheduler.reschedule_job(
                    "snmp",
                    trigger=IntervalTrigger(
                        seconds=new.snmp_interval_s, timezone=UTC, jitter=_jitter(new)
                    ),
                )

    def _reread_token(self) -> None:
        """Take up a token `readynet-agent rotate-token` (or a re-enrolment) wrote meanwhile."""
        path = self.settings.token_file
        if path is None:
            return
        try:
            token = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeError):
            return
        if not token or token == self.settings.token.get_secret_value():
            return
        try:
            self.local_settings = AgentSettings.model_validate(
                {**_fields(self.local_settings), "token": token}
            )
            self.settings = AgentSettings.model_validate({**_fields(self.settings), "token": token})
        except ValidationError:
            logger.error("%s does not hold a valid token; keeping the one in use", path)
            return
        logger.info("using the new token from %s", path)

    def _with_saved_remote(self, local: AgentSettings) -> AgentSettings:
        """`local` with the last good remote config over it, if there is one that still fits."""
        saved = self.remote_file.load()
        if saved is None:
            self.status.config_etag = None
            return local
        etag, document = saved
        try:
            settings = merged(local, document)
        except RemoteConfigError as exc:
            # agent.yaml changed under it (a device renamed): the collector will send it again.
            self.status.config_etag = None
            self.status.config_error = f"saved settings {etag} no longer fit: {exc}"
            logger.error("%s; running on agent.yaml alone", self.status.config_error)
            return local
        self.status.config_etag = etag
        return settings

    def _ceiling(self) -> Ceiling | None:
        parts = urlsplit(self.settings.collector_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            return ceiling_towards(parts.hostname or "", port)
        except OSError:
            return None

    def _save_status(self) -> None:
        try:
            self.status_file.save(self.status)
        except OSError as exc:
            logger.warning("cannot write %s: %s", self.status_file.path, exc)

    def _outbox(self) -> Outbox:
        return open_outbox(self.settings)

    def _queue(self, results: list[ProbeResult]) -> None:
        if not results:
            return
        with self._outbox() as outbox:
            outbox.add(results)


def _fields(settings: AgentSettings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in type(settings).model_fields}


def open_outbox(settings: AgentSettings) -> Outbox:
    """The agent's outbox, held under the size and dead-letter caps of `settings.outbox`."""
    return Outbox.configured(settings.state_dir / OUTBOX_FILE, settings.outbox)


def _logged(name: str, job: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        try:
            await job()
        except ReadyNetError as exc:
            logger.error("%s job failed: %s", name, exc)
        except Exception:
            logger.exception("%s job failed", name)

    return run


async def _quietly(work: Awaitable[None]) -> None:
    try:
        await work
    except UploadError as exc:
        logger.info("could not give the test slot back early (it expires on its own): %s", exc)


def _jitter(settings: AgentSettings) -> int:
    # Spread polls so a district's agents do not all poll on the same second.
    return max(1, int(settings.snmp_interval_s / 10))
