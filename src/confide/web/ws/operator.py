"""The operator console socket: session cookie, same-origin check, authorisation on every frame.

The connection keeps the operator's current chats and departments up to date from events, so a
transfer, role change, logout or disabling takes effect on open sockets at once.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any
from urllib.parse import urlsplit

import structlog
from starlette.websockets import WebSocket

from confide.auth.actors import OperatorActor
from confide.chats import service as chats
from confide.chats.schemas import Draft
from confide.core import clock
from confide.core.errors import DomainError, Invalid, NotFound, RateLimited
from confide.permissions.access import access_conversation_by_id
from confide.realtime.outbox import Outbox
from confide.realtime.ratelimit import TokenBucket
from confide.realtime.writer import Result, acknowledge
from confide.routing import service as routing
from confide.routing.service import dept_topic
from confide.users import service as users
from confide.users.service import operator_topic
from confide.web.state import State
from confide.web.ws.frames import REVOKED, FrameReader, close, domain_error_frame, encode, error_frame
from confide.workspaces import service as workspaces

log = structlog.get_logger(__name__)
SESSION_COOKIE = "confide_session"
MAX_IN_FLIGHT = 64


def same_origin(ws: WebSocket) -> bool:
    origin = ws.headers.get("origin")
    host = ws.headers.get("host")
    return bool(origin and host and urlsplit(origin).netloc.lower() == host.lower())


class OperatorConnection:
    def __init__(self, state: State, ws: WebSocket, actor: OperatorActor, outbox: Outbox) -> None:
        self.state = state
        self.ws = ws
        self.actor = actor
        self.outbox = outbox
        self.chats: set[str] = set()
        self.dept_topics: set[str] = set()
        self._queue_refresh: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

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
                self._watch(conv["id"])
            self.outbox.put(text)
        elif kind == "chat_removed":
            self._unwatch(payload["conversation_id"])
            self.outbox.put(text)
        elif kind in ("offer", "offer_withdrawn", "status"):
            self.outbox.put(text)
        elif kind == "revoke":
            if payload.get("session_id") in (None, self.actor.session_id):
                self._spawn(close(self.ws, REVOKED))
        elif kind == "refresh":
            self._spawn(self.reload())

    def _watch(self, conversation_id: str) -> None:
        if conversation_id not in self.chats:
            self.chats.add(conversation_id)
            self.state.hub.subscribe_soon(self, chats.conv_topic(conversation_id))

    def _unwatch(self, conversation_id: str) -> None:
        if conversation_id in self.chats:
            self.chats.discard(conversation_id)
            self.state.hub.unsubscribe_soon(self, chats.conv_topic(conversation_id))

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
        rt = self.state.rt
        async with rt.db.unit_of_work(readonly=True) as uow:
            queue = await routing.queue_for(rt, uow, self.actor)
        self.outbox.put(encode({"type": "queue", "queue": queue}))

    async def _departments(self) -> list[dict[str, Any]]:
        rt = self.state.rt
        async with rt.db.unit_of_work(readonly=True) as uow:
            return [workspaces.department_view(d) for d in await workspaces.list_departments(uow, self.actor)]

    def _set_departments(self, departments: list[dict[str, Any]]) -> None:
        wanted = {dept_topic(d["id"]) for d in departments}
        for topic in self.dept_topics - wanted:
            self.state.hub.unsubscribe_soon(self, topic)
        for topic in wanted - self.dept_topics:
            self.state.hub.subscribe_soon(self, topic)
        self.dept_topics = wanted

    async def reload(self) -> None:
        """Role or departments changed: reload who this operator is, re-scope everything at once."""
        rt = self.state.rt
        try:
            async with rt.db.unit_of_work(readonly=True) as uow:
                self.actor = await users.actor_for(uow, self.actor.operator_id, session_id=self.actor.session_id)
        except DomainError:
            await close(self.ws, REVOKED)
            return
        departments = await self._departments()
        self._set_departments(departments)
        self.outbox.put(encode({"type": "departments", "departments": departments}))
        self.refresh_queue()

    def shutdown(self) -> None:
        hub = self.state.hub
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


async def operator_socket(ws: WebSocket) -> None:
    state: State = ws.app.state.confide
    rt = state.rt
    if not same_origin(ws):
        await ws.close(1008)
        return
    try:
        async with rt.db.unit_of_work(readonly=True) as uow:
            actor = await users.resolve_session(uow, ws.cookies.get(SESSION_COOKIE))
    except DomainError:
        await ws.close(1008)
        return
    await ws.accept()
    outbox = Outbox(ws.send_text, lambda code: close(ws, code), rt.settings.send_queue_frames)
    conn = OperatorConnection(state, ws, actor, outbox)
    state.hub.subscribe_soon(conn, operator_topic(actor.operator_id))
    try:
        await state.presence.operator_connected(actor.operator_id)
        async with rt.db.unit_of_work(readonly=True) as uow:
            welcome = await routing.console_snapshot(rt, uow, actor)
        conn._set_departments(welcome["departments"])
        for chat in welcome["chats"]:
            conn._watch(chat["id"])
        outbox.put(encode({"type": "welcome", **welcome}))
        log.info("operator_connected", operator_id=actor.operator_id)
        await _serve(state, conn, FrameReader(ws, outbox, rt.settings.max_frame_bytes))
    finally:
        conn.shutdown()
        state.presence.operator_disconnected(actor.operator_id)


async def _serve(state: State, conn: OperatorConnection, reader: FrameReader) -> None:
    rt = state.rt
    bucket = TokenBucket(rt.settings.operator_msg_rate, rt.settings.operator_msg_burst)
    pending: set[asyncio.Future[Result]] = set()
    while True:
        frame = await reader.next()
        if frame is None:
            return
        actor = conn.actor  # current: refreshed by events
        if actor.session_expires_at is not None and actor.session_expires_at <= clock.now():
            await close(conn.ws, REVOKED)  # the console session has expired
            return
        kind = frame["type"]
        ref = frame.get("client_id")
        conv_id = frame.get("conversation_id")
        try:
            if kind == "message":
                if not bucket.take() or len(pending) >= MAX_IN_FLIGHT:
                    raise RateLimited("You are sending messages too fast; slow down.")
                if not isinstance(conv_id, str) or conv_id not in conn.chats:
                    raise NotFound("conversation not found")
                draft = Draft(
                    conversation_id=conv_id,
                    sender="operator",
                    sender_id=actor.operator_id,
                    sender_name=actor.name,
                    client_id=chats.check_client_id(ref),
                    text=chats.check_text(frame.get("text")),
                )
                future = state.writer.enqueue(draft)
                pending.add(future)
                future.add_done_callback(functools.partial(acknowledge, conn.outbox, pending, draft.client_id))
            elif kind == "typing":
                if not isinstance(conv_id, str) or conv_id not in conn.chats:
                    raise NotFound("conversation not found")
                await rt.broker.publish(
                    chats.conv_topic(conv_id),
                    {"type": "typing", "conversation_id": conv_id, "from": "operator", "on": bool(frame.get("on"))},
                )
            elif kind == "status":
                async with rt.db.unit_of_work() as uow:
                    await routing.set_status(rt, uow, actor, frame.get("status"))
            elif kind == "accept":
                async with rt.db.unit_of_work() as uow:
                    conv = await routing.accept(rt, uow, actor, _id(conv_id))
                conn._watch(conv.id)
            elif kind == "read":
                async with rt.db.unit_of_work() as uow:
                    await chats.mark_read(rt, uow, actor, _id(conv_id), frame.get("seq"))
            elif kind == "transfer":
                async with rt.db.unit_of_work() as uow:
                    await routing.transfer(
                        rt,
                        uow,
                        actor,
                        _id(conv_id),
                        operator_id=_opt_id(frame.get("operator_id")),
                        department_id=_opt_id(frame.get("department_id")),
                    )
            elif kind == "close":
                async with rt.db.unit_of_work() as uow:
                    await routing.close_by_operator(rt, uow, actor, _id(conv_id))
            elif kind == "history":
                after = frame.get("after_seq", 0)
                if not isinstance(after, int) or isinstance(after, bool) or after < 0:
                    raise Invalid("after_seq must be a non-negative integer")
                async with rt.db.unit_of_work(readonly=True) as uow:
                    conv = await access_conversation_by_id(uow.session, actor, _id(conv_id))
                    messages = await chats.messages_after(rt, uow, conv, after)
                conn.outbox.put(encode({"type": "history", "conversation_id": conv.id, "messages": messages}))
            elif kind == "ping":
                conn.outbox.put('{"type":"pong"}')
            else:
                reader.unknown(frame)
        except DomainError as exc:
            conn.outbox.put(domain_error_frame(exc, ref))
        except Exception:
            log.exception("operator_frame_failed", operator_id=actor.operator_id, frame_type=str(kind)[:20])
            conn.outbox.put(error_frame("internal", "something went wrong; try again", ref))


def _id(value: object) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 64:
        raise NotFound("conversation not found")
    return value


def _opt_id(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= 64:
        raise Invalid("bad id")
    return value
