"""Small helpers for the WebSocket protocol tests: widget intake over HTTP, visitor and operator
sockets on the live server, and frame reading that skips what a test does not wait for.

Every function is keyword-only. Sockets are ``websockets`` client connections (no compression,
no proxy); frames are JSON objects.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

from tests.conftest import Live, World
from tests.factories import PASSWORD

Frame = dict[str, Any]
TIMEOUT_S = 5.0
SESSION_COOKIE = "confide_session"
_opened: list[ClientConnection] = []  # closed by close_all() at the end of each test


@dataclass(frozen=True)
class VisitorChat:
    """What the widget keeps after the pre-chat form: token and conversation."""

    token: str
    visitor_id: str
    conversation_id: str
    expires_at: str
    site_key: str
    origin: str


def http(*, live: Live) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=live.base, trust_env=False, timeout=TIMEOUT_S)


# ---------------------------------------------------------------- visitor
async def start_chat(*, live: Live, site_key: str, origin: str, name: str = "Ana",
                     email: str = "ana@example.com", department_id: str | None = None,
                     extra_fields: dict[str, Any] | None = None) -> VisitorChat:
    """Submit the pre-chat form as the widget does (cross-origin, with the site's Origin)."""
    body = {"fields": {"name": name, "email": email, **(extra_fields or {})}, "consents": {"marketing": False},
            "department_id": department_id, "page_url": f"{origin}/pricing"}
    async with http(live=live) as client:
        response = await client.post(f"/api/v1/widget/{site_key}/conversations", json=body,
                                     headers={"Origin": origin})
    assert response.status_code == 201, response.text
    data = response.json()
    return VisitorChat(token=data["token"], visitor_id=data["visitor_id"],
                       conversation_id=data["conversation_id"], expires_at=data["expires_at"],
                       site_key=site_key, origin=origin)


async def visitor_socket(*, live: Live, site_key: str, origin: str | None) -> ClientConnection:
    """Open /ws/visitor?site=… (no hello yet). Raises ``InvalidStatus`` when the upgrade is refused."""
    ws = await connect(f"{live.ws}/ws/visitor?site={site_key}",
                       origin=Origin(origin) if origin is not None else None,
                       compression=None, proxy=None, open_timeout=TIMEOUT_S, close_timeout=1, ping_interval=None,
                       max_queue=None)
    _opened.append(ws)
    return ws


async def visitor_hello(*, live: Live, chat: VisitorChat, last_seq: int = 0,
                        expect: str = "welcome") -> tuple[ClientConnection, Frame]:
    """Open a visitor socket, say hello and wait for ``welcome`` (or ``resync``)."""
    ws = await visitor_socket(live=live, site_key=chat.site_key, origin=chat.origin)
    await send(ws=ws, frame={"type": "hello", "token": chat.token, "conversation_id": chat.conversation_id,
                             "last_seq": last_seq})
    first = await recv(ws=ws)
    assert first["type"] == expect, first
    return ws, first


# ---------------------------------------------------------------- operator
async def login(*, live: Live, email: str, password: str = PASSWORD) -> str:
    """Log in to the console; returns the session cookie's value."""
    async with http(live=live) as client:
        response = await client.post("/api/v1/auth/login", json={"email": email, "password": password},
                                     headers={"Origin": live.base})
    assert response.status_code == 200, response.text
    token = response.cookies.get(SESSION_COOKIE)
    assert token
    return token


async def console_request(*, live: Live, cookie: str, method: str, path: str,
                          json_body: Any = None) -> httpx.Response:
    """A console API call with the session cookie, from our own Origin (the CSRF check passes)."""
    async with http(live=live) as client:
        return await client.request(method, path, json=json_body,
                                    headers={"Origin": live.base, "Cookie": f"{SESSION_COOKIE}={cookie}"})


async def operator_socket(*, live: Live, cookie: str | None, origin: str | None = "") -> ClientConnection:
    """Open /ws/operator with the cookie; ``origin=""`` means the server's own. No frame is read."""
    headers = {"Cookie": f"{SESSION_COOKIE}={cookie}"} if cookie else {}
    own = live.base if origin == "" else origin
    ws = await connect(f"{live.ws}/ws/operator", origin=Origin(own) if own else None,
                       additional_headers=headers, compression=None, proxy=None, open_timeout=TIMEOUT_S,
                       close_timeout=1, ping_interval=None, max_queue=None)
    _opened.append(ws)
    return ws


async def operator_connect(*, live: Live, email: str | None = None,
                           cookie: str | None = None) -> tuple[ClientConnection, Frame, str]:
    """Log in (unless a cookie is given), open the console socket, wait for ``welcome``."""
    if cookie is None:
        assert email is not None
        cookie = await login(live=live, email=email)
    ws = await operator_socket(live=live, cookie=cookie)
    welcome = await recv(ws=ws)
    assert welcome["type"] == "welcome", welcome
    return ws, welcome, cookie


async def go_online(*, ws: ClientConnection, status: str = "online") -> Frame:
    """Set my status; returns once the change is committed (the ``status`` echo arrives)."""
    await send(ws=ws, frame={"type": "status", "status": status})
    return await recv_until(ws=ws, type="status", where=lambda f: f["status"] == status)


async def accept_offer(*, ws: ClientConnection, conversation_id: str) -> Frame:
    """Wait for routing to offer me this chat, accept it, return the ``chat`` frame (active)."""
    await recv_until(ws=ws, type="offer", where=lambda f: f["conversation"]["id"] == conversation_id)
    await send(ws=ws, frame={"type": "accept", "conversation_id": conversation_id})
    return await recv_until(ws=ws, type="chat", where=lambda f: f["conversation"]["id"] == conversation_id
                            and f["conversation"]["status"] == "active")


@dataclass
class ActiveChat:
    """Mia (the world's operator) online with one accepted chat, and the visitor's socket after hello."""

    operator: ClientConnection
    cookie: str
    chat: VisitorChat
    visitor: ClientConnection
    welcome: Frame


async def active_chat(*, live: Live, world: World, name: str = "Ana") -> ActiveChat:
    op, _, cookie = await operator_connect(live=live, email=world.operator_email)
    await go_online(ws=op)
    chat = await start_chat(live=live, site_key=world.site_key, origin=world.origin, name=name)
    await accept_offer(ws=op, conversation_id=chat.conversation_id)
    visitor, welcome = await visitor_hello(live=live, chat=chat)
    assert welcome["conversation"]["status"] == "active"
    return ActiveChat(operator=op, cookie=cookie, chat=chat, visitor=visitor, welcome=welcome)


# ---------------------------------------------------------------- frames
async def send(*, ws: ClientConnection, frame: Any) -> None:
    await ws.send(json.dumps(frame))


async def recv(*, ws: ClientConnection, timeout: float = TIMEOUT_S) -> Frame:
    raw = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(raw, str), f"expected a text frame, got {raw!r}"
    frame = json.loads(raw)
    assert isinstance(frame, dict)
    return frame


async def recv_until(*, ws: ClientConnection, type: str, timeout: float = TIMEOUT_S,
                     where: Callable[[Frame], bool] | None = None, skipped: list[Frame] | None = None) -> Frame:
    """The next frame of ``type`` (matching ``where`` if given); other frames are skipped
    (and appended to ``skipped`` when a list is passed). Fails after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise AssertionError(f"no {type!r} frame within {timeout} s; skipped {skipped}")
        try:
            frame = await recv(ws=ws, timeout=remaining)
        except TimeoutError:
            raise AssertionError(f"no {type!r} frame within {timeout} s; skipped {skipped}") from None
        if frame.get("type") == type and (where is None or where(frame)):
            return frame
        if skipped is not None:
            skipped.append(frame)


def has(**fields: Any) -> Callable[[Frame], bool]:
    """A ``where`` for ``recv_until``: the frame carries these top-level values."""
    return lambda frame: all(frame.get(key) == value for key, value in fields.items())


async def frames_until_pong(*, ws: ClientConnection, timeout: float = TIMEOUT_S) -> list[Frame]:
    """Send a ping and return every frame received before its pong: a barrier proving what did NOT
    arrive (the server answers frames in order, and events reach a socket's queue synchronously)."""
    await send(ws=ws, frame={"type": "ping"})
    skipped: list[Frame] = []
    await recv_until(ws=ws, type="pong", timeout=timeout, skipped=skipped)
    return skipped


async def expect_close(*, ws: ClientConnection,
                       timeout: float = TIMEOUT_S) -> tuple[int | None, list[Frame]]:
    """Read until the server closes the socket; returns the close code and the frames before it."""
    frames: list[Frame] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise AssertionError(f"the socket was not closed within {timeout} s; got {frames}")
        try:
            raw = await asyncio.wait_for(ws.recv(), remaining)
        except ConnectionClosed as exc:
            return (exc.rcvd.code if exc.rcvd is not None else None), frames
        except TimeoutError:
            continue
        frames.append(json.loads(raw) if isinstance(raw, str) else {"binary": raw})


async def close_all() -> None:
    """Close every socket these helpers opened (call before the server stops)."""
    while _opened:
        ws = _opened.pop()
        await ws.close()
