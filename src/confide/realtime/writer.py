"""The message write path: one writer commits every queued message in one transaction, then
acknowledges each. Nothing is acknowledged before it is committed; the event loop never waits on
a commit for anyone but the senders of that batch.

Two stages: the writer stores and commits batch N+1 while the releaser fans batch N out and
acknowledges it, so the database and the event loop work at the same time instead of in turn.
Batches are released in commit order.

On a SQLite file the batch goes through the raw writer connection (``Database.raw_transaction``,
``chats.messages.store_messages_sqlite``): the same transaction per batch and the same ``synchronous``
setting, without SQLAlchemy's and aiosqlite's cost per statement. PostgreSQL uses the unit of work.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import structlog

from confide.chats import messages as chats
from confide.chats.schemas import Draft
from confide.core.db import AfterCommitHooks
from confide.core.errors import DomainError
from confide.core.runtime import Runtime
from confide.realtime.outbox import Outbox

log = structlog.get_logger(__name__)

Result = dict[str, Any] | DomainError
MAX_BATCH = 500


class MessageWriter:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._queue: asyncio.Queue[tuple[Draft, asyncio.Future[Result]]] = asyncio.Queue()
        self._indexed = chats.IndexedTerms()
        self._committed: asyncio.Queue[tuple[AfterCommitHooks, list[asyncio.Future[Result]], list[Result]]] = (
            asyncio.Queue()
        )

    def start(self) -> list[asyncio.Task[None]]:
        return [
            asyncio.create_task(self._run(), name="message-writer"),
            asyncio.create_task(self._release(), name="message-releaser"),
        ]

    def enqueue(self, draft: Draft) -> asyncio.Future[Result]:
        """Queue a message; the future resolves after the batch holding it has committed."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((draft, future))
        return future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._commit(batch)

    async def _release(self) -> None:
        while True:
            unit, futures, results = await self._committed.get()
            await unit.release_events()
            for future, result in zip(futures, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def _commit(self, batch: list[tuple[Draft, asyncio.Future[Result]]]) -> None:
        rt, drafts = self._rt, [draft for draft, _ in batch]
        unit: AfterCommitHooks
        try:
            if rt.db.has_raw_transactions:
                async with rt.db.raw_transaction() as tx:
                    results = await chats.store_messages_sqlite(rt, tx, drafts, self._indexed)
                unit = tx
            else:
                async with rt.db.unit_of_work(release_events=False) as uow:
                    results = await chats.store_messages(rt, uow, drafts, self._indexed)
                unit = uow
        except Exception:
            if len(batch) > 1:  # isolate the failing message; the others still go through
                for item in batch:
                    await self._commit([item])
                return
            log.exception("message_store_failed", conversation_id=batch[0][0].conversation_id)
            future = batch[0][1]
            if not future.done():
                future.set_exception(RuntimeError("message could not be stored"))
            return
        self._committed.put_nowait((unit, [future for _, future in batch], results))


def acknowledge(
    outbox: Outbox, pending: set[asyncio.Future[Result]], client_id: str, future: asyncio.Future[Result]
) -> None:
    """Answer the sender once its message is committed: an ``ack``, or the reason it was refused."""
    pending.discard(future)
    if future.cancelled():
        return
    error = future.exception()
    if error is not None:
        outbox.put(_error(client_id, "internal", "the message could not be stored; send it again"))
        return
    result = future.result()
    if isinstance(result, DomainError):
        outbox.put(_error(client_id, result.code, result.message))
    else:
        outbox.put(
            json.dumps(
                {"type": "ack", "client_id": client_id, "message": result}, separators=(",", ":"), ensure_ascii=False
            )
        )


def _error(client_id: str, code: str, message: str) -> str:
    return json.dumps({"type": "error", "code": code, "message": message, "ref": client_id}, separators=(",", ":"))
