"""Shared fixtures. Every database test runs on SQLite and on PostgreSQL (a database of its own per run).

- ``rt``: a Runtime on a fresh database (SQLite: a new file per test; PostgreSQL: tables truncated).
- ``client``: an httpx client on the ASGI app in process (lifespan running).
- ``live``: the same app served by a real uvicorn on 127.0.0.1 and a free port.
- ``world``: a workspace with a site, a department, an administrator and an operator.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

import confide.models  # noqa: F401 - every table on Base.metadata
from confide.app import create_app
from confide.config import Settings
from confide.core import clock
from confide.core.broker import MemoryBroker
from confide.core.crypto import generate_key
from confide.core.db import Base
from confide.core.runtime import Runtime, build_runtime
from tests import factories

PG_ADMIN_URL = os.environ.get("CONFIDE_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
MASTER_KEY = generate_key()
PASSWORD = "correct horse battery staple"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _in_thread(coro_fn: Any) -> Any:
    """Run a coroutine on a private loop (session set-up outside the tests' loop)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro_fn()).result()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A PostgreSQL database of this run's own, with the schema; dropped at the end."""
    name = f"confide_test_{os.getpid()}_{os.urandom(3).hex()}"
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name

    async def create() -> None:
        admin = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        await admin.dispose()
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        await engine.dispose()

    async def drop() -> None:
        admin = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()

    _in_thread(create)
    yield url
    _in_thread(drop)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def settings(db_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    if db_kind == "postgresql":
        url: str = request.getfixturevalue("pg_url")
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
            await conn.execute(text(f"TRUNCATE {names} CASCADE"))
        await engine.dispose()
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'confide.db'}"
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        await engine.dispose()
    return Settings(
        data_dir=tmp_path, database_url=url, master_key=MASTER_KEY, argon2_time_cost=1, argon2_memory_kib=8,
        log_level="warning", run_worker=False, sqlite_synchronous="NORMAL",
    )


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    clock.reset()
    yield
    clock.reset()


@pytest.fixture
async def rt(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = build_runtime(settings, broker=MemoryBroker())
    yield runtime
    await runtime.close()


@dataclass
class World:
    workspace_id: str
    site_id: str
    site_key: str
    origin: str
    department_id: str
    admin_id: str
    admin_email: str
    operator_id: str
    operator_email: str


@pytest.fixture
async def world(rt: Runtime) -> World:
    origin = "https://shop.example"
    async with rt.db.unit_of_work() as uow:
        ws = await factories.workspace(uow)
        site = await factories.site(uow, workspace_id=ws.id, allowed_origins=[origin])
        dept = await factories.department(uow, workspace_id=ws.id, site_id=site.id)
        admin = await factories.operator(rt, uow, workspace_id=ws.id, email="admin@shop.example", role="admin",
                                         department_ids=[dept.id], name="Ada Admin")
        op = await factories.operator(rt, uow, workspace_id=ws.id, email="mia@shop.example",
                                      department_ids=[dept.id], name="Mia")
    return World(ws.id, site.id, site.site_key, origin, dept.id, admin.id, admin.email, op.id, op.email)


@pytest.fixture
async def app(rt: Runtime) -> AsyncIterator[Any]:
    application = create_app(runtime=rt)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@dataclass
class Live:
    base: str  # http://127.0.0.1:PORT
    ws: str  # ws://127.0.0.1:PORT
    app: Any


@pytest.fixture
async def live(rt: Runtime) -> AsyncIterator[Live]:
    """The app behind a real uvicorn (websockets-sansio, 16 KiB frames, no compression) on loopback."""
    application = create_app(runtime=rt)
    port = free_port()
    config = uvicorn.Config(application, host="127.0.0.1", port=port, ws="websockets-sansio",
                            ws_per_message_deflate=False, ws_max_size=rt.settings.max_frame_bytes,
                            log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.02)
    assert server.started, "uvicorn did not start"
    yield Live(base=f"http://127.0.0.1:{port}", ws=f"ws://127.0.0.1:{port}", app=application)
    server.should_exit = True
    await asyncio.wait_for(task, 10)
