"""Result posts waiting for the store are written together: group commit.

Each post's body is read, then queued here, then the request waits for its turn of the store
gate. Whoever gets a turn takes every post that is ready at that moment (up to a limit), parses
them and stores them in one transaction, and hands each its own answer; a post whose batch was
stored in an earlier group finds its answer ready and gives its turn back at once. With a few
agents posting this is one post per transaction, as before; under a burst the commit and the
per-statement setup are shared, so throughput holds up with load instead of falling.

A post whose client has gone by the time its group is formed is skipped: the agent will send the
same ids again, which is harmless.

SQLite has one writer at a time, and a second writer waits in SQLite's busy handler, which
sleeps in steps of milliseconds. So on SQLite (`serialize_writes`) groups take a lock here to
write, but parse before it: one group's batch is parsed while another's rows are being written
(the sqlite3 module lets go of the GIL inside SQLite), about a tenth more posts a second.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

from pydantic import ValidationError
from sqlalchemy.orm import Session

from agent.wire import Batch, Receipt
from collector.api.gate import ClientGone, StoreGate
from collector.store.ingest import Delivery, add_batches

# One transaction holds at most this many posts and body bytes: enough to share the commit
# widely, little enough that each transaction stays short.
MAX_GROUP_POSTS = 32
MAX_GROUP_BYTES = 2_000_000

Outcome = Receipt | ValidationError


@dataclass(eq=False)
class Post:
    # None: a classroom test, taken in a browser with the school's classroom code.
    agent_id: int | None
    school_id: int
    body: bytes
    gone: Callable[[], Awaitable[bool]]
    # None: the client had gone, nothing was stored.
    answer: asyncio.Future[Outcome | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class GroupCommit:
    """Stores result posts through `gate`, grouping those that wait at the same time."""

    def __init__(self, gate: StoreGate, *, serialize_writes: bool = False) -> None:
        self._gate = gate
        self._ready: deque[Post] = deque()
        self._write_lock: AbstractContextManager[object] = (
            threading.Lock() if serialize_writes else nullcontext()
        )

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
            group = await self._take_group()
            if not group:
                # Ours is in a group another turn is storing right now.
                await asyncio.shield(post.answer)
                return
            # Shielded: should this request be cancelled, the others' answers still come.
            await asyncio.shield(asyncio.ensure_future(self._store_group(group)))

    async def _take_group(self) -> list[Post]:
        group: list[Post] = []
        size = 0
        while self._ready and len(group) < MAX_GROUP_POSTS:
            candidate = self._ready[0]
            if group and size + len(candidate.body) > MAX_GROUP_BYTES:
                break
            self._ready.popleft()
            if await candidate.gone():
                candidate.answer.set_result(None)
                continue
            group.append(candidate)
            size += len(candidate.body)
        return group

    async def _store_group(self, group: list[Post]) -> None:
        try:
            outcomes = await self._gate.in_thread(
                lambda session: _parse_and_store(session, group, self._write_lock)
            )
        except BaseException as exc:
            for member in group:
                member.answer.set_exception(exc)
            raise
        for member, outcome in zip(group, outcomes, strict=True):
            member.answer.set_result(outcome)


def _parse_and_store(
    session: Session, group: list[Post], write_lock: AbstractContextManager[object]
) -> list[Outcome]:
    # Parsed here, on the turn: a burst of a thousand bodies parsed at once would each get a
    # thousandth of the CPU, and none would be stored until all were parsed.
    parsed: list[Outcome | Batch] = []
    for post in group:
        try:
            parsed.append(Batch.model_validate_json(post.body))
        except ValidationError as exc:
            parsed.append(exc)
    deliveries = [
        Delivery(post.agent_id, post.school_id, item)
        for post, item in zip(group, parsed, strict=True)
        if isinstance(item, Batch)
    ]
    with write_lock:
        receipts = iter(add_batches(session=session, deliveries=deliveries))
    return [next(receipts) if isinstance(item, Batch) else item for item in parsed]
