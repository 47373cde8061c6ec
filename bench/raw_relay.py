"""A minimal Starlette WebSocket relay: the baseline Confide is compared with.

It speaks the subset of docs/protocol.md the load generator uses, with the same JSON frame
shapes, and persists nothing (all state is in memory, no authentication, no validation
beyond what the relay needs):

* ``POST /api/v1/auth/login`` sets a dummy ``confide_session`` cookie;
* ``POST /api/v1/widget/{site_key}/conversations`` → 201 ``{token, visitor_id, conversation_id, expires_at}``;
* ``/ws/operator``: ``welcome`` on connect, ``status`` is echoed, ``accept`` joins the
  conversation's room (answered by ``chat``), ``message`` is relayed to the visitor;
* ``/ws/visitor?site=KEY``: ``hello`` → ``welcome``; each ``message`` is answered, like
  Confide, by ``ack`` to the sender and a ``message`` frame to everyone in the conversation
  (the visitor itself and its operator).

Run it with uvicorn exactly like Confide (see bench/servers.py).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect


def _id() -> str:
    return secrets.token_urlsafe(16)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Room:
    id: str
    token: str
    visitor_id: str
    created_at: str
    seq: int = 0
    status: str = "queued"
    visitor: WebSocket | None = None
    operator: WebSocket | None = None
    operator_id: str | None = None

    def visitor_view(self) -> dict[str, Any]:
        return {
            "id": self.id, "status": self.status, "queue_position": None,
            "operator": {"name": "Bench"} if self.operator else None, "seq": self.seq,
            "rating": None, "created_at": self.created_at, "closed_at": None,
        }

    def operator_view(self) -> dict[str, Any]:
        return {
            "id": self.id, "status": self.status, "site": {"id": "raw", "name": "Raw"},
            "department": None, "operator_id": self.operator_id,
            "visitor": {"id": self.visitor_id, "name": None, "email": None, "phone": None,
                        "fields": {}, "consents": {}, "page_url": None},
            "seq": self.seq, "visitor_read_seq": 0, "operator_read_seq": 0, "unread": 0,
            "rating": None, "rating_comment": None, "created_at": self.created_at,
            "accepted_at": None, "closed_at": None, "waiting_since": self.created_at,
        }


ROOMS: dict[str, Room] = {}


async def login(request: Request) -> JSONResponse:
    response = JSONResponse({"ok": True})
    response.set_cookie("confide_session", _id(), httponly=True, samesite="strict")
    return response


async def create_conversation(request: Request) -> JSONResponse:
    room = Room(id=_id(), token=_id(), visitor_id=_id(), created_at=_now())
    ROOMS[room.id] = room
    expires = (datetime.now(UTC) + timedelta(hours=12)).isoformat()
    return JSONResponse(
        {"token": room.token, "visitor_id": room.visitor_id, "conversation_id": room.id,
         "expires_at": expires},
        status_code=201,
    )


def _message(room: Room, client_id: str, text: str, sender: str) -> dict[str, Any]:
    room.seq += 1
    return {"id": _id(), "seq": room.seq, "client_id": client_id, "sender": sender,
            "sender_name": None, "text": text, "created_at": _now()}


async def operator_ws(ws: WebSocket) -> None:
    await ws.accept()
    op_id = _id()
    mine: list[Room] = []
    await ws.send_text(json.dumps({
        "type": "welcome",
        "operator": {"id": op_id, "name": "Bench", "role": "operator", "status": "offline",
                     "max_chats": 1000},
        "departments": [], "chats": [], "queue": [], "canned_replies": [],
    }))
    try:
        while True:
            frame = json.loads(await ws.receive_text())
            kind = frame.get("type")
            if kind == "message":
                room = ROOMS.get(frame.get("conversation_id", ""))
                if room is None or room.operator is not ws:
                    continue
                msg = _message(room, frame["client_id"], frame["text"], "operator")
                await ws.send_text(json.dumps({"type": "ack", "client_id": frame["client_id"],
                                               "message": msg}))
                out = json.dumps({"type": "message", "conversation_id": room.id, "message": msg})
                await ws.send_text(out)
                if room.visitor is not None:
                    await room.visitor.send_text(json.dumps({"type": "message", "message": msg}))
            elif kind == "accept":
                room = ROOMS.get(frame.get("conversation_id", ""))
                if room is None:
                    await ws.send_text(json.dumps({"type": "error", "code": "not_found",
                                                   "message": "no such conversation",
                                                   "ref": frame.get("client_id")}))
                    continue
                room.operator, room.operator_id, room.status = ws, op_id, "active"
                mine.append(room)
                await ws.send_text(json.dumps({"type": "chat", "conversation": room.operator_view()}))
            elif kind == "status":
                await ws.send_text(json.dumps({"type": "status", "status": frame.get("status")}))
            elif kind == "ping":
                await ws.send_text('{"type": "pong"}')
    except WebSocketDisconnect:
        pass
    finally:
        for room in mine:
            if room.operator is ws:
                room.operator = None


async def visitor_ws(ws: WebSocket) -> None:
    await ws.accept()
    room: Room | None = None
    try:
        hello = json.loads(await ws.receive_text())
        room = ROOMS.get(hello.get("conversation_id", ""))
        if hello.get("type") != "hello" or room is None or room.token != hello.get("token"):
            await ws.close(4401)
            return
        room.visitor = ws
        await ws.send_text(json.dumps({"type": "welcome", "conversation": room.visitor_view(),
                                       "messages": [], "seq": room.seq}))
        while True:
            frame = json.loads(await ws.receive_text())
            kind = frame.get("type")
            if kind == "message":
                client_id = frame["client_id"]
                msg = _message(room, client_id, frame["text"], "visitor")
                await ws.send_text(json.dumps({"type": "ack", "client_id": client_id, "message": msg}))
                await ws.send_text(json.dumps({"type": "message", "message": msg}))
                if room.operator is not None:
                    await room.operator.send_text(
                        json.dumps({"type": "message", "conversation_id": room.id, "message": msg}))
            elif kind == "ping":
                await ws.send_text('{"type": "pong"}')
    except WebSocketDisconnect:
        pass
    finally:
        if room is not None and room.visitor is ws:
            room.visitor = None


app = Starlette(routes=[
    Route("/api/v1/auth/login", login, methods=["POST"]),
    Route("/api/v1/widget/{site_key}/conversations", create_conversation, methods=["POST"]),
    WebSocketRoute("/ws/operator", operator_ws),
    WebSocketRoute("/ws/visitor", visitor_ws),
])
