"""The python-socketio peer: what a Python developer would pick for a chat relay. It stores nothing.

A ``socketio.AsyncServer`` (ASGI, WebSocket transport only) under uvicorn with the same options as
Confide and the raw relay (bench/servers.py). It carries the same workload with the same frame
shapes, in Socket.IO's idiom:

* the HTTP side (``POST /api/v1/auth/login``, ``POST /api/v1/widget/{key}/conversations``) is the
  raw relay's (bench/raw_relay.py), mounted as the ASGI app next to Socket.IO;
* a visitor connects with the auth payload ``{"token", "conversation_id"}`` and joins its
  conversation's room; an operator connects with ``{"role": "operator"}``, ``accept`` joins the
  room (answered by a ``chat`` event), ``status`` is echoed;
* a ``message`` event is answered by a Socket.IO acknowledgement to the sender carrying
  ``{"client_id", "message"}`` (Confide's ``ack``) and a ``message`` event
  ``{"type", "conversation_id", "message"}`` emitted to the room: the sender itself (the echo)
  and the operator (the delivery), like Confide's hub sends one text to every socket of a topic.

Run it with uvicorn exactly like Confide (see ``servers.start_socketio_relay``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import socketio
from starlette.applications import Starlette
from starlette.routing import Route

from bench.raw_relay import ROOMS, Room, _id, _message, create_conversation, login

sio = socketio.AsyncServer(async_mode="asgi", transports=["websocket"], cors_allowed_origins="*",
                           logger=False, engineio_logger=False)


@dataclass
class Peer:
    role: str
    room: Room | None = None
    operator_id: str = ""


PEERS: dict[str, Peer] = {}


@sio.event
async def connect(sid: str, environ: dict[str, Any], auth: Any) -> bool:
    auth = auth if isinstance(auth, dict) else {}
    if auth.get("role") == "operator":
        PEERS[sid] = Peer("operator", operator_id=_id())
        return True
    room = ROOMS.get(str(auth.get("conversation_id", "")))
    if room is None or room.token != auth.get("token"):
        return False  # the client gets a CONNECT_ERROR packet
    PEERS[sid] = Peer("visitor", room=room)
    await sio.enter_room(sid, room.id)
    return True


@sio.event
async def disconnect(sid: str, *_: Any) -> None:
    PEERS.pop(sid, None)


@sio.on("message")
async def message(sid: str, data: dict[str, Any]) -> dict[str, Any] | None:
    peer = PEERS.get(sid)
    if peer is None:
        return None
    if peer.role == "visitor":
        room = peer.room
        sender = "visitor"
    else:
        room = ROOMS.get(str(data.get("conversation_id", "")))
        if room is None or room.operator_id != peer.operator_id:
            return None
        sender = "operator"
    assert room is not None
    msg = _message(room, data["client_id"], data["text"], sender)
    await sio.emit("message", {"type": "message", "conversation_id": room.id, "message": msg}, room=room.id)
    return {"type": "ack", "client_id": data["client_id"], "message": msg}


@sio.on("accept")
async def accept(sid: str, data: dict[str, Any]) -> None:
    peer = PEERS.get(sid)
    room = ROOMS.get(str(data.get("conversation_id", "")))
    if peer is None or room is None:
        await sio.emit("error", {"type": "error", "code": "not_found", "message": "no such conversation",
                                 "ref": data.get("client_id")}, to=sid)
        return
    room.operator_id, room.status = peer.operator_id, "active"
    await sio.enter_room(sid, room.id)
    await sio.emit("chat", {"type": "chat", "conversation": room.operator_view()}, to=sid)


@sio.on("status")
async def status(sid: str, data: dict[str, Any]) -> None:
    await sio.emit("status", {"type": "status", "status": data.get("status")}, to=sid)


http = Starlette(routes=[
    Route("/api/v1/auth/login", login, methods=["POST"]),
    Route("/api/v1/widget/{site_key}/conversations", create_conversation, methods=["POST"]),
])
app = socketio.ASGIApp(sio, other_asgi_app=http)
