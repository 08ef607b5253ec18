"""Result posts waiting for the store are written together: group commit.

Each post's body is read, then queued here, then the request waits for its turn of the store
gate. Whoever gets a turn takes every post that is ready at that moment (up to a limit), parses
them and stores them in one transaction, and hands each its own answer; a post whose batch was
stored in an earlier group finds its answer ready and gives its turn back at once. With a few
agents posting this is one post per transaction, as before; under a burst the commit and the
per-statement setup are shared, so throughput holds up with load instead of falling.

A post whose client has gone by the time its group is formed is skipped: the agent will send the
same ids again, which is harmless.

Where a group is parsed and stored is the `GroupStore`'s business: in this process's store
threads (`ThreadStore`), or in helper processes (`collector.api.store_processes`), which parse
on other cores than the one serving HTTP.

SQLite has one writer at a time, and a second writer waits in SQLite's busy handler, which
sleeps in steps of milliseconds. So on SQLite groups take a lock to write, but parse before it:
one group's batch is parsed while another's rows are being written, about a tenth more posts a
second.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol

from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from agent.wire import Batch, Receipt
from collector.api.errors import batch_problem, store_restarted
from collector.api.gate import ClientGone, StoreGate
from collector.store.ingest import Delivery, add_batches

# One transaction holds at most this many posts and body bytes: enough to share the commit
# widely, little enough that each transaction stays short.
MAX_GROUP_POSTS = 32
MAX_GROUP_BYTES = 2_000_000


class StoreRestarted(Exception):
    """The store lost this group (a store process died): nothing of it was committed, or all
    of it was; either way the sender is to send the same batch again (answered 503)."""


@dataclass(frozen=True)
class Refusal:
    """A body that is not a valid batch: the HTTP answer, worked out where it was parsed."""

    status_code: int
    content: dict[str, Any]


Outcome = Receipt | Refusal


@dataclass(frozen=True)
class Parcel:
    """What storing a post needs: plain data, so that another process can store it."""

    # None: a classroom test, taken in a browser with the school's classroom code.
    agent_id: int | None
    school_id: int
    body: bytes


class GroupStore(Protocol):
    """Parses and stores one group of posts, one outcome each, in order."""

    # Groups this store works on at once (None: as many as the gate lets through).
    concurrency: int | None

    async def store(self, parcels: Sequence[Parcel]) -> list[Outcome]: ...

    def close(self) -> None:
        """Let the groups in hand finish; called once, at shutdown."""


class ThreadStore:
    """Groups parsed and stored in this process, on the gate's worker threads."""

    concurrency: int | None = None

    def __init__(self, gate: StoreGate, *, serialize_writes: bool = False) -> None:
        self._gate = gate
        self._write_lock: AbstractContextManager[object] = (
            threading.Lock() if serialize_writes else nullcontext()
        )

    async def store(self, parcels: Sequence[Parcel]) -> list[Outcome]:
        return await self._gate.in_thread(
            lambda session: parse_and_store(session, parcels, self._write_lock)
        )

    def close(self) -> None:
        pass  # the gate's threads finish their turns before the app shuts down


@dataclass(eq=False)
class Post:
    parcel: Parcel
    gone: Callable[[], Awaitable[bool]]
    # None: the client had gone, nothing was stored.
    answer: asyncio.Future[Outcome | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class GroupCommit:
    """Stores result posts through `gate` and `store`, grouping those that wait at the same
    time."""

    def __init__(self, gate: StoreGate, store: GroupStore) -> None:
        self._gate = gate
        self._store = store
        self._ready: deque[Post] = deque()
        # Groups formed at once: no more than the store works on, so that posts arriving
        # meanwhile join the next group instead of waiting in a queue of small ones.
        self._slots = (
            asyncio.Semaphore(store.concurrency) if store.concurrency is not None else None
        )

    async def answer(self, post: Post) -> Response:
        """Store the post and answer it: its receipt (`rejected` only when there are some, so
        that agents from before it read the rest), its 400/422, 503 if the store lost it, or
        499 if its client left (nobody to answer; the same ids come again, harmlessly)."""
        try:
            outcome = await self.store(post)
        except ClientGone:
            return Response(status_code=499)
        except StoreRestarted:
            return store_restarted()
        if isinstance(outcome, Refusal):
            return JSONResponse(outcome.content, status_code=outcome.status_code)
        return JSONResponse(outcome.model_dump(mode="json", exclude_defaults=True))

    async def store(self, post: Post) -> Outcome:
        """The post's receipt or validation error; raises ClientGone if its client left."""
        self._ready.append(post)
        try:
            await self._gate.run_turn(lambda: self._serve_until_answered(post))
        finally:
            if post in self._ready:  # cancelled while it waited
                self._ready.remove(post)
        outcome = post.answer.result()
        if outcome is None:
            raise ClientGone
        return outcome

    async def _serve_until_answered(self, post: Post) -> None:
        while not post.answer.done():
            async with self._slots or nullcontext():
                group = [] if post.answer.done() else await self._take_group()
                if group:
                    # Shielded: should this request be cancelled, the others' answers still
                    # come.
                    await asyncio.shield(asyncio.ensure_future(self._store_group(group)))
                    continue
            if not post.answer.done():
                # Ours is in a group another turn is storing right now.
                await asyncio.shield(post.answer)
            return

    async def _take_group(self) -> list[Post]:
        group: list[Post] = []
        size = 0
        while self._ready and len(group) < MAX_GROUP_POSTS:
            candidate = self._ready[0]
            if group and size + len(candidate.parcel.body) > MAX_GROUP_BYTES:
                break
            self._ready.popleft()
            if await candidate.gone():
                candidate.answer.set_result(None)
                continue
            group.append(candidate)
            size += len(candidate.parcel.body)
        return group

    async def _store_group(self, group: list[Post]) -> None:
        try:
            outcomes = await self._store.store([member.parcel for member in group])
        except BaseException as exc:
            for member in group:
                member.answer.set_exception(exc)
            raise
        for member, outcome in zip(group, outcomes, strict=True):
            member.answer.set_result(outcome)


def parse_and_store(
    session: Session, parcels: Sequence[Parcel], write_lock: AbstractContextManager[object]
) -> list[Outcome]:
    """Parse each parcel's body and store the valid batches in one transaction (`write_lock`
    held while writing); an outcome for each, in order."""
    # Parsed here, on the turn: a burst of a thousand bodies parsed at once would each get a
    # thousandth of the CPU, and none would be stored until all were parsed.
    parsed: list[Refusal | Batch] = []
    for parcel in parcels:
        try:
            parsed.append(Batch.model_validate_json(parcel.body))
        except ValidationError as exc:
            parsed.append(Refusal(*batch_problem(exc)))
    deliveries = [
        Delivery(parcel.agent_id, parcel.school_id, item)
        for parcel, item in zip(parcels, parsed, strict=True)
        if isinstance(item, Batch)
    ]
    with write_lock:
        receipts = iter(add_batches(session=session, deliveries=deliveries))
    return [next(receipts) if isinstance(item, Batch) else item for item in parsed]
