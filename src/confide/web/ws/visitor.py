"""The visitor socket: Origin checked before upgrade, token on hello, then one service call per frame."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import structlog
from starlette.websockets import WebSocket

from confide.auth import visitor_tokens
from confide.auth.actors import VisitorActor
from confide.chats import service as chats
from confide.chats.schemas import Draft
from confide.core.errors import DomainError, Invalid, RateLimited
from confide.permissions.access import access_conversation_by_id, site_by_key
from confide.realtime.outbox import Outbox
from confide.realtime.ratelimit import TokenBucket
from confide.realtime.writer import Result, acknowledge
from confide.routing import service as routing
from confide.web.state import State
from confide.web.ws.frames import (
    BAD_TOKEN,
    NO_HELLO,
    FrameReader,
    close,
    domain_error_frame,
    encode,
    error_frame,
)
from confide.workspaces.service import origin_allowed

log = structlog.get_logger(__name__)
HELLO_TIMEOUT_S = 10.0
MAX_IN_FLIGHT = 64
_FORWARD = {"message", "status", "typing", "read"}


class VisitorConnection:
    __slots__ = ("actor", "conversation_id", "outbox")

    def __init__(self, actor: VisitorActor, conversation_id: str, outbox: Outbox) -> None:
        self.actor = actor
        self.conversation_id = conversation_id
        self.outbox = outbox

    def deliver(self, topic: str, payload: dict[str, Any], text: str) -> None:
        kind = payload.get("type")
        if kind not in _FORWARD:
            return
        if kind in ("typing", "read") and payload.get("from") != "operator":
            return
        self.outbox.put(text)


async def visitor_socket(ws: WebSocket) -> None:
    state: State = ws.app.state.confide
    rt = state.rt
    async with rt.db.unit_of_work(readonly=True) as uow:
        try:
            site = await site_by_key(uow.session, ws.query_params.get("site"))
        except DomainError:
            site = None
    if site is None or not origin_allowed(site, ws.headers.get("origin")):
        await ws.close(1008)  # before accept: the client gets HTTP 403, no socket
        return
    await ws.accept()
    outbox = Outbox(ws.send_text, lambda code: close(ws, code), rt.settings.send_queue_frames)
    reader = FrameReader(ws, outbox, rt.settings.max_frame_bytes)
    try:
        hello = await asyncio.wait_for(reader.next(), HELLO_TIMEOUT_S)
    except TimeoutError:
        await close(ws, NO_HELLO)
        return
    if hello is None:
        return
    if hello.get("type") != "hello":
        await ws.send_text(error_frame("unauthorized", "the first frame must be hello"))
        await close(ws, BAD_TOKEN)
        return
    try:
        actor = visitor_tokens.verify(rt.visitor_tokens, hello.get("token"), site_id=site.id)
    except DomainError as exc:
        await ws.send_text(domain_error_frame(exc))
        await close(ws, BAD_TOKEN)
        return
    conversation_id = hello.get("conversation_id")
    last_seq = hello.get("last_seq", 0)
    if not isinstance(last_seq, int) or isinstance(last_seq, bool) or last_seq < 0:
        last_seq = 0
    conn = VisitorConnection(actor, str(conversation_id), outbox)
    topic = chats.conv_topic(conn.conversation_id)
    try:  # only the visitor's own conversation: checked before listening to it, so nothing of another leaks
        async with rt.db.unit_of_work(readonly=True) as uow:
            await access_conversation_by_id(uow.session, actor, conversation_id)
    except DomainError as exc:
        await ws.send_text(domain_error_frame(exc))
        await close(ws, BAD_TOKEN)
        return
    # Subscribe before reading history so nothing committed in between is missed (clients de-duplicate).
    await state.hub.subscribe(conn, topic)
    try:
        await state.presence.visitor_connected(conn.conversation_id)
        try:
            async with rt.db.unit_of_work(readonly=True) as uow:
                conv = await access_conversation_by_id(uow.session, actor, conversation_id)
                view = await chats.visitor_view(uow, conv)
                resync = last_seq > conv.seq
                messages = await chats.messages_after(rt, uow, conv, 0 if resync else last_seq)
        except DomainError as exc:
            await ws.send_text(domain_error_frame(exc))
            await close(ws, BAD_TOKEN)
            return
        outbox.put(
            encode(
                {
                    "type": "resync" if resync else "welcome",
                    "conversation": view,
                    "messages": messages,
                    "seq": view["seq"],
                }
            )
        )
        log.info("visitor_connected", visitor_id=actor.visitor_id, conversation_id=conn.conversation_id)
        await _serve(state, ws, reader, conn)
    finally:
        state.presence.visitor_disconnected(conn.conversation_id)
        await state.hub.unsubscribe(conn, topic)
        outbox.shutdown()


async def _serve(state: State, ws: WebSocket, reader: FrameReader, conn: VisitorConnection) -> None:
    rt = state.rt
    settings = rt.settings
    messages = TokenBucket(settings.visitor_msg_rate, settings.visitor_msg_burst)
    typing = TokenBucket(3.0, 30.0)
    actor, conv_id, outbox = conn.actor, conn.conversation_id, conn.outbox
    pending: set[asyncio.Future[Result]] = set()
    while True:
        frame = await reader.next()
        if frame is None:
            return
        kind = frame["type"]
        ref = frame.get("client_id")
        try:
            if kind == "message":
                if not messages.take():
                    raise RateLimited("You are sending messages too fast; slow down.")
                draft = Draft(
                    conversation_id=conv_id,
                    sender="visitor",
                    sender_id=actor.visitor_id,
                    sender_name=None,
                    client_id=chats.check_client_id(ref),
                    text=chats.check_text(frame.get("text")),
                )
                if len(pending) >= MAX_IN_FLIGHT:
                    raise RateLimited("Too many messages waiting to be stored; slow down.")
                future = state.writer.enqueue(draft)
                pending.add(future)
                future.add_done_callback(functools.partial(acknowledge, outbox, pending, draft.client_id))
            elif kind == "typing":
                if not typing.take():
                    raise RateLimited("You are sending typing notices too fast; slow down.")
                await rt.broker.publish(
                    chats.conv_topic(conv_id),
                    {"type": "typing", "conversation_id": conv_id, "from": "visitor", "on": bool(frame.get("on"))},
                )
            elif kind == "read":
                async with rt.db.unit_of_work() as uow:
                    await chats.mark_read(rt, uow, actor, conv_id, frame.get("seq"))
            elif kind == "end":
                async with rt.db.unit_of_work() as uow:
                    await routing.close_by_visitor(rt, uow, actor, conv_id)
            elif kind == "leave_message":
                async with rt.db.unit_of_work() as uow:
                    request_id = await routing.leave_message(
                        rt,
                        uow,
                        actor,
                        conv_id,
                        email=frame.get("email"),
                        phone=frame.get("phone"),
                        message=frame.get("message"),
                    )
                outbox.put(encode({"type": "message_left", "offline_request_id": request_id}))
            elif kind == "rate":
                async with rt.db.unit_of_work() as uow:
                    await chats.rate(rt, uow, actor, conv_id, frame.get("score"), frame.get("comment"))
            elif kind == "ping":
                outbox.put('{"type":"pong"}')
            elif kind == "hello":
                raise Invalid("already authenticated")
            else:
                reader.unknown(frame)
        except DomainError as exc:
            outbox.put(domain_error_frame(exc, ref))
        except Exception:
            log.exception("visitor_frame_failed", visitor_id=actor.visitor_id, frame_type=str(kind)[:20])
            outbox.put(error_frame("internal", "something went wrong; try again", ref))
