"""The visitor socket: Origin and caps checked before the upgrade, the token on ``hello``, then one
dispatched handler per frame (docs/protocol.md, "WebSocket /ws/visitor")."""

from __future__ import annotations

import asyncio
import functools
import time
from urllib.parse import parse_qs

import structlog
from starlette.websockets import WebSocket

from confide.auth import visitor_tokens
from confide.chats import service as chats
from confide.core.db import UnitOfWork
from confide.core.errors import DomainError, Invalid
from confide.erasure import tombstones
from confide.permissions.access import site_by_key
from confide.realtime.connections import VisitorConnection, authorize_visitor, resume_visitor
from confide.realtime.outbox import Outbox
from confide.realtime.wire import (
    BAD_TOKEN,
    ERASED,
    NO_HELLO,
    PONG,
    TOO_MANY_SOCKETS,
    domain_error_frame,
    error_frame,
    message_left,
)
from confide.routing import service as routing
from confide.web.client_address import client_address
from confide.web.middleware import RefusalRecorder
from confide.web.origins import origin_allowed
from confide.web.state import State
from confide.web.ws.dispatch import Dispatcher
from confide.web.ws.frames import FrameReader, Refused, close, frame_sender, too_many_connections
from confide.web.ws.schemas import (
    VISITOR_FRAMES,
    End,
    Hello,
    LeaveMessage,
    Ping,
    Rate,
    VisitorFrame,
    VisitorMessage,
    VisitorRead,
    VisitorTyping,
)
from confide.workspaces import service as workspaces

log = structlog.get_logger(__name__)
visitor = Dispatcher[VisitorConnection]("visitor")


# ---------------------------------------------------------------- one handler per frame type
@visitor.plain(VisitorMessage)
async def _message(conn: VisitorConnection, frame: VisitorMessage) -> None:
    conn.say(frame.client_id, frame.text)  # acknowledged by the writer after its commit


@visitor.plain(VisitorTyping)
async def _typing(conn: VisitorConnection, frame: VisitorTyping) -> None:
    await conn.typing(frame.on)


@visitor.unit(VisitorRead, "write")
async def _read(conn: VisitorConnection, uow: UnitOfWork, frame: VisitorRead) -> None:
    await chats.mark_read(conn.rt, uow, conn.actor, conn.conversation_id, frame.seq)


@visitor.unit(End, "write")
async def _end(conn: VisitorConnection, uow: UnitOfWork, frame: End) -> None:
    await routing.close_by_visitor(conn.rt, uow, conn.actor, conn.conversation_id)


@visitor.unit(Rate, "write")
async def _rate(conn: VisitorConnection, uow: UnitOfWork, frame: Rate) -> None:
    await chats.rate(conn.rt, uow, conn.actor, conn.conversation_id, frame.score, frame.comment)


@visitor.unit(LeaveMessage, "write")
async def _leave_message(conn: VisitorConnection, uow: UnitOfWork, frame: LeaveMessage) -> None:
    request_id = await routing.leave_message(
        conn.rt, uow, conn.actor, conn.conversation_id, email=frame.email, phone=frame.phone, message=frame.message
    )
    uow.after_commit(lambda: conn.outbox.put(message_left(request_id)))  # answered only once it is stored


@visitor.plain(Ping)
async def _ping(conn: VisitorConnection, frame: Ping) -> None:
    conn.outbox.put(PONG)


@visitor.plain(Hello)
async def _hello_again(conn: VisitorConnection, frame: Hello) -> None:
    raise Invalid("already authenticated")


visitor.check_covers(VisitorFrame)


# ---------------------------------------------------------------- the socket
# Refused origins are recorded for the site's owner (Settings -> Sites) at a bounded rate, like
# the widget's HTTP calls (web/middleware.py); this node's sockets share one recorder.
_refusals = RefusalRecorder()


def _scope_header(ws: WebSocket, name: bytes) -> str | None:
    """A request header read from the scope: ``ws.headers`` would build and keep a Headers object
    (and ``ws.query_params`` a QueryParams) for as long as the socket is open."""
    for key, value in ws.scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _site_key(ws: WebSocket) -> str | None:
    values = parse_qs(ws.scope.get("query_string", b"").decode("latin-1")).get("site")
    return values[0] if values else None


async def visitor_socket(ws: WebSocket) -> None:
    state: State = ws.app.state.confide
    site_id = await _allowed_site(state, ws)
    if site_id is None:
        await ws.close(1008)  # before accept: the client gets HTTP 403, no socket
        return
    address = client_address(ws)  # never logged
    if address is not None and not state.limits.address_sockets.acquire(address):
        await ws.send_denial_response(too_many_connections())
        return
    try:
        await ws.accept()
        outbox = Outbox(frame_sender(ws), functools.partial(close, ws), state.rt.settings.send_queue_frames)
        reader = FrameReader(ws, outbox, state.rt.settings.max_frame_bytes, VISITOR_FRAMES)
        try:
            conn = await _handshake(state, ws, reader, outbox, site_id)
            if conn is None:
                return
            try:
                log.info("visitor_connected", **conn.log_id())
                while (frame := await reader.read(answer=True)) is not None:
                    await visitor.dispatch(conn, frame)
            finally:
                state.presence.visitor_disconnected(conn.conversation_id)
                await conn.shutdown()
                state.limits.visitor_sockets.release(conn.actor.visitor_id)
        finally:
            outbox.shutdown()
    finally:
        if address is not None:
            state.limits.address_sockets.release(address)


# Site key -> (good until, site id, allowed origins): one read unit less per handshake when many
# visitors of a site connect. An allowlist change takes effect within SITE_CACHE_S on every node,
# as for the widget's HTTP calls (web/middleware.py).
SITE_CACHE_S = 5.0
SITE_CACHE_MAX = 10_000
_sites: dict[str, tuple[float, str, tuple[str, ...]]] = {}


async def _site(state: State, site_key: str | None) -> tuple[str, tuple[str, ...]] | None:
    now = time.monotonic()
    hit = _sites.get(site_key) if site_key is not None else None
    if hit is not None and hit[0] > now:
        return hit[1], hit[2]
    async with state.rt.db.unit_of_work(readonly=True) as uow:
        try:
            site = await site_by_key(uow.session, site_key)
        except DomainError:
            return None
        found = site.id, tuple(site.allowed_origins)
    if len(_sites) >= SITE_CACHE_MAX:
        _sites.clear()
    _sites[site.site_key] = (now + SITE_CACHE_S, *found)
    return found


async def _allowed_site(state: State, ws: WebSocket) -> str | None:
    """The site's id when the key names a site and the Origin is on its allowlist. A refused
    origin of a known site is recorded for its owner (rate-limited)."""
    origin = _scope_header(ws, b"origin")
    site = await _site(state, _site_key(ws))
    if site is None:
        return None
    refused, allowed = site
    if origin_allowed(origin, allowed):
        return refused
    if origin and _refusals.admit(refused, origin):
        try:
            async with state.rt.db.unit_of_work() as uow:
                await workspaces.record_refused_origin(uow, refused, origin)
        except Exception:  # a hint for the owner must never break the answer
            log.warning("refused_origin_not_recorded", site_id=refused)
    return None


async def _refuse(ws: WebSocket, text: str, code: int) -> None:
    await ws.send_text(text)
    await close(ws, code)


async def _handshake(
    state: State, ws: WebSocket, reader: FrameReader[VisitorFrame], outbox: Outbox, site_id: str
) -> VisitorConnection | None:
    """``hello`` in time, a genuine token, the cap, the conversation: the connection, subscribed and
    welcomed, or None (the socket is closed). Nothing loaded here outlives this call."""
    rt = state.rt
    try:
        first = await asyncio.wait_for(reader.read(answer=False), rt.settings.ws_hello_timeout_s)
    except TimeoutError:
        await close(ws, NO_HELLO)
        return None
    if first is None:
        return None
    if isinstance(first, Refused) and first.type == "hello":
        await _refuse(ws, first.frame(), BAD_TOKEN)
        return None
    if not isinstance(first, Hello):
        await _refuse(ws, error_frame("unauthorized", "the first frame must be hello"), BAD_TOKEN)
        return None
    try:
        actor = visitor_tokens.verify(rt.visitor_tokens, first.token, site_id=site_id)
    except DomainError as exc:
        await _refuse(ws, domain_error_frame(exc), BAD_TOKEN)
        return None
    if not state.limits.visitor_sockets.acquire(actor.visitor_id):
        await _refuse(ws, error_frame("rate_limited", "too many open chat windows; close one"), TOO_MANY_SOCKETS)
        return None
    conn = VisitorConnection(state.node, actor, first.conversation_id, outbox)
    subscribed = present = False
    try:
        async with rt.db.unit_of_work(readonly=True) as uow:
            await tombstones.refuse_erased(rt, uow, actor)  # an erased visitor's token: "erased", closed
            spot = await authorize_visitor(uow, actor, conn.conversation_id)
        # Subscribe before reading history so nothing committed in between is missed.
        subscribed = True
        await conn.listen(spot)
        # Present (a heartbeat on every node's view) before the welcome: the visitor is here now.
        await state.presence.visitor_connected(conn.conversation_id)
        present = True
        async with rt.db.unit_of_work(readonly=True) as uow:
            welcome, spot = await resume_visitor(rt, uow, actor, conn.conversation_id, first.last_seq)
        conn.follow_queue(spot)
        outbox.put(welcome)
    except BaseException as exc:
        if present:
            state.presence.visitor_disconnected(conn.conversation_id)
        if subscribed:
            await conn.shutdown()
        state.limits.visitor_sockets.release(actor.visitor_id)
        if not isinstance(exc, DomainError):
            raise
        await _refuse(ws, domain_error_frame(exc), ERASED if isinstance(exc, tombstones.Erased) else BAD_TOKEN)
        return None
    return conn
