"""Several nodes: the Redis broker against the real Redis, and a chat across two app instances
sharing PostgreSQL and Redis (a visitor on one node, the operator on the other)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from confide.app import create_app
from confide.config import Settings
from confide.core.broker import RedisBroker
from confide.core.db import Base
from confide.core.runtime import Runtime, build_runtime
from tests import factories
from tests.conftest import MASTER_KEY, free_port

REDIS_URL = os.environ.get("CONFIDE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def test_redis_broker_delivers_only_subscribed_topics_across_connections() -> None:
    prefix = f"confide-test-{os.urandom(4).hex()}:"
    a, b = RedisBroker(REDIS_URL, prefix=prefix), RedisBroker(REDIS_URL, prefix=prefix)
    got: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
    b.set_handler(lambda topic, payload: got.put_nowait((topic, payload)))
    a.set_handler(lambda topic, payload: None)
    await a.start()
    await b.start()
    try:
        await b.subscribe("conv:1")
        await asyncio.sleep(0.05)
        await a.publish("conv:2", {"n": 0})  # not subscribed: never delivered
        await a.publish("conv:1", {"n": 1, "text": "olá"})
        assert await asyncio.wait_for(got.get(), 2) == ("conv:1", {"n": 1, "text": "olá"})
        await b.unsubscribe("conv:1")
        await asyncio.sleep(0.05)
        await a.publish("conv:1", {"n": 2})
        await asyncio.sleep(0.2)
        assert got.empty()
    finally:
        await a.stop()
        await b.stop()


async def _serve(rt: Runtime) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(runtime=rt), host="127.0.0.1", port=port,
                                           ws="websockets-sansio", log_level="warning"))
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.02)
    return server, task, f"127.0.0.1:{port}"


@pytest.fixture
async def two_nodes(pg_url: str, tmp_path: Path) -> tuple[Runtime, Runtime]:
    """Two runtimes on one PostgreSQL and one Redis (each app's lifespan closes its runtime)."""
    engine = create_async_engine(pg_url)
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE " + ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables) +
                                " CASCADE"))
    await engine.dispose()
    prefix = f"confide-test-{os.urandom(4).hex()}:"
    nodes = []
    for n in range(2):
        settings = Settings(data_dir=tmp_path / f"node{n}", database_url=pg_url, master_key=MASTER_KEY,
                            argon2_time_cost=1, argon2_memory_kib=8, log_level="warning", run_worker=False)
        nodes.append(build_runtime(settings, broker=RedisBroker(REDIS_URL, prefix=prefix)))
    return nodes[0], nodes[1]


async def test_a_chat_spans_two_nodes(two_nodes: tuple[Runtime, Runtime]) -> None:
    node_a, node_b = two_nodes
    origin = "https://shop.example"
    async with node_a.db.unit_of_work() as uow:
        ws = await factories.workspace(uow)
        site = await factories.site(uow, workspace_id=ws.id, allowed_origins=[origin])
        dept = await factories.department(uow, workspace_id=ws.id, site_id=site.id, strategy="manual")
        await factories.operator(node_a, uow, workspace_id=ws.id, email="mia@shop.example", name="Mia",
                                 department_ids=[dept.id])
    server_a, task_a, host_a = await _serve(node_a)
    server_b, task_b, host_b = await _serve(node_b)
    try:
        async with httpx.AsyncClient(base_url=f"http://{host_b}", headers={"Origin": f"http://{host_b}"}) as http:
            login = await http.post("/api/v1/auth/login", json={"email": "mia@shop.example",
                                                                "password": factories.PASSWORD})
            assert login.status_code == 200
            cookie = f"confide_session={http.cookies['confide_session']}"
        operator = await websockets.connect(f"ws://{host_b}/ws/operator",
                                            additional_headers={"Origin": f"http://{host_b}", "Cookie": cookie})
        await _until(operator, "welcome")
        await operator.send(json.dumps({"type": "status", "status": "online"}))
        await _until(operator, "status")
        async with httpx.AsyncClient(base_url=f"http://{host_a}", headers={"Origin": origin}) as http:
            started = await http.post(f"/api/v1/widget/{site.site_key}/conversations",
                                      json={"fields": {"name": "Ana", "email": "ana@example.com"}})
            assert started.status_code == 201, started.text
            chat = started.json()
        queue = await _until(operator, "queue", lambda f: bool(f["queue"]))  # the queue change crossed nodes
        assert queue["queue"][0]["id"] == chat["conversation_id"]
        visitor = await websockets.connect(f"ws://{host_a}/ws/visitor?site={site.site_key}",
                                           additional_headers={"Origin": origin})
        await visitor.send(json.dumps({"type": "hello", "token": chat["token"],
                                       "conversation_id": chat["conversation_id"], "last_seq": 0}))
        await _until(visitor, "welcome")
        await operator.send(json.dumps({"type": "accept", "conversation_id": chat["conversation_id"]}))
        await _until(operator, "chat")
        status = await _until(visitor, "status", lambda f: f["conversation"]["status"] == "active")
        assert status["conversation"]["operator"] == {"name": "Mia"}
        await visitor.send(json.dumps({"type": "message", "client_id": "v1", "text": "hello from node A"}))
        got = await _until(operator, "message", lambda f: f["message"]["sender"] == "visitor")
        assert got["message"]["text"] == "hello from node A"
        await operator.send(json.dumps({"type": "message", "conversation_id": chat["conversation_id"],
                                        "client_id": "o1", "text": "hello from node B"}))
        reply = await _until(visitor, "message", lambda f: f["message"]["sender"] == "operator")
        assert reply["message"]["text"] == "hello from node B"
        assert reply["message"]["sender_name"] == "Mia"
        await visitor.close()
        await operator.close()
    finally:
        for server in (server_a, server_b):
            server.should_exit = True
        await asyncio.wait_for(asyncio.gather(task_a, task_b), 10)


async def _until(ws: Any, kind: str, check: Any = None, timeout: float = 5.0) -> dict[str, Any]:
    async def loop() -> dict[str, Any]:
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == kind and (check is None or check(frame)):
                return dict(frame)

    return await asyncio.wait_for(loop(), timeout)
