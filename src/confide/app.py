"""create_app(settings): routers, middleware, error rendering and the process lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import WebSocketRoute

from confide import __version__
from confide.config import Settings
from confide.core.errors import DomainError
from confide.core.logging import configure as configure_logging
from confide.core.runtime import Runtime, build_runtime
from confide.erasure import replay as erasure_replay
from confide.realtime import key_eviction
from confide.realtime.hub import Hub
from confide.realtime.presence import Presence
from confide.realtime.writer import MessageWriter
from confide.web import dashboard
from confide.web.access_log import AccessLog
from confide.web.api import activity, admin, auth, backoffice, widget
from confide.web.api import consent as consent_api  # ---- consent
from confide.web.api import erasure as erasure_api  # erasure (ADR 0028)
from confide.web.api import privacy_requests as privacy_requests_api  # ADR 0029
from confide.web.api import prospects as prospects_api
from confide.web.api import rectification as rectification_api  # rectification (ADR 0032)
from confide.web.api import redaction as redaction_api
from confide.web.api import restriction as restriction_api  # restriction of processing (ADR 0031)
from confide.web.api import subjects as subjects_api
from confide.web.dashboard.errors import page_error
from confide.web.denials import record_denial
from confide.web.middleware import SecurityMiddleware
from confide.web.permits import public
from confide.web.security import is_page
from confide.web.state import State
from confide.web.widget import routes as widget_assets
from confide.web.ws.front import SocketFrontDoor
from confide.web.ws.operator import operator_socket
from confide.web.ws.visitor import visitor_socket
from confide.worker import scheduler
from confide.worker.jobs import JobRunner

_CODES = {400: "invalid", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "invalid", 409: "conflict",
          413: "too_large", 422: "invalid", 429: "rate_limited"}


def _clean(text: object) -> str:
    return str(text)[:300].encode("utf-8", "replace").decode("utf-8")


def _plain_error(error: Mapping[str, Any]) -> dict[str, Any]:
    loc = [item if isinstance(item, int) else _clean(item) for item in error.get("loc", ())][:10]
    return {"type": _clean(error.get("type", "invalid")), "loc": loc, "msg": _clean(error.get("msg", "is not valid"))}


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> FastAPI:
    settings = settings or (runtime.settings if runtime else Settings())
    configure_logging(settings.log_level, json=settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = runtime or build_runtime(settings)
        await rt.broker.start()
        # A restored database backup may hold people erased since: the erasure journal (kept
        # outside the database) says so, and they are erased again before anyone is served (ADR 0033).
        await erasure_replay.at_startup(rt)
        writer = MessageWriter(rt)
        presence = Presence(rt)
        app.state.confide = State(rt=rt, hub=Hub(rt.broker), writer=writer, presence=presence)
        await key_eviction.follow(rt, app.state.confide.hub)  # destroyed data keys leave every node's cache
        rt.tasks.extend(writer.start())
        rt.tasks.append(asyncio.create_task(presence.run(), name="presence"))
        if rt.db.is_sqlite:
            rt.tasks.append(asyncio.create_task(rt.db.checkpoint_forever(), name="wal-checkpoint"))
        if settings.run_worker:
            rt.tasks.append(asyncio.create_task(scheduler.run(rt), name="scheduler"))
            rt.tasks.append(asyncio.create_task(JobRunner(rt).run(), name="jobs"))  # durable jobs (ADR 0013)
        try:
            yield
        finally:
            await presence.stop()
            await rt.close()

    app = FastAPI(
        title="Confide", version=__version__, lifespan=lifespan, description="Self-hostable, GDPR-compliant live chat."
    )

    @app.exception_handler(DomainError)
    async def _domain_error(request: Request, exc: DomainError) -> Response:
        if is_page(request.url.path):  # a dashboard page: an error page, not JSON
            return await page_error(request, exc)
        await record_denial(request, exc)  # access.denied for a 403 (audit log)
        # The message may quote the input (a field's name): keep it encodable and short.
        return JSONResponse(
            {"detail": _clean(exc.message), "code": exc.code, **exc.extra()},
            status_code=exc.status,
            headers={"Cache-Control": "no-store"} if exc.extra() else None,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """FastAPI's own refusals (unparsable body, 404, 405) in the API's error shape."""
        if is_page(request.url.path) or exc.status_code < 400:
            return await http_exception_handler(request, exc)  # e.g. the log-in redirect (303)
        return JSONResponse(
            {"detail": str(exc.detail), "code": _CODES.get(exc.status_code, "invalid")},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's 422, without echoing the input: it may be huge, personal, not JSON-encodable
        (``1e999`` is infinity) or not even UTF-8-encodable (a lone surrogate)."""
        return JSONResponse({"detail": [_plain_error(e) for e in exc.errors()[:20]]}, status_code=422)

    @app.get("/healthz", tags=["ops"], dependencies=[public()])
    async def healthz(request: Request) -> dict[str, str]:
        state: State = request.app.state.confide
        async with state.rt.db.unit_of_work(readonly=True) as uow:
            await uow.session.connection()
        return {"status": "ok", "version": __version__}

    # activity, prospects, consent and redaction: ADR 0019, 0020, 0018, 0021
    for module in (auth, admin, backoffice, widget, activity, prospects_api, consent_api, redaction_api,
                   erasure_api, rectification_api, subjects_api, restriction_api):
        app.include_router(module.router)
    app.include_router(privacy_requests_api.router)  # data-subject requests (ADR 0029)
    app.include_router(widget_assets.router)
    app.include_router(dashboard.router)
    # Plain Starlette routes: the sockets need no dependency injection, and FastAPI's per-connection
    # machinery would stay alive for as long as each socket does.
    app.router.routes.append(WebSocketRoute("/ws/visitor", visitor_socket))
    app.router.routes.append(WebSocketRoute("/ws/operator", operator_socket))
    static = Path(__file__).parent / "web" / "dashboard" / "static"
    app.mount("/static", StaticFiles(directory=static), name="static")
    app.add_middleware(SocketFrontDoor)  # innermost: sockets past FastAPI's layers and the router (ADR 0017)
    app.add_middleware(SecurityMiddleware)
    app.add_middleware(AccessLog, client_address=settings.log_client_address)  # outermost: sees every answer
    return app
