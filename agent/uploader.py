"""Deliver the outbox to the collector in batches; remove only what the collector confirmed.

Batches hold up to `batch_size` results and stay under the collector's body limit, measured on
the JSON as sent (results go as they are stored, unparsed). The collector names its limit in a
`ReadyNet-Max-Body-Bytes` header on every answer; the outbox remembers the last one, and until
one has been seen `DEFAULT_MAX_BODY_BYTES` applies. A 413 halves the batch; a result that alone
is over the limit, or that the collector refuses as invalid (422 naming it), goes to the
outbox's dead letters with the reason, so no single result stalls the queue. A 429 or 5xx
stops the delivery for now, carrying the collector's `Retry-After` (seconds or an HTTP date)
on the CollectorUnavailable; so do a hang (the client's timeout), an answer that breaks off and
one that is not a receipt. A 401 is a TokenRefused: the token is revoked or wrong, and the
results wait for a valid one. Every error is one line.

Once a full batch has gone through under a limit the collector named, IN_FLIGHT (2) batches
are under way at once: the agent reads and packs the next while the collector stores the one
before. Any batch that needs care (a 413, a 422, rows to set aside) sends delivery back to one
batch at a time from the head of the queue.

Memory: a batch is read from the outbox as bytes only up to the body limit, packed into one
body with a single copy, and streamed; the uploader holds about three batches' worth at most.

Error messages never carry the `secrets` the caller names (the token the client sends, at the
least): an httpx error may quote the Authorization header whole. See `agent.redact`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from pydantic import TypeAdapter, ValidationError

from agent import __version__
from agent.errors import CollectorRejected, CollectorUnavailable, TokenRefused
from agent.outbox import Outbox, Queued
from agent.redact import describe, redact, scrub
from agent.wire import WIRE_VERSION, Batch, Measurement, Receipt

_measurement: TypeAdapter[Measurement] = TypeAdapter(Measurement)

# The header the collector names its body limit in (collector/api/limits.py).
MAX_BODY_HEADER = "ReadyNet-Max-Body-Bytes"
# The body limit assumed until the collector has named its own (its default is 8,000,000).
DEFAULT_MAX_BODY_BYTES = 1_000_000
# An advertised limit is believed within these bounds (the collector's own minimum is 1,024).
MIN_BODY_BYTES = 1024
MAX_BODY_BYTES = 1_000_000_000
# Batches under way at once while delivery runs smoothly (see _stream): the agent reads, packs
# and sends the next while the collector stores one.
IN_FLIGHT = 2
# A body is sent in pieces of this size (see _chunks).
_PIECE_BYTES = 256 * 1024
# A Retry-After is honoured up to this long: a wrong clock or proxy must not stop delivery.
MAX_RETRY_AFTER_S = 3600.0


@dataclass(frozen=True)
class Delivery:
    accepted: int
    duplicates: int
    remaining: int
    dead_lettered: int = 0


class _TooLarge(CollectorRejected):
    """413: the body was over the limit (`max_bytes`, when the answer named it)."""

    def __init__(self, detail: str, max_bytes: int | None) -> None:
        super().__init__(413, detail)
        self.max_bytes = max_bytes


class _Refused(CollectorRejected):
    """422 naming measurements of the batch: `problems` by their index in it."""

    def __init__(self, detail: str, problems: dict[int, list[str]]) -> None:
        super().__init__(422, detail)
        self.problems = problems


async def deliver(
    outbox: Outbox,
    *,
    client: httpx.AsyncClient,
    batch_size: int,
    secrets: Sequence[str] = (),
    default_max_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> Delivery:
    """Post pending results until the outbox is empty.

    Results go as they are stored (the collector judges them: a result an older agent queued
    that the wire contract now refuses comes back as a 422 naming it). Raises
    CollectorUnavailable (network error, 5xx, 429: try again later, no sooner than its
    `retry_after_s` when set) or CollectorRejected (any other 4xx); in both cases the
    undelivered results stay in the outbox. Results refused for good are dead-lettered.
    """
    tally = _Tally()
    cap = batch_size
    while True:
        body = b""  # the last batch's body goes before the next is read
        advertised = outbox.body_limit
        max_bytes = advertised or default_max_bytes
        rows = outbox.next_batch(limit=cap, max_bytes=max_bytes)
        if not rows:
            break
        ids, body, unreadable = _pack(rows, max_bytes, secrets)
        del rows  # the body holds them now: not twice in memory while it is sent
        if unreadable:
            reason = "unreadable in the outbox and holds a secret: not sent"
            outbox.bury(unreadable, status=0, reason=reason)
            tally.dead += len(unreadable)
            continue
        if len(ids) == 1 and len(body) > max_bytes and advertised is not None:
            # Alone over a limit the collector itself named: it could never be delivered.
            reason = f"{len(body)} bytes, over the collector's limit of {max_bytes} bytes"
            outbox.bury(ids, status=413, reason=reason)
            tally.dead += 1
            continue
        try:
            receipt = await _post(client, body, outbox, secrets)
        except _TooLarge as exc:
            if len(ids) > 1:
                cap = max(1, len(ids) // 2)
                continue
            limit = f" of {exc.max_bytes} bytes" if exc.max_bytes else ""
            reason = f"{len(body)} bytes, over the collector's limit{limit} (HTTP 413)"
            outbox.bury(ids, status=413, reason=reason)
            tally.dead += 1
            continue
        except _Refused as exc:
            if not all(0 <= index < len(ids) for index in exc.problems):
                raise CollectorRejected(422, exc.detail) from exc
            for index, problems in exc.problems.items():
                reason = f"{exc.detail}: {'; '.join(problems)}"
                outbox.bury([ids[index]], status=422, reason=reason[:2000])
                tally.dead += 1
            continue
        tally.confirm(outbox, receipt)
        cap = min(batch_size, cap * 2)
        if cap == batch_size and outbox.body_limit is not None:
            body = b""
            await _stream(outbox, client, batch_size, secrets, tally)
    return Delivery(
        accepted=tally.accepted,
        duplicates=tally.duplicates,
        remaining=len(outbox),
        dead_lettered=tally.dead,
    )


@dataclass
class _Tally:
    accepted: int = 0
    duplicates: int = 0
    dead: int = 0

    def confirm(self, outbox: Outbox, receipt: Receipt) -> None:
        """Forget what the receipt confirms; set aside what it refuses for good."""
        outbox.remove([*receipt.accepted, *receipt.duplicates])
        self.accepted += len(receipt.accepted)
        self.duplicates += len(receipt.duplicates)
        # Refused for good (an id another agent's result has, a device the collector's
        # settings for this agent do not name): set aside with the reason, never sent again.
        for rejection in receipt.rejected:
            outbox.bury([rejection.id], status=200, reason=rejection.reason)
            self.dead += 1
        if not (receipt.accepted or receipt.duplicates or receipt.rejected):
            raise CollectorRejected(200, "the collector confirmed none of the batch")


async def _stream(
    outbox: Outbox,
    client: httpx.AsyncClient,
    batch_size: int,
    secrets: Sequence[str],
    tally: _Tally,
) -> None:
    """Deliver with IN_FLIGHT batches under way: the next is read, packed and sent while the
    collector stores the one before, instead of each side waiting for the other.

    Only while delivery runs smoothly (full batches under a limit the collector has named):
    a batch that needs the careful path (a 413, a 422 naming results, rows to set aside)
    returns here, once the other batches under way are answered, and `deliver` takes the queue
    one batch at a time from its head again. Any other failure is raised, likewise once the
    others are answered. Each batch's results leave the outbox only when its receipt says so.
    """
    under_way: deque[asyncio.Task[Receipt]] = deque()
    after = 0  # the queue position of the last result under way
    reading = True
    try:
        while True:
            while reading and len(under_way) < IN_FLIGHT:
                max_bytes = outbox.body_limit or DEFAULT_MAX_BODY_BYTES
                rows = outbox.next_batch(limit=batch_size, max_bytes=max_bytes, after=after)
                ids, body, unreadable = _pack(rows, max_bytes, secrets) if rows else ([], b"", [])
                if not ids or unreadable or len(body) > max_bytes:
                    reading = False  # the end of the queue, or rows for the careful path
                    break
                after = rows[len(ids) - 1].rowid
                del rows
                under_way.append(asyncio.create_task(_post(client, body, outbox, secrets)))
                del body  # the task holds it until it is sent
            if not under_way:
                return
            try:
                receipt = await under_way.popleft()
            except (_TooLarge, _Refused):
                return
            tally.confirm(outbox, receipt)
    except asyncio.CancelledError:
        # Shutting down: the others go too (their results stay queued), rather than keep the
        # daemon waiting for their answers.
        for post in under_way:
            post.cancel()
        raise
    finally:
        await _settle(under_way, outbox, tally)


async def _settle(under_way: deque[asyncio.Task[Receipt]], outbox: Outbox, tally: _Tally) -> None:
    """Wait for the batches still under way and keep what they confirmed; their failures are
    dropped (their results stay queued and go again). Cancelled, they are cancelled too."""
    tasks = list(under_way)
    under_way.clear()
    try:
        answers = await asyncio.gather(*tasks, return_exceptions=True)
    except asyncio.CancelledError:
        for post in tasks:
            post.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    for answer in answers:
        if isinstance(answer, Receipt):
            with contextlib.suppress(CollectorRejected):
                tally.confirm(outbox, answer)


def _pack(
    rows: list[Queued], max_bytes: int, secrets: Sequence[str]
) -> tuple[list[str], bytes, list[str]]:
    """The ids and body of the longest head of `rows` whose batch fits `max_bytes` (at least
    one row), or the rows that hold a secret and cannot be read to mask it."""
    unreadable: list[str] = []
    payloads: list[bytes] = []
    for row_id, payload, _ in rows:
        clean = _masked(payload, secrets)
        if clean is None:
            unreadable.append(row_id)
        else:
            payloads.append(clean)
    if unreadable:
        return [], b"", unreadable
    head, tail = _envelope()
    parts = [head]
    total = len(head) + len(tail)
    for payload in payloads:
        if len(parts) > 1:
            if total + len(payload) + 1 > max_bytes:
                break
            parts.append(b",")
            total += 1
        parts.append(payload)
        total += len(payload)
    count = len(parts) // 2
    parts.append(tail)
    # One join, one copy: a batch of large polls is megabytes.
    return [row.id for row in rows[:count]], b"".join(parts), []


def _masked(payload: bytes, secrets: Sequence[str]) -> bytes | None:
    """The payload with any secret masked (None if it holds one but cannot be read)."""
    text = payload.decode("utf-8", "surrogateescape")
    if redact(text, secrets) == text:
        return payload
    # An older agent queued errors as libraries worded them, a quoted token included: mask
    # them on the way out, or the collector's database keeps the token for good.
    try:
        measurement = _measurement.validate_json(payload)
    except ValueError:
        return None
    return scrub(measurement, secrets).model_dump_json().encode()


def _envelope() -> tuple[bytes, bytes]:
    """A batch's JSON before and after its measurements."""
    batch = {
        "wire_version": WIRE_VERSION,
        "agent_version": __version__,
        "sent_at": datetime.now(UTC).isoformat(),
    }
    head = json.dumps(batch, separators=(",", ":"))[:-1] + ',"measurements":['
    return head.encode(), b"]}"


async def post_batch(
    client: httpx.AsyncClient, batch: Batch, *, secrets: Sequence[str] = ()
) -> Receipt:
    """Post one batch as it is (no limits learned, nothing dead-lettered)."""
    return await _post(client, batch.model_dump_json().encode(), None, secrets)


async def _post(
    client: httpx.AsyncClient, body: bytes, outbox: Outbox | None, secrets: Sequence[str]
) -> Receipt:
    headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
    try:
        response = await client.post("/api/v1/results", content=_chunks(body), headers=headers)
    except httpx.TimeoutException as exc:
        timeout = f" within {client.timeout.read:g} s" if client.timeout.read else ""
        reason = f"the collector did not answer{timeout}: {describe(exc, secrets)}"
        raise CollectorUnavailable(_one_line(reason)) from exc
    except httpx.RemoteProtocolError as exc:
        reason = f"the collector's answer broke off: {describe(exc, secrets)}"
        raise CollectorUnavailable(_one_line(reason)) from exc
    except httpx.HTTPError as exc:
        # h11 quotes a refused header whole ("Bearer <token> "), so never the raw exception.
        reason = f"cannot reach the collector: {describe(exc, secrets)}"
        raise CollectorUnavailable(_one_line(reason)) from exc
    max_bytes = _advertised_limit(response)
    if outbox is not None and max_bytes is not None and max_bytes != outbox.body_limit:
        outbox.body_limit = max_bytes
    status = response.status_code
    if status >= 500 or status == 429:
        wait = retry_after_s(response.headers.get("Retry-After"))
        later = "" if wait is None else f"; retry after {wait:.0f} s"
        raise CollectorUnavailable(f"collector answered HTTP {status}{later}", retry_after_s=wait)
    if status >= 400:
        # A proxy in between may echo the request, headers and all.
        body_json = _json(response)
        detail = redact(_detail(response, body_json), secrets)
        if status == 413:
            raise _TooLarge(detail, max_bytes)
        problems = _measurement_problems(body_json) if status == 422 else {}
        if problems:
            redacted = {i: [redact(p, secrets) for p in ps] for i, ps in problems.items()}
            raise _Refused(detail, redacted)
        if status == 401:
            raise TokenRefused(status, _one_line(detail))
        raise CollectorRejected(status, _one_line(detail))
    try:
        return Receipt.model_validate_json(response.content)
    except ValidationError as exc:
        # One line: which fields, not pydantic's block with the input repeated.
        wrong = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:3]
        )
        reason = redact(f"HTTP {status}, {len(response.content)} bytes: {wrong}", secrets)
        raise CollectorUnavailable(
            _one_line(f"collector sent an unreadable receipt: {reason}")
        ) from exc


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    """The body in pieces, with its Content-Length (so not chunked on the wire). httpx keeps a
    request alive in a reference cycle until the garbage collector's next full pass, bytes
    content and all: a drain held four multi-megabyte bodies at once. Streamed, the request
    lets go of the body once it is sent, and h11 copies a piece at a time, not the whole."""
    for start in range(0, len(body), _PIECE_BYTES):
        yield body[start : start + _PIECE_BYTES]


def retry_after_s(value: str | None, *, now: datetime | None = None) -> float | None:
    """A Retry-After value (delay-seconds or an HTTP date) as seconds from `now`, at most
    MAX_RETRY_AFTER_S; None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(int(value))
    else:
        try:
            at = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        seconds = (at - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def _advertised_limit(response: httpx.Response) -> int | None:
    value = response.headers.get(MAX_BODY_HEADER, "").strip()
    if not value.isdigit():
        return None
    return min(max(int(value), MIN_BODY_BYTES), MAX_BODY_BYTES)


def _one_line(text: str, limit: int = 300) -> str:
    """An error message as one line of at most `limit` characters (logs and the CLI print it)."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _detail(response: httpx.Response, body: Any) -> str:
    # Some proxies answer with JSON that is not our {"detail": ...} object.
    return str(body.get("detail", body)) if isinstance(body, dict) else response.text[:200]


def _measurement_problems(body: Any) -> dict[int, list[str]]:
    """The collector's 422 `errors` that name a measurement, by its index in the batch."""
    errors = body.get("errors") if isinstance(body, dict) else None
    problems: dict[int, list[str]] = {}
    for error in errors if isinstance(errors, list) else ():
        loc = error.get("loc") if isinstance(error, dict) else None
        if not (isinstance(loc, list) and len(loc) >= 2 and loc[0] == "measurements"):
            return {}  # something else is wrong too (the envelope): refuse nothing for it
        if not str(loc[1]).isdigit():
            return {}
        where = ".".join(str(part) for part in loc[2:]) or "measurement"
        problems.setdefault(int(loc[1]), []).append(f"{where}: {error.get('msg', '')}")
    return problems
