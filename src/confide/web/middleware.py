"""HTTP middleware: widget CORS, CSRF origin check for cookie sessions, security headers."""

from __future__ import annotations

import time

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from confide.core.errors import DomainError
from confide.permissions.access import site_by_key
from confide.web.origins import origin_allowed, origin_of_url, same_origin, server_origin
from confide.web.state import State

WIDGET_PREFIX = "/api/v1/widget/"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


class SecurityMiddleware:
    """One pass over every HTTP request (pure ASGI: cheap, and WebSockets pass untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._origins: dict[str, tuple[float, list[str]]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        origin = headers.get("origin")
        method = scope["method"]
        cors_origin: str | None = None
        if path.startswith(WIDGET_PREFIX):
            if origin and origin_allowed(origin, await self._allowed(scope, path)):
                cors_origin = origin
        elif method in UNSAFE and "confide_session=" in headers.get("cookie", ""):
            # Cookie-authenticated writes must come from our own pages (SameSite is the first line).
            state: State = scope["app"].state.confide
            own = server_origin(scope["scheme"], headers.get("host"), state.rt.settings.public_url)
            if not same_origin(origin or origin_of_url(headers.get("referer")), own):
                await _refuse(send)
                return
        is_page = not path.startswith(("/api/", "/widget", "/static/", "/healthz", "/openapi.json", "/docs"))

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                out.setdefault("X-Content-Type-Options", "nosniff")
                out.setdefault("Referrer-Policy", "same-origin")
                if cors_origin:
                    out["Access-Control-Allow-Origin"] = cors_origin
                    out["Vary"] = "Origin"
                if is_page and path != "/demo":
                    out.setdefault("Content-Security-Policy", _CSP)
                    out.setdefault("X-Frame-Options", "DENY")
            await send(message)

        await self.app(scope, receive, send_wrapper)

    async def _allowed(self, scope: Scope, path: str) -> list[str]:
        site_key = path[len(WIDGET_PREFIX) :].split("/", 1)[0]
        now = time.monotonic()
        hit = self._origins.get(site_key)
        if hit and hit[0] > now:
            return hit[1]
        state: State = scope["app"].state.confide
        try:
            async with state.rt.db.unit_of_work(readonly=True) as uow:
                origins = list((await site_by_key(uow.session, site_key)).allowed_origins)
        except DomainError:
            origins = []
        if len(self._origins) > 10_000:
            self._origins.clear()
        self._origins[site_key] = (now + 5.0, origins)
        return origins


async def _refuse(send: Send) -> None:
    body = b'{"detail":"cross-site request refused","code":"forbidden"}'
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
