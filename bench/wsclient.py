"""A minimal, callback-based WebSocket client for the load generator.

The ``websockets`` asyncio client costs several coroutine switches and futures per frame; at
tens of thousands of frames per second that would make the load generator the bottleneck.
This client is an ``asyncio.Protocol``: frames are parsed in ``data_received`` and handed to a
plain callback, and sending is one ``transport.write``. It implements only what the benchmark
needs (RFC 6455 client side): the opening handshake with extra headers, masked text frames,
unfragmented and fragmented text/binary frames from the server, ping→pong, and the close
handshake. No extensions (no permessage-deflate).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import random
import struct
from collections.abc import Callable
from typing import cast

try:  # C implementation shipped with the ``websockets`` package
    from websockets.speedups import apply_mask as _apply_mask
except ImportError:  # pragma: no cover - fallback, slower but correct

    def _apply_mask(data: bytes | bytearray | memoryview, mask: bytes | bytearray) -> bytes:
        n = len(data)
        key = (bytes(mask) * (n // 4 + 1))[:n]
        return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_rand32 = random.Random(os.urandom(8)).getrandbits

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class HandshakeError(ConnectionError):
    """The server refused the upgrade (e.g. HTTP 403 for a foreign Origin)."""

    def __init__(self, status: int, head: str) -> None:
        super().__init__(f"handshake refused: HTTP {status}")
        self.status = status
        self.head = head


def _noop(_: bytes) -> None:
    return None


class WSClient(asyncio.Protocol):
    """One client WebSocket. ``on_text`` receives the raw UTF-8 payload of every text frame."""

    def __init__(self, on_text: Callable[[bytes], None] = _noop) -> None:
        self.on_text = on_text
        self.on_close: Callable[[WSClient], None] | None = None
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None
        self.frames_in = 0
        self.bytes_in = 0
        self._buf = bytearray()
        self._handshaking = True
        self._expected_accept = ""
        self._request = b""
        self._frag: bytearray | None = None
        self._frag_op = 0

    # -- opening handshake -------------------------------------------------------------
    def build_request(self, host: str, port: int, path: str, headers: dict[str, str]) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        digest = hashlib.sha1((key + _GUID).encode(), usedforsecurity=False).digest()
        self._expected_accept = base64.b64encode(digest).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host}:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self._request = ("\r\n".join(lines) + "\r\n\r\n").encode()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self._request)

    def _handshake(self) -> None:
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > 65536:
                self._fail(HandshakeError(0, "response head too large"))
            return
        head = bytes(self._buf[:end]).decode("latin-1")
        del self._buf[: end + 4]
        status_line, *header_lines = head.split("\r\n")
        parts = status_line.split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if status != 101 or headers.get("sec-websocket-accept") != self._expected_accept:
            self._fail(HandshakeError(status, head))
            return
        self._handshaking = False
        if not self.opened.done():
            self.opened.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()

    # -- frames ------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        buf = self._buf
        buf += data
        if self._handshaking:
            self._handshake()
            if self._handshaking:
                return
        pos = 0
        n = len(buf)
        while n - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            length = b1 & 0x7F
            hdr = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                hdr = 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = struct.unpack_from("!Q", buf, pos + 2)[0]
                hdr = 10
            if b1 & 0x80:  # servers must not mask; tolerate it anyway
                hdr += 4
            end = pos + hdr + length
            if end > n:
                break
            payload = bytes(buf[pos + hdr : end])
            if b1 & 0x80:
                payload = _apply_mask(payload, bytes(buf[pos + hdr - 4 : pos + hdr]))
            pos = end
            self._frame(b0 & 0x80, b0 & 0x0F, payload)
        if pos:
            del buf[:pos]

    def _frame(self, fin: int, opcode: int, payload: bytes) -> None:
        if opcode in (OP_TEXT, OP_BINARY):
            if fin:
                self.frames_in += 1
                if opcode == OP_TEXT:
                    self.on_text(payload)
            else:
                self._frag = bytearray(payload)
                self._frag_op = opcode
        elif opcode == OP_CONT:
            if self._frag is None:
                return
            self._frag += payload
            if fin:
                whole = bytes(self._frag)
                self._frag = None
                self.frames_in += 1
                if self._frag_op == OP_TEXT:
                    self.on_text(whole)
        elif opcode == OP_PING:
            self._send_frame(OP_PONG, payload)
        elif opcode == OP_CLOSE:
            if self.close_code is None:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                self._send_frame(OP_CLOSE, payload[:2])
            if self.transport is not None:
                self.transport.close()

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        n = len(payload)
        mask = _rand32(32).to_bytes(4, "little")
        if n < 126:
            head = bytes((0x80 | opcode, 0x80 | n))
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0xFE, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0xFF, n)
        t.write(head + mask + _apply_mask(payload, mask))

    def send_text(self, text: str) -> None:
        self._send_frame(OP_TEXT, text.encode())

    def send_bytes_as_text(self, data: bytes) -> None:
        self._send_frame(OP_TEXT, data)

    @property
    def is_open(self) -> bool:
        return not self._handshaking and self.transport is not None and not self.transport.is_closing()

    def close(self, code: int = 1000) -> None:
        if self.close_code is None:
            self.close_code = code
            self._send_frame(OP_CLOSE, struct.pack("!H", code))
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.close_code is None:
            self.close_code = 1006
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"connection lost during handshake: {exc}"))
        if not self.closed.done():
            self.closed.set_result(None)
        if self.on_close is not None:
            self.on_close(self)


async def connect(
    host: str,
    port: int,
    path: str,
    headers: dict[str, str] | None = None,
    on_text: Callable[[bytes], None] = _noop,
    open_timeout: float = 10.0,
) -> WSClient:
    """Open a WebSocket and wait for the handshake; raise ``HandshakeError`` on refusal."""
    loop = asyncio.get_running_loop()
    proto = WSClient(on_text)
    proto.build_request(host, port, path, headers or {})
    await asyncio.wait_for(loop.create_connection(lambda: proto, host, port), open_timeout)
    try:
        await asyncio.wait_for(asyncio.shield(proto.opened), open_timeout)
    except BaseException:
        if proto.transport is not None:
            proto.transport.abort()
        raise
    return proto
