"""Reading client frames: the size limit, decoding and validation against the socket's union, and
the answer to every frame that is refused (docs/protocol.md, "Error frame").

- over ``max_frame_bytes``: closed with 1009;
- binary, not JSON, not an object, no string ``type``, nested too deeply, a number out of range:
  ``bad_frame`` (20 in a row close the socket with 1008);
- a ``type`` this socket does not know: ``unknown_type``;
- a field that fails its model: ``invalid`` (``not_found`` for a malformed id, ``unauthorized``
  for a malformed token), with one short sentence and ``ref`` echoing the frame's ``client_id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar, overload

from pydantic import TypeAdapter, ValidationError
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from confide.realtime.outbox import Outbox
from confide.realtime.wire import POLICY, TOO_LARGE, error_frame
from confide.web.ws.schemas import FIELD_ERRORS

F = TypeVar("F")
MAX_BAD_FRAMES = 20
FLUSH_BEFORE_CLOSE_S = 1.0
MAX_TYPE_ECHO = 40


@dataclass(frozen=True, slots=True)
class Refused:
    """Why a frame was refused: the error frame's ``code``, ``message`` and ``ref``."""

    code: str
    message: str
    ref: object = None
    type: str = ""  # the frame's type, when it had a string one

    def frame(self) -> str:
        return error_frame(self.code, self.message, self.ref)


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def explain(exc: ValidationError, text: str) -> Refused:
    """The documented answer to a frame the union refused (only on this, the failure, path is
    the text decoded a second time, to find its ``type`` and ``client_id``)."""
    errors = exc.errors(include_url=False, include_input=False)
    first: dict[str, Any] = dict(errors[0]) if errors else {"type": "", "loc": (), "msg": ""}
    if first["type"] == "json_invalid":
        reason = str((first.get("ctx") or {}).get("error", ""))
        if "recursion" in reason:
            return Refused("bad_frame", "the frame is nested too deeply")
        if "out of range" in reason:
            return Refused("bad_frame", "the frame holds a number out of range")
        return Refused("bad_frame", "a frame must be a JSON object with a type")
    raw = _loads(text)
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        return Refused("bad_frame", "a frame must be a JSON object with a type")
    ref, kind = raw.get("client_id"), raw["type"]
    if first["type"] == "union_tag_invalid":
        return Refused("unknown_type", f"unknown frame type: {kind[:MAX_TYPE_ECHO]}", ref, kind)
    loc = first["loc"]
    field = str(loc[1]) if len(loc) > 1 else ""
    if field in FIELD_ERRORS:
        code, message = FIELD_ERRORS[field]
        return Refused(code, message, ref, kind)
    if not field and first["type"] == "value_error":  # a rule across fields (e.g. transfer's target)
        return Refused("invalid", str((first.get("ctx") or {}).get("error", "invalid frame"))[:200], ref, kind)
    return Refused("invalid", f"{field or 'frame'}: {first['msg']}"[:200], ref, kind)


class FrameReader(Generic[F]):
    """Reads and validates frames; oversize closes the socket, other refused frames are answered."""

    __slots__ = ("_adapter", "_bad", "_max", "_outbox", "_ws")

    def __init__(self, ws: WebSocket, outbox: Outbox, max_bytes: int, adapter: TypeAdapter[F]) -> None:
        self._ws = ws
        self._outbox = outbox
        self._max = max_bytes
        self._adapter = adapter
        self._bad = 0

    @overload
    async def read(self, *, answer: Literal[True]) -> F | None: ...

    @overload
    async def read(self, *, answer: Literal[False]) -> F | Refused | None: ...

    async def read(self, *, answer: bool) -> F | Refused | None:
        """The next valid frame, or None when the socket is gone (or was closed here). A frame that
        is a JSON object with a string ``type`` but fails its schema is answered here and skipped
        (``answer=True``) or returned as ``Refused`` (``answer=False``, for the ``hello``). One
        coroutine, not two nested ones: an idle socket waits in it for its whole life."""
        while True:
            try:
                message = await self._ws.receive()
            except (WebSocketDisconnect, RuntimeError):
                return None
            if message["type"] == "websocket.disconnect":
                return None
            text = message.get("text")
            if text is None:
                data = message.get("bytes") or b""
                if len(data) > self._max:
                    await close(self._ws, TOO_LARGE)
                    return None
                if await self._bad_frame(Refused("bad_frame", "binary frames are not supported; send JSON text")):
                    return None
                continue
            size = len(text)  # characters; bytes only when that could matter (at most 4 per character)
            if size > self._max or (size * 4 > self._max and len(text.encode("utf-8", "surrogatepass")) > self._max):
                await close(self._ws, TOO_LARGE)
                return None
            try:
                frame = self._adapter.validate_json(text)
            except ValidationError as exc:
                refused = explain(exc, text)
                if refused.code == "bad_frame":
                    if await self._bad_frame(refused):
                        return None
                    continue
                self._bad = 0
                if not answer:
                    return refused
                self._outbox.put(refused.frame())
                continue
            self._bad = 0
            return frame

    async def _bad_frame(self, refused: Refused) -> bool:
        """Count a bad frame; True when that was one too many and the socket is closed."""
        self._bad += 1
        if self._bad >= MAX_BAD_FRAMES:
            with contextlib.suppress(TimeoutError):  # the error frames already queued go out first
                await asyncio.wait_for(self._outbox.flush(), FLUSH_BEFORE_CLOSE_S)
            await close(self._ws, POLICY)
            return True
        self._outbox.put(refused.frame())
        return False


class ClientNoiseFilter(logging.Filter):
    """uvicorn logs a text frame that is not UTF-8 as an exception, with a traceback, then closes
    the socket with 1007. That is a client's bad input with a documented answer, not a server
    fault: keep one warning line, without the traceback."""

    NOISE = ("Invalid UTF-8 sequence received from client.",)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg in self.NOISE:
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def quiet_client_noise() -> None:
    """Install ``ClientNoiseFilter`` on uvicorn's error logger once (imported with the sockets)."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, ClientNoiseFilter) for f in logger.filters):
        logger.addFilter(ClientNoiseFilter())


quiet_client_noise()


def too_many_connections() -> JSONResponse:
    """The answer to an upgrade from a client address that holds its maximum of open sockets."""
    return JSONResponse(
        {"detail": "too many open connections from your address", "code": "rate_limited"}, status_code=429
    )


def frame_sender(ws: WebSocket) -> Callable[[str], Awaitable[None]]:
    """An accepted socket's text frames, handed straight to the server's ASGI ``send``.

    Starlette's ``send_text`` re-checks the socket's state and re-raises ``OSError`` on every
    frame; the outbox is the only sender of frames once the socket is accepted and stops at the
    first error of any kind, so those checks bought nothing but time on the relay's hot path
    (bench/profile.py). Closing still goes through Starlette (``close`` below).
    """
    send = ws._send  # the ASGI callable Starlette was given, kept for the socket's life

    async def send_text(text: str) -> None:
        await send({"type": "websocket.send", "text": text})

    return send_text


async def close(ws: WebSocket, code: int) -> None:
    with contextlib.suppress(Exception):  # already closed
        await ws.close(code)
