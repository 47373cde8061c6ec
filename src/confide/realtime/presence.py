"""Presence across nodes (ADR 0005): which operators have a console open and which visitors a
widget open, anywhere in the cluster.

Each node counts its own live sockets in memory and writes them to the ``presence`` table as
heartbeats with a time-to-live, in one batched statement every ``presence_heartbeat_s``. A row not
refreshed within ``presence_ttl_s`` is a socket that is gone, whether its tab closed or its node
crashed, so nothing a node keeps in memory can leave a ghost "online" operator for longer than
the TTL. A clean shutdown deletes the node's rows at once.

The socket handlers call only ``operator_connected`` / ``operator_disconnected`` and
``visitor_connected`` / ``visitor_disconnected``.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import structlog

from confide.core import crypto
from confide.core.runtime import Runtime
from confide.routing import service as routing
from confide.users import presence as user_presence

log = structlog.get_logger(__name__)


class Presence:
    def __init__(self, rt: Runtime, node_id: str | None = None) -> None:
        self.rt = rt
        self.node_id = node_id or crypto.new_id()
        self.operators: Counter[str] = Counter()  # operator id -> live console sockets on this node
        self.visitors: Counter[str] = Counter()  # conversation id -> live widget sockets on this node
        self._due: set[str] = set()  # visitors whose first heartbeat is to be written
        self._due_written: asyncio.Future[None] | None = None  # resolved once those are committed
        self._writer: asyncio.Task[None] | None = None  # exists only while first heartbeats are due

    @property
    def _ttl_s(self) -> float:
        return self.rt.settings.presence_ttl_s

    # -------------------------------------------------------------- the sockets' calls
    async def operator_connected(self, operator_id: str) -> None:
        """A console socket is open: the operator is present now (not at the next tick), and if their
        chosen status is online, chats waiting for them are offered at once."""
        self.operators[operator_id] += 1
        if self.operators[operator_id] == 1:
            rt = self.rt
            async with rt.db.unit_of_work() as uow:
                await user_presence.beat(uow, self.node_id, operators=[operator_id], ttl_s=self._ttl_s)
                await routing.operator_arrived(rt, uow, operator_id)

    def operator_disconnected(self, operator_id: str) -> None:
        """The heartbeat stops being refreshed; it lapses after the TTL (a reload in between keeps
        the operator present without a flicker)."""
        self._drop(self.operators, operator_id)

    async def visitor_connected(self, conversation_id: str) -> None:
        """Returns once the visitor's heartbeat is committed. Sockets opening together share one
        write (group commit): each waits for the batch it joined, not for a write of its own."""
        self.visitors[conversation_id] += 1
        if self.visitors[conversation_id] == 1:
            self._due.add(conversation_id)
            written = self._due_written
            if written is None:
                written = self._due_written = asyncio.get_running_loop().create_future()
            if self._writer is None:
                self._writer = asyncio.get_running_loop().create_task(self._write_due())
            await asyncio.shield(written)

    async def _write_due(self) -> None:
        """Write the first heartbeats of the visitors waiting for one, a batch at a time, until none
        is left (a visitor arriving during a write joins the next batch)."""
        try:
            while self._due:
                batch, written = self._due, self._due_written
                self._due, self._due_written = set(), None
                assert written is not None
                try:
                    async with self.rt.db.unit_of_work() as uow:
                        await user_presence.beat(uow, self.node_id, visitors=sorted(batch), ttl_s=self._ttl_s)
                except Exception as exc:
                    written.set_exception(exc)
                    written.exception()  # retrieved: every waiter may have gone meanwhile
                else:
                    written.set_result(None)
        finally:
            self._writer = None

    def visitor_disconnected(self, conversation_id: str) -> None:
        self._drop(self.visitors, conversation_id)

    @staticmethod
    def _drop(counter: Counter[str], key: str) -> None:
        counter[key] -= 1
        if counter[key] <= 0:
            del counter[key]

    # -------------------------------------------------------------- heartbeats
    async def tick(self) -> None:
        """One statement: every live socket of this node, its expiry pushed forward."""
        if not self.operators and not self.visitors:
            return
        async with self.rt.db.unit_of_work() as uow:
            await user_presence.beat(
                uow, self.node_id, operators=list(self.operators), visitors=list(self.visitors), ttl_s=self._ttl_s
            )

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.rt.settings.presence_heartbeat_s)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("presence_heartbeat_failed", node_id=self.node_id)

    async def stop(self) -> None:
        """Shutting down cleanly: this node's sockets are gone now, not after the TTL."""
        self.operators.clear()
        self.visitors.clear()
        try:
            async with self.rt.db.unit_of_work() as uow:
                await user_presence.forget_node(uow, self.node_id)
        except Exception:
            log.exception("presence_stop_failed", node_id=self.node_id)
