"""The sockets' own door: an upgrade to ``/ws/visitor`` or ``/ws/operator`` goes straight to its
endpoint, past FastAPI's exception and exit-stack layers and the router. It is the innermost user
middleware: every middleware added in ``app.py`` (access log, security, a client-address rule)
still sees the socket's scope first.

Each of those layers is a coroutine frame, and FastAPI adds per-connection state to the scope,
all kept alive for as long as the socket is open; for an idle visitor socket that was about a
tenth of its memory (ADR 0017). The endpoints are the same ones the router lists
(``app.py``), so a path this door does not know (a ``root_path`` prefix) still reaches them.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from confide.web.ws.operator import operator_socket
from confide.web.ws.visitor import visitor_socket

SOCKETS = {"/ws/visitor": visitor_socket, "/ws/operator": operator_socket}


class SocketFrontDoor:
    """Innermost user middleware: WebSocket scopes of the two socket paths go to their endpoint."""

    __slots__ = ("app",)

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            endpoint = SOCKETS.get(scope["path"])
            if endpoint is not None:
                await endpoint(WebSocket(scope, receive=receive, send=send))
                return
        await self.app(scope, receive, send)
