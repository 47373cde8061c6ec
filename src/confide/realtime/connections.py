"""Live connections of this node: what a visitor or an operator socket keeps between frames, the
events it forwards, its resume on connect, and the sends that do not take a unit of work
(messages go to the batched writer, typing straight to the broker).

A connection keeps plain ids and small values only: no ORM object, no decoded JSON, no session
outlives the unit of work that loaded it, so an idle socket costs its buffers and little more.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from confide.auth.actors import OperatorActor, VisitorActor
from confide.chats import service as chats
from confide.chats.schemas import Draft
from confide.core.db import UnitOfWork
from confide.core.errors import DomainError, NotFound, RateLimited
from confide.core.runtime import Runtime
from confide.permissions.access import access_conversation_by_id
from confide.realtime.hub import Hub
from confide.realtime.limits import Limits
from confide.realtime.outbox import Outbox
from confide.realtime.wire import REVOKED, encode
from confide.realtime.writer import MessageWriter, Result, acknowledge
from confide.routing import service as routing
from confide.routing.service import dept_topic
from confide.users import service as users
from confide.users.service import operator_topic
from confide.workspaces import service as workspaces

MAX_IN_FLIGHT = 64  # messages of one socket stored but not yet acknowledged
_VISITOR_FORWARD = {"message", "status", "typing", "read"}

Closer = Callable[[int], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Node:
    """What every connection of this process shares."""

    rt: Runtime
    hub: Hub
    writer: MessageWriter
    limits: Limits


def _enqueue(node: Node, outbox: Outbox, pending: set[asyncio.Future[Result]], draft: Draft) -> None:
    if len(pending) >= MAX_IN_FLIGHT:
        raise RateLimited("Too many messages waiting to be stored; slow down.")
    future = node.writer.enqueue(draft)
    pending.add(future)
    future.add_done_callback(functools.partial(acknowledge, outbox, pending, draft.client_id))


# ---------------------------------------------------------------- visitor
class VisitorConnection:
    __slots__ = ("actor", "conversation_id", "node", "outbox", "pending")

    def __init__(self, node: Node, actor: VisitorActor, conversation_id: str, outbox: Outbox) -> None:
        self.node = node
        self.actor = actor
        self.conversation_id = conversation_id
        self.outbox = outbox
        self.pending: set[asyncio.Future[Result]] | None = None  # created with the first message

    @property
    def rt(self) -> Runtime:
        return self.node.rt

    @property
    def topic(self) -> str:
        return chats.conv_topic(self.conversation_id)

    def log_id(self) -> dict[str, str]:
        return {"visitor_id": self.actor.visitor_id, "conversation_id": self.conversation_id}

    def deliver(self, topic: str, payload: dict[str, Any], text: str) -> None:
        kind = payload.get("type")
        if kind not in _VISITOR_FORWARD:
            return
        if kind in ("typing", "read") and payload.get("from") != "operator":
            return
        self.outbox.put(text)

    def say(self, client_id: str, text: str) -> None:
        """Hand a message to the writer; the ack (or the reason) follows its commit."""
        if not self.node.limits.visitor_messages.take(self.actor.visitor_id):
            raise RateLimited("You are sending messages too fast; slow down.")
        if self.pending is None:
            self.pending = set()
        draft = Draft(
            conversation_id=self.conversation_id,
            sender="visitor",
            sender_id=self.actor.visitor_id,
            sender_name=None,
            client_id=client_id,
            text=text,
        )
        _enqueue(self.node, self.outbox, self.pending, draft)

    async def typing(self, on: bool) -> None:
        if not self.node.limits.visitor_typing.take(self.actor.visitor_id):
            raise RateLimited("You are sending typing notices too fast; slow down.")
        await self.node.rt.broker.publish(
            self.topic, {"type": "typing", "conversation_id": self.conversation_id, "from": "visitor", "on": on}
        )


async def authorize_visitor(uow: UnitOfWork, actor: VisitorActor, conversation_id: str) -> None:
    """Only the visitor's own conversation: checked before listening to it, so nothing of another leaks."""
    await access_conversation_by_id(uow.session, actor, conversation_id)


async def resume_visitor(rt: Runtime, uow: UnitOfWork, actor: VisitorActor, conversation_id: str, last_seq: int) -> str:
    """The ``welcome`` (every message after ``last_seq``) or, when ``last_seq`` is ahead of the
    server, the ``resync`` (the whole history), encoded. Read after subscribing (clients de-duplicate),
    in a unit of its own so that its snapshot starts after the subscription: nothing committed in
    between is missed."""
    conv = await access_conversation_by_id(uow.session, actor, conversation_id)
    view = await chats.visitor_view(uow, conv)
    resync = last_seq > conv.seq
    messages = await chats.messages_after(rt, uow, conv, 0 if resync else last_seq)
    return encode(
        {"type": "resync" if resync else "welcome", "conversation": view, "messages": messages, "seq": view["seq"]}
    )


# ---------------------------------------------------------------- operator
class OperatorConnection:
    """The console: keeps its operator's chats and departments current from events, so a transfer,
    role change, logout or disabling takes effect on open sockets at once."""

    def __init__(self, node: Node, actor: OperatorActor, outbox: Outbox, close: Closer) -> None:
        self.node = node
        self.actor = actor
        self.outbox = outbox
        self._close = close
        self.chats: set[str] = set()
        self.dept_topics: set[str] = set()
        self.pending: set[asyncio.Future[Result]] = set()
        self._queue_refresh: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def rt(self) -> Runtime:
        return self.node.rt

    def log_id(self) -> dict[str, str]:
        return {"operator_id": self.actor.operator_id}

    # -------------------------------------------------------------- events from the hub
    def deliver(self, topic: str, payload: dict[str, Any], text: str) -> None:
        kind = payload.get("type")
        if topic.startswith("conv:"):
            if topic[5:] not in self.chats:
                return
            if kind in ("message", "chat") or (kind in ("typing", "read") and payload.get("from") == "visitor"):
                self.outbox.put(text)
        elif topic.startswith("dept:"):
            if kind == "queue_changed":
                self.refresh_queue()
        elif kind == "chat":
            conv = payload["conversation"]
            if conv.get("operator_id") == self.actor.operator_id:
                self.watch(conv["id"])
            self.outbox.put(text)
        elif kind == "chat_removed":
            self.unwatch(payload["conversation_id"])
            self.outbox.put(text)
        elif kind in ("offer", "offer_withdrawn", "status"):
            self.outbox.put(text)
        elif kind == "revoke":
            if payload.get("session_id") in (None, self.actor.session_id):
                self._spawn(self._close(REVOKED))
        elif kind == "refresh":
            self._spawn(self.reload())

    def watch(self, conversation_id: str) -> None:
        if conversation_id not in self.chats:
            self.chats.add(conversation_id)
            self.node.hub.subscribe_soon(self, chats.conv_topic(conversation_id))

    def unwatch(self, conversation_id: str) -> None:
        if conversation_id in self.chats:
            self.chats.discard(conversation_id)
            self.node.hub.unsubscribe_soon(self, chats.conv_topic(conversation_id))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def refresh_queue(self) -> None:
        if self._queue_refresh is None:
            self._queue_refresh = asyncio.get_running_loop().create_task(self._send_queue())

    async def _send_queue(self) -> None:
        await asyncio.sleep(0.05)  # coalesce bursts of queue changes
        self._queue_refresh = None
        rt = self.node.rt
        async with rt.db.unit_of_work(readonly=True) as uow:
            queue = await routing.queue_for(rt, uow, self.actor)
        self.outbox.put(encode({"type": "queue", "queue": queue}))

    def _set_departments(self, departments: list[dict[str, Any]]) -> None:
        wanted = {dept_topic(d["id"]) for d in departments}
        for topic in self.dept_topics - wanted:
            self.node.hub.unsubscribe_soon(self, topic)
        for topic in wanted - self.dept_topics:
            self.node.hub.subscribe_soon(self, topic)
        self.dept_topics = wanted

    async def open(self) -> None:
        """Listen to my topics, then send the ``welcome`` snapshot."""
        rt = self.node.rt
        self.node.hub.subscribe_soon(self, operator_topic(self.actor.operator_id))
        async with rt.db.unit_of_work(readonly=True) as uow:
            welcome = await routing.console_snapshot(rt, uow, self.actor)
        self._set_departments(welcome["departments"])
        for chat in welcome["chats"]:
            self.watch(chat["id"])
        self.outbox.put(encode({"type": "welcome", **welcome}))

    async def reload(self) -> None:
        """Role or departments changed: reload who this operator is, re-scope everything at once."""
        rt = self.node.rt
        try:
            async with rt.db.unit_of_work(readonly=True) as uow:
                self.actor = await users.actor_for(uow, self.actor.operator_id, session_id=self.actor.session_id)
                departments = [
                    workspaces.department_view(d) for d in await workspaces.list_departments(uow, self.actor)
                ]
        except DomainError:
            await self._close(REVOKED)
            return
        self._set_departments(departments)
        self.outbox.put(encode({"type": "departments", "departments": departments}))
        self.refresh_queue()

    # -------------------------------------------------------------- sends without a unit of work
    def say(self, conversation_id: str, client_id: str, text: str) -> None:
        if not self.node.limits.operator_messages.take(self.actor.operator_id):
            raise RateLimited("You are sending messages too fast; slow down.")
        if conversation_id not in self.chats:
            raise NotFound("conversation not found")
        draft = Draft(
            conversation_id=conversation_id,
            sender="operator",
            sender_id=self.actor.operator_id,
            sender_name=self.actor.name,
            client_id=client_id,
            text=text,
        )
        _enqueue(self.node, self.outbox, self.pending, draft)

    async def typing(self, conversation_id: str, on: bool) -> None:
        if conversation_id not in self.chats:
            raise NotFound("conversation not found")
        if not self.node.limits.operator_typing.take(self.actor.operator_id):
            raise RateLimited("You are sending typing notices too fast; slow down.")
        await self.node.rt.broker.publish(
            chats.conv_topic(conversation_id),
            {"type": "typing", "conversation_id": conversation_id, "from": "operator", "on": on},
        )

    async def accept(self, uow: UnitOfWork, conversation_id: str) -> None:
        """Accept a chat; once committed, listen to it at once (before its ``chat`` event arrives)."""
        conv = await routing.accept(self.node.rt, uow, self.actor, conversation_id)
        accepted = conv.id
        uow.after_commit(lambda: self.watch(accepted))

    def shutdown(self) -> None:
        hub = self.node.hub
        for conv_id in list(self.chats):
            hub.unsubscribe_soon(self, chats.conv_topic(conv_id))
        for topic in self.dept_topics:
            hub.unsubscribe_soon(self, topic)
        hub.unsubscribe_soon(self, operator_topic(self.actor.operator_id))
        for task in self._tasks:
            task.cancel()
        if self._queue_refresh is not None:
            self._queue_refresh.cancel()
        self.outbox.shutdown()


async def operator_history(
    rt: Runtime, uow: UnitOfWork, actor: OperatorActor, conversation_id: str, after_seq: int
) -> str:
    """The ``history`` frame: messages after ``after_seq`` of a conversation the operator may see."""
    conv = await access_conversation_by_id(uow.session, actor, conversation_id)
    messages = await chats.messages_after(rt, uow, conv, after_seq)
    return encode({"type": "history", "conversation_id": conv.id, "messages": messages})
