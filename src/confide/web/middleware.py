"""HTTP middleware: widget CORS, CSRF origin check for cookie sessions, security headers, and the
record of refused widget origins (so a site owner sees in Settings why the widget says nothing)."""

from __future__ import annotations

import time

import structlog
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from confide.core.errors import DomainError
from confide.permissions.access import site_by_key
from confide.web.origins import origin_allowed, server_origin
from confide.web.security import UNSAFE_METHODS, add_security_headers, cookie_write_allowed, served_over_https
from confide.web.state import State
from confide.workspaces import service as workspaces

log = structlog.get_logger(__name__)
WIDGET_PREFIX = "/api/v1/widget/"


class RefusalRecorder:
    """Rate-limits the writes of refused origins in memory, so that a flood from one page (or many)
    cannot hammer the database: one write per (site, origin) per ``interval_s``, and at most
    ``burst`` writes per second overall (token bucket)."""

    def __init__(self, *, interval_s: float = 60.0, per_second: float = 2.0, burst: float = 10.0) -> None:
        self._last: dict[tuple[str, str], float] = {}
        self._interval = interval_s
        self._rate = per_second
        self._burst = burst
        self._tokens = burst
        self._stamp = time.monotonic()

    def admit(self, site_id: str, origin: str) -> bool:
        now = time.monotonic()
        key = (site_id, origin[:300])
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            return False
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        if len(self._last) > 10_000:
            self._last.clear()
        self._last[key] = now
        return True


class SecurityMiddleware:
    """One pass over every HTTP request (pure ASGI: cheap, and WebSockets pass untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._sites: dict[str, tuple[float, str | None, list[str]]] = {}
        self.refusals = RefusalRecorder()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        origin = headers.get("origin")
        method = scope["method"]
        cors_origin: str | None = None
        refused_site: str | None = None
        if path.startswith(WIDGET_PREFIX):
            site_id, allowed = await self._site(scope, path)
            if origin and origin_allowed(origin, allowed):
                cors_origin = origin
            elif origin and site_id is not None:
                refused_site = site_id  # the handler refuses it (403); the owner is told in Settings
        elif method in UNSAFE_METHODS:
            state: State = scope["app"].state.confide
            own = server_origin(scope["scheme"], headers.get("host"), state.rt.settings.public_url)
            if not cookie_write_allowed(method, headers, own):
                await _refuse(send)
                return

        https = served_over_https(scope["scheme"], scope["app"].state.confide.rt.settings)  # HSTS

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                add_security_headers(out, path, https=https)
                if cors_origin:
                    out["Access-Control-Allow-Origin"] = cors_origin
                    out["Vary"] = "Origin"
            await send(message)

        await self.app(scope, receive, send_wrapper)
        if refused_site is not None and origin and self.refusals.admit(refused_site, origin):
            await self._record(scope, refused_site, origin)

    async def _record(self, scope: Scope, site_id: str, origin: str) -> None:
        state: State = scope["app"].state.confide
        try:
            async with state.rt.db.unit_of_work() as uow:
                await workspaces.record_refused_origin(uow, site_id, origin)
        except Exception:  # a hint for the owner must never break the answer (already sent)
            log.warning("refused_origin_not_recorded", site_id=site_id)

    async def _site(self, scope: Scope, path: str) -> tuple[str | None, list[str]]:
        site_key = path[len(WIDGET_PREFIX) :].split("/", 1)[0]
        now = time.monotonic()
        hit = self._sites.get(site_key)
        if hit and hit[0] > now:
            return hit[1], hit[2]
        state: State = scope["app"].state.confide
        site_id: str | None = None
        try:
            async with state.rt.db.unit_of_work(readonly=True) as uow:
                site = await site_by_key(uow.session, site_key)
                site_id, origins = site.id, list(site.allowed_origins)
        except DomainError:
            origins = []
        if len(self._sites) > 10_000:
            self._sites.clear()
        self._sites[site_key] = (now + 5.0, site_id, origins)
        return site_id, origins


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
