"""Live connections of this node: what a visitor or an operator socket keeps between frames, the
events it forwards, its resume on connect, and the sends that do not take a unit of work
(messages go to the batched writer, typing straight to the broker).

A connection keeps plain ids and small values only: no ORM object, no decoded JSON, no session
outlives the unit of work that loaded it, so an idle socket costs its buffers and little more.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog

from confide.auth.actors import OperatorActor, VisitorActor
from confide.chats import service as chats
from confide.chats.schemas import Draft
from confide.core.db import UnitOfWork
from confide.core.errors import DomainError, NotFound, RateLimited
from confide.core.runtime import Runtime
from confide.permissions.access import access_conversation_by_id
from confide.realtime import events
from confide.realtime.events import (
    ChatAssigned,
    ChatChanged,
    ChatRemoved,
    ConversationErased,
    MessageStored,
    Offer,
    OfferWithdrawn,
    OperatorStatus,
    QueueChanged,
    QueueMoved,
    QueueSpot,
    ReadUpTo,
    Refresh,
    Revoke,
    Typing,
    VisitorStatus,
)
from confide.realtime.hub import Hub
from confide.realtime.limits import Limits
from confide.realtime.outbox import Outbox
from confide.realtime.wire import ERASED, REVOKED, encode, error_frame
from confide.realtime.writer import MessageWriter, Result, acknowledge
from confide.routing import service as routing
from confide.users import sessions as user_sessions
from confide.workspaces import service as workspaces

log = structlog.get_logger(__name__)
MAX_IN_FLIGHT = 64  # messages of one socket stored but not yet acknowledged
# A waiting visitor whose place in the queue moved re-reads its view after a random pause in this
# range: one read per socket for a burst of moves, and thousands of sockets not all at once.
QUEUE_REFRESH_S = (0.05, 0.5)

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
    """A widget socket. While its chat waits in a queue it also listens to the department's topic,
    so that one ``QueueMoved`` event tells every waiting visitor of it that the queue moved; only
    the sockets behind the chat that left re-read their view (``QUEUE_REFRESH_S``)."""

    __slots__ = ("_closing", "_refresh", "_statuses", "actor", "conversation_id", "node", "outbox", "pending", "queue")

    def __init__(self, node: Node, actor: VisitorActor, conversation_id: str, outbox: Outbox) -> None:
        self.node = node
        self.actor = actor
        self.conversation_id = conversation_id
        self.outbox = outbox
        self.pending: set[asyncio.Future[Result]] | None = None  # created with the first message
        self.queue: QueueSpot | None = None  # where the chat waits (its department topic is heard)
        self._refresh: asyncio.Task[None] | None = None  # exists only while a re-read is due
        self._statuses = 0  # status events delivered (a re-read racing one is read again)
        self._closing: asyncio.Task[None] | None = None  # the close after an erasure

    @property
    def rt(self) -> Runtime:
        return self.node.rt

    @property
    def topic(self) -> str:
        return events.conversation_topic(self.conversation_id)

    def log_id(self) -> dict[str, str]:
        return {"visitor_id": self.actor.visitor_id, "conversation_id": self.conversation_id}

    def deliver(self, event: events.Event, text: str) -> None:
        if isinstance(event, MessageStored):
            self.outbox.put(text)
        elif isinstance(event, VisitorStatus):
            if event.conversation_id == self.conversation_id:
                self._statuses += 1
                self.follow_queue(event.queue)
                self.outbox.put(text)
        elif isinstance(event, Typing):
            if event.sender == "operator":
                self.outbox.put(text)
        elif isinstance(event, ReadUpTo):
            if event.reader == "operator":
                self.outbox.put(text)
        elif isinstance(event, QueueMoved):
            spot = self.queue
            if spot is not None and event.department_id == spot.department_id and event.since <= spot.since:
                self._refresh_soon()
        elif (
            isinstance(event, ConversationErased)
            and event.conversation_id == self.conversation_id
            and self._closing is None
        ):
            self.outbox.put(error_frame("erased", "this visitor's data was erased"))
            self._closing = asyncio.get_running_loop().create_task(self.outbox.close(ERASED))

    def follow_queue(self, spot: QueueSpot | None) -> None:
        """Listen to the department's topic while the chat waits in its queue, and only then."""
        old = self.queue
        if old == spot:
            return
        hub = self.node.hub
        if old is not None and (spot is None or spot.department_id != old.department_id):
            hub.unsubscribe_soon(self, events.department_topic(old.department_id))
        if spot is not None and (old is None or spot.department_id != old.department_id):
            hub.subscribe_soon(self, events.department_topic(spot.department_id))
        self.queue = spot

    def _refresh_soon(self) -> None:
        if self._refresh is None:
            self._refresh = asyncio.get_running_loop().create_task(self._send_status())

    async def _send_status(self) -> None:
        """The queue moved ahead of this chat: its new view (position), read in a unit of its own,
        outside every write; a burst of moves is one read. A ``status`` event delivered while
        reading may be fresher than the read: then the view is read again rather than sent."""
        await asyncio.sleep(random.uniform(*QUEUE_REFRESH_S))  # noqa: S311 - spreading load, not a secret
        self._refresh = None  # a move from now on is read again
        seen = self._statuses
        try:
            rt = self.node.rt
            async with rt.db.unit_of_work(readonly=True) as uow:
                conv = await access_conversation_by_id(uow.session, self.actor, self.conversation_id)
                event = await chats.visitor_status(uow, conv)
        except DomainError:
            return  # the chat is gone: nothing to tell
        except Exception:
            log.warning("queue_position_not_read", conversation_id=self.conversation_id)
            return
        if self._statuses != seen:
            self._refresh_soon()
            return
        self.follow_queue(event.queue)
        self.outbox.put(encode(event.wire()))

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
        event = Typing(self.conversation_id, "visitor", on)
        await self.node.rt.broker.publish(event.topic, event.payload())

    async def listen(self, spot: QueueSpot | None) -> None:
        """Before the welcome is read: the conversation's topic, and its queue's while it waits."""
        hub = self.node.hub
        await hub.subscribe(self, self.topic)
        if spot is not None:
            await hub.subscribe(self, events.department_topic(spot.department_id))
            self.queue = spot

    async def shutdown(self) -> None:
        """The socket is gone: stop listening everywhere, drop a pending re-read."""
        hub = self.node.hub
        self.follow_queue(None)
        await hub.unsubscribe(self, self.topic)
        if self._refresh is not None:
            self._refresh.cancel()
            self._refresh = None


async def authorize_visitor(uow: UnitOfWork, actor: VisitorActor, conversation_id: str) -> QueueSpot | None:
    """Only the visitor's own conversation: checked before listening to it, so nothing of another
    leaks. Returns where the chat waits, if it does (its department's topic is heard too)."""
    return chats.queue_spot(await access_conversation_by_id(uow.session, actor, conversation_id))


async def resume_visitor(
    rt: Runtime, uow: UnitOfWork, actor: VisitorActor, conversation_id: str, last_seq: int
) -> tuple[str, QueueSpot | None]:
    """The ``welcome`` (every message after ``last_seq``) or, when ``last_seq`` is ahead of the
    server, the ``resync`` (the whole history), encoded, and where the chat waits (if it does).
    Read after subscribing (clients de-duplicate), in a unit of its own so that its snapshot starts
    after the subscription: nothing committed in between is missed."""
    conv = await access_conversation_by_id(uow.session, actor, conversation_id)
    status = await chats.visitor_status(uow, conv)
    view = status.conversation
    resync = last_seq > conv.seq
    messages = await chats.messages_after(rt, uow, conv, 0 if resync else last_seq)
    frame = {"type": "resync" if resync else "welcome", "conversation": view, "messages": messages, "seq": view["seq"]}
    return encode(frame), status.queue


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
    def deliver(self, event: events.Event, text: str) -> None:
        if isinstance(event, MessageStored | ChatChanged):
            if event.conversation_id in self.chats:
                self.outbox.put(text)
        elif isinstance(event, ConversationErased):
            if event.conversation_id in self.chats:
                self.unwatch(event.conversation_id)
                self.outbox.put(text)
        elif isinstance(event, Typing):
            if event.sender == "visitor" and event.conversation_id in self.chats:
                self.outbox.put(text)
        elif isinstance(event, ReadUpTo):
            if event.reader == "visitor" and event.conversation_id in self.chats:
                self.outbox.put(text)
        elif isinstance(event, QueueChanged | QueueMoved):
            self.refresh_queue()
        elif isinstance(event, ChatAssigned):
            if event.conversation.get("operator_id") == self.actor.operator_id:
                self.watch(event.conversation["id"])
            self.outbox.put(text)
        elif isinstance(event, ChatRemoved):
            self.unwatch(event.conversation_id)
            self.outbox.put(text)
        elif isinstance(event, Offer | OfferWithdrawn | OperatorStatus):
            self.outbox.put(text)
        elif isinstance(event, Revoke):
            if event.session_id in (None, self.actor.session_id):
                self._spawn(self._close(REVOKED))
        elif isinstance(event, Refresh):
            self._spawn(self.reload())

    def watch(self, conversation_id: str) -> None:
        if conversation_id not in self.chats:
            self.chats.add(conversation_id)
            self.node.hub.subscribe_soon(self, events.conversation_topic(conversation_id))

    def unwatch(self, conversation_id: str) -> None:
        if conversation_id in self.chats:
            self.chats.discard(conversation_id)
            self.node.hub.unsubscribe_soon(self, events.conversation_topic(conversation_id))

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
        wanted = {events.department_topic(d["id"]) for d in departments}
        for topic in self.dept_topics - wanted:
            self.node.hub.unsubscribe_soon(self, topic)
        for topic in wanted - self.dept_topics:
            self.node.hub.subscribe_soon(self, topic)
        self.dept_topics = wanted

    async def open(self) -> None:
        """Listen to my topics, then send the ``welcome`` snapshot."""
        rt = self.node.rt
        self.node.hub.subscribe_soon(self, events.operator_topic(self.actor.operator_id))
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
                self.actor = await user_sessions.actor_for(
                    uow, self.actor.operator_id, session_id=self.actor.session_id
                )
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
        event = Typing(conversation_id, "operator", on)
        await self.node.rt.broker.publish(event.topic, event.payload())

    async def accept(self, uow: UnitOfWork, conversation_id: str) -> None:
        """Accept a chat; once committed, listen to it at once (before its ``chat`` event arrives)."""
        conv = await routing.accept(self.node.rt, uow, self.actor, conversation_id)
        accepted = conv.id
        uow.after_commit(lambda: self.watch(accepted))

    def shutdown(self) -> None:
        hub = self.node.hub
        for conv_id in list(self.chats):
            hub.unsubscribe_soon(self, events.conversation_topic(conv_id))
        for topic in self.dept_topics:
            hub.unsubscribe_soon(self, topic)
        hub.unsubscribe_soon(self, events.operator_topic(self.actor.operator_id))
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
