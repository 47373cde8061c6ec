"""Server frames on the wire: their JSON encoding, the error frame and the close codes, in one place.

Every server frame is a JSON object with a ``type`` (docs/protocol.md). Frames are encoded once
(an event is encoded by the hub once for every listener) without spaces and with non-ASCII text
kept as UTF-8.
"""

from __future__ import annotations

import json
from typing import Any

from confide.core.errors import DomainError

# Close codes (docs/protocol.md, "Close codes").
POLICY = 1008  # Origin refused, too many bad frames
TOO_LARGE = 1009  # a frame over the size limit
SLOW_CONSUMER = 1013  # the socket's send queue is full
BAD_TOKEN = 4401  # missing, bad or expired token / session, malformed hello
REVOKED = 4403  # access revoked (operator disabled, logged out, session expired)
NO_HELLO = 4408  # no hello in time
TOO_MANY_SOCKETS = 4429  # over the cap of open sockets for this visitor
ERASED = 4410  # the visitor's data was erased: the token is refused from now on

PONG = '{"type":"pong"}'
MAX_REF = 64

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def encode(frame: dict[str, Any]) -> str:
    """A server frame as JSON text."""
    return _dumps(frame)


def error_frame(code: str, message: str, ref: object = None) -> str:
    """``{"type": "error", "code", "message", "ref"?}``; ``ref`` echoes a client id of at most 64 characters."""
    frame: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if isinstance(ref, str) and len(ref) <= MAX_REF:
        frame["ref"] = ref
    return _dumps(frame)


def domain_error_frame(error: DomainError, ref: object = None) -> str:
    """A refused action. ``forbidden`` is answered as ``not_found``: denial looks like absence."""
    return error_frame(error.code if error.code != "forbidden" else "not_found", error.message, ref)


def message_left(offline_request_id: str) -> str:
    """The answer to ``leave_message``: the waiting chat became this offline request."""
    return _dumps({"type": "message_left", "offline_request_id": offline_request_id})
