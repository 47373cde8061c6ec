"""create_app(settings): routers, middleware, error rendering and the process lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.routing import WebSocketRoute

from confide import __version__
from confide.config import Settings
from confide.core.errors import DomainError
from confide.core.logging import configure as configure_logging
from confide.core.runtime import Runtime, build_runtime
from confide.realtime.hub import Hub
from confide.realtime.presence import Presence
from confide.realtime.writer import MessageWriter
from confide.web.api import admin, auth, backoffice, widget
from confide.web.dashboard import routes as dashboard
from confide.web.middleware import SecurityMiddleware
from confide.web.state import State
from confide.web.widget import routes as widget_assets
from confide.web.ws.operator import operator_socket
from confide.web.ws.visitor import visitor_socket
from confide.worker import scheduler


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> FastAPI:
    settings = settings or (runtime.settings if runtime else Settings())
    configure_logging(settings.log_level, json=settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = runtime or build_runtime(settings)
        await rt.broker.start()
        writer = MessageWriter(rt)
        presence = Presence(rt)
        app.state.confide = State(rt=rt, hub=Hub(rt.broker), writer=writer, presence=presence)
        rt.tasks.extend(writer.start())
        rt.tasks.append(asyncio.create_task(presence.run(), name="presence"))
        if rt.db.is_sqlite:
            rt.tasks.append(asyncio.create_task(rt.db.checkpoint_forever(), name="wal-checkpoint"))
        if settings.run_worker:
            rt.tasks.append(asyncio.create_task(scheduler.run(rt), name="scheduler"))
        try:
            yield
        finally:
            await presence.stop()
            await rt.close()

    app = FastAPI(
        title="Confide", version=__version__, lifespan=lifespan, description="Self-hostable, GDPR-compliant live chat."
    )

    @app.exception_handler(DomainError)
    async def _domain_error(_request: Request, exc: DomainError) -> JSONResponse:
        return JSONResponse({"detail": exc.message, "code": exc.code}, status_code=exc.status)

    @app.get("/healthz", tags=["ops"])
    async def healthz(request: Request) -> dict[str, str]:
        state: State = request.app.state.confide
        async with state.rt.db.unit_of_work(readonly=True) as uow:
            await uow.session.connection()
        return {"status": "ok", "version": __version__}

    for module in (auth, admin, backoffice, widget):
        app.include_router(module.router)
    app.include_router(widget_assets.router)
    app.include_router(dashboard.router)
    # Plain Starlette routes: the sockets need no dependency injection, and FastAPI's per-connection
    # machinery would stay alive for as long as each socket does.
    app.router.routes.append(WebSocketRoute("/ws/visitor", visitor_socket))
    app.router.routes.append(WebSocketRoute("/ws/operator", operator_socket))
    static = Path(__file__).parent / "web" / "dashboard" / "static"
    app.mount("/static", StaticFiles(directory=static), name="static")
    app.add_middleware(SecurityMiddleware)
    return app
