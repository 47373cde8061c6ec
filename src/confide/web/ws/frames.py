"""Frame decoding and the parts every socket shares: size limit, bad-frame counting, error frames."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from confide.core.errors import DomainError
from confide.realtime.outbox import Outbox

MAX_BAD_FRAMES = 20
POLICY = 1008
TOO_LARGE = 1009
BAD_TOKEN = 4401
REVOKED = 4403
NO_HELLO = 4408
FLUSH_BEFORE_CLOSE_S = 1.0


def error_frame(code: str, message: str, ref: object = None) -> str:
    frame: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if isinstance(ref, str) and len(ref) <= 64:
        frame["ref"] = ref
    return json.dumps(frame, separators=(",", ":"))


def domain_error_frame(error: DomainError, ref: object = None) -> str:
    return error_frame(error.code if error.code != "forbidden" else "not_found", error.message, ref)


def encode(frame: dict[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


class FrameReader:
    """Reads frames; oversize closes the socket, other bad frames answer an error and count."""

    def __init__(self, ws: WebSocket, outbox: Outbox, max_bytes: int) -> None:
        self._ws = ws
        self._outbox = outbox
        self._max = max_bytes
        self._bad = 0

    async def next(self) -> dict[str, Any] | None:
        """The next valid frame, or None when the socket is gone (or was closed here)."""
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
                if await self._bad_frame("bad_frame", "binary frames are not supported; send JSON text"):
                    return None
                continue
            if len(text) > self._max or len(text.encode("utf-8")) > self._max:
                await close(self._ws, TOO_LARGE)
                return None
            try:
                frame = json.loads(text)
            except ValueError:
                frame = None
            if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
                if await self._bad_frame("bad_frame", "a frame must be a JSON object with a type"):
                    return None
                continue
            self._bad = 0
            return frame

    async def _bad_frame(self, code: str, message: str) -> bool:
        self._bad += 1
        if self._bad >= MAX_BAD_FRAMES:
            with contextlib.suppress(TimeoutError):  # the error frames already queued go out first
                await asyncio.wait_for(self._outbox.flush(), FLUSH_BEFORE_CLOSE_S)
            await close(self._ws, POLICY)
            return True
        self._outbox.put(error_frame(code, message))
        return False

    def unknown(self, frame: dict[str, Any]) -> None:
        self._outbox.put(
            error_frame("unknown_type", f"unknown frame type: {str(frame['type'])[:40]}", frame.get("client_id"))
        )


async def close(ws: WebSocket, code: int) -> None:
    with contextlib.suppress(Exception):  # already closed
        await ws.close(code)
