"""Confide's own access log (uvicorn's is off: it prints client addresses and full query strings).

One line per HTTP request: method, the route *template* (``/app/chats/{conversation_id}``, never the
raw path or its query), status, duration in ms and, when known, the operator's id. No address,
unless ``CONFIDE_LOG_CLIENT_ADDRESS`` asks for a truncated (``/24``, ``/48``) or keyed form (an
HMAC under a key that lives only in this process's memory, so lines of one run can be correlated
and nothing else). WebSockets pass untouched: their endpoints log their own pseudonymous lines.
"""

from __future__ import annotations

import ipaddress
import time
from typing import Any

import structlog
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from confide.auth.actors import OperatorActor
from confide.core import crypto
from confide.web.client_address import of_app_scope

log = structlog.get_logger("confide.access")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_template(scope: Scope, root_path: str = "") -> str:
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return f"{path}/{{path}}" if isinstance(route, Mount) else path
    mounted = scope.get("root_path", "")
    if isinstance(mounted, str) and mounted != root_path:  # inside a Mount (static files)
        return f"{mounted[len(root_path):]}/{{path}}"
    return "<unmatched>"


def client_form(scope: Scope, mode: str, key: bytes) -> str | None:
    client = of_app_scope(scope) if mode != "none" else None  # after trusted proxies
    if not client:
        return None
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return None
    if mode == "truncated":
        prefix = 24 if address.version == 4 else 48
        return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))
    return crypto.keyed_pseudonym(key, str(address))


class AccessLog:
    def __init__(self, app: ASGIApp, *, client_address: str = "none") -> None:
        self.app = app
        self.mode = client_address
        self._key = crypto.random_key()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        root_path = scope.get("root_path", "")

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            actor = (scope.get("state") or {}).get("operator")
            method = scope.get("method", "")
            fields: dict[str, Any] = {
                "method": method if method in _METHODS else "OTHER",
                "route": route_template(scope, root_path),
                "status": status,
                "ms": round((time.perf_counter() - started) * 1000, 1),
            }
            if isinstance(actor, OperatorActor):
                fields["operator_id"] = actor.operator_id
            client = client_form(scope, self.mode, self._key)
            if client:
                fields["client"] = client
            log.info("http", **fields)
