"""The operator console socket: same-origin check and session cookie before the upgrade, then one
dispatched handler per frame, authorised again in the service it calls
(docs/protocol.md, "WebSocket /ws/operator")."""

from __future__ import annotations

import structlog
from starlette.websockets import WebSocket

from confide.audit import service as audit
from confide.chats import service as chats
from confide.core import clock
from confide.core.db import UnitOfWork
from confide.core.errors import DomainError
from confide.realtime.connections import OperatorConnection, operator_history
from confide.realtime.outbox import Outbox
from confide.realtime.session_watch import REASON, session_watch
from confide.realtime.wire import PONG, REVOKED
from confide.routing import service as routing
from confide.users import service as users
from confide.web import login_guard
from confide.web.client_address import client_address
from confide.web.origins import same_origin, server_origin
from confide.web.security import session_token
from confide.web.state import State
from confide.web.ws.dispatch import Dispatcher
from confide.web.ws.frames import FrameReader, close, frame_sender, too_many_connections
from confide.web.ws.schemas import (
    OPERATOR_FRAMES,
    Accept,
    Close,
    History,
    OperatorFrame,
    OperatorMessage,
    OperatorRead,
    OperatorTyping,
    Ping,
    Status,
    Transfer,
)

log = structlog.get_logger(__name__)
operator = Dispatcher[OperatorConnection]("operator")


# ---------------------------------------------------------------- one handler per frame type
@operator.unit(Status, "write")
async def _status(conn: OperatorConnection, uow: UnitOfWork, frame: Status) -> None:
    await routing.set_status(conn.rt, uow, conn.actor, frame.status)


@operator.unit(Accept, "write")
async def _accept(conn: OperatorConnection, uow: UnitOfWork, frame: Accept) -> None:
    await conn.accept(uow, frame.conversation_id)


@operator.plain(OperatorMessage)
async def _message(conn: OperatorConnection, frame: OperatorMessage) -> None:
    conn.say(frame.conversation_id, frame.client_id, frame.text)  # acknowledged by the writer after its commit


@operator.plain(OperatorTyping)
async def _typing(conn: OperatorConnection, frame: OperatorTyping) -> None:
    await conn.typing(frame.conversation_id, frame.on)


@operator.unit(OperatorRead, "write")
async def _read(conn: OperatorConnection, uow: UnitOfWork, frame: OperatorRead) -> None:
    await chats.mark_read(conn.rt, uow, conn.actor, frame.conversation_id, frame.seq)


@operator.unit(Transfer, "write")
async def _transfer(conn: OperatorConnection, uow: UnitOfWork, frame: Transfer) -> None:
    await routing.transfer(
        conn.rt,
        uow,
        conn.actor,
        frame.conversation_id,
        operator_id=frame.operator_id,
        department_id=frame.department_id,
    )


@operator.unit(Close, "write")
async def _close(conn: OperatorConnection, uow: UnitOfWork, frame: Close) -> None:
    await routing.close_by_operator(conn.rt, uow, conn.actor, frame.conversation_id)


@operator.unit(History, "write")
async def _history(conn: OperatorConnection, uow: UnitOfWork, frame: History) -> None:
    """Opening a conversation in the console (its messages and visitor panel): the read-access log
    row commits with the read, and the frame goes out only after that commit."""
    history = await operator_history(conn.rt, uow, conn.actor, frame.conversation_id, frame.after_seq)
    await audit.record(
        conn.rt,
        uow,
        "chats.viewed",
        actor=conn.actor,
        target_type="conversation",
        target_id=frame.conversation_id,
        detail={"via": "console", "after_seq": frame.after_seq},
    )
    uow.after_commit(lambda: conn.outbox.put(history))


@operator.plain(Ping)
async def _ping(conn: OperatorConnection, frame: Ping) -> None:
    conn.outbox.put(PONG)


operator.check_covers(OperatorFrame)


# ---------------------------------------------------------------- the socket
async def operator_socket(ws: WebSocket) -> None:
    state: State = ws.app.state.confide
    rt = state.rt
    own = server_origin(ws.url.scheme, ws.headers.get("host"), rt.settings.public_url)
    if not same_origin(ws.headers.get("origin"), own):
        await ws.close(1008)  # before accept: HTTP 403
        return
    try:
        async with rt.db.unit_of_work(readonly=True) as uow:
            actor = await users.resolve_session(uow, session_token(ws.cookies, secure=rt.settings.cookie_secure))
    except DomainError:
        await ws.close(1008)
        return
    address = client_address(ws)  # never logged
    if await login_guard.refuse_socket(rt, actor, address):  # outside the login limits (ADR 0016)
        await ws.close(1008)
        return
    if address is not None and not state.limits.address_sockets.acquire(address):
        await ws.send_denial_response(too_many_connections())
        return
    try:
        await ws.accept()
        outbox = Outbox(frame_sender(ws), lambda code: close(ws, code), rt.settings.send_queue_frames)
        conn = OperatorConnection(state.node, actor, outbox, lambda code: close(ws, code))
        # accounts (ADR 0012): closed within session_check_s once the session ends, event or not
        unwatch = session_watch(rt).watch(actor.session_id or "", lambda: ws.close(REVOKED, REASON))
        limits_guard = login_guard.watch(rt, conn, address, lambda: close(ws, REVOKED))  # re-checks every 20 s
        try:
            await state.presence.operator_connected(actor.operator_id)
            await conn.open()
            log.info("operator_connected", operator_id=actor.operator_id)
            reader = FrameReader(ws, outbox, rt.settings.max_frame_bytes, OPERATOR_FRAMES)
            while (frame := await reader.read(answer=True)) is not None:
                expires = conn.actor.session_expires_at  # current: refreshed by events
                if expires is not None and expires <= clock.now():
                    await close(ws, REVOKED)  # the console session has expired
                    return
                await operator.dispatch(conn, frame)
        finally:
            unwatch()
            limits_guard.cancel()
            conn.shutdown()
            state.presence.operator_disconnected(actor.operator_id)
    finally:
        if address is not None:
            state.limits.address_sockets.release(address)
