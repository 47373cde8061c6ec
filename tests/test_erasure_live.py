"""Erasure seen from outside: every node's key cache forgets the destroyed keys (two runtimes on one
PostgreSQL and one Redis), the erased visitor's open widget socket is closed, and the old token
creates nothing afterwards (socket, Privacy view, activity, a new hello)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from confide.config import Settings
from confide.core.broker import RedisBroker
from confide.core.db import Base
from confide.core.errors import NotFound
from confide.core.runtime import Runtime, build_runtime
from confide.erasure import service as erasure
from confide.realtime import key_eviction
from confide.realtime.hub import Hub
from confide.realtime.wire import ERASED
from tests import factories
from tests import wsclient as wc
from tests.conftest import MASTER_KEY, Live, World
from tests.helpers_api import actor, counts, set_status

REDIS_URL = os.environ.get("CONFIDE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def test_a_key_cached_on_another_node_is_forgotten_at_once(pg_url: str, tmp_path: Path) -> None:
    engine = create_async_engine(pg_url)
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE " + ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
                                + " CASCADE"))
    await engine.dispose()
    prefix = f"confide-test-{os.urandom(4).hex()}:"
    nodes: list[Runtime] = []
    for n in range(2):
        settings = Settings(data_dir=tmp_path / f"node{n}", database_url=pg_url, master_key=MASTER_KEY,
                            argon2_time_cost=1, argon2_memory_kib=8, log_level="warning", run_worker=False)
        nodes.append(build_runtime(settings, broker=RedisBroker(REDIS_URL, prefix=prefix)))
    node_a, node_b = nodes
    try:
        for node in nodes:
            await node.broker.start()
        listeners = [await key_eviction.follow(node, Hub(node.broker)) for node in nodes]
        async with node_a.db.unit_of_work() as uow:
            ws = await factories.workspace(uow)
            site = await factories.site(uow, workspace_id=ws.id)
            admin = await factories.operator(node_a, uow, workspace_id=ws.id, email="admin@shop.example",
                                             role="admin", name="Ada")
            key = await node_a.keyring.create(uow.session, workspace_id=ws.id, subject_id="v" * 22)
            secret = key.encrypt("Canary secret", "visitors.name:" + "v" * 22)
            from confide.core import clock
            from confide.visitors.models import Visitor

            uow.session.add(Visitor(id="v" * 22, workspace_id=ws.id, site_id=site.id, created_at=clock.now(),
                                    name_enc=secret, consents={}))
        # Node B reads the person: the key is in its cache now.
        async with node_b.db.unit_of_work(readonly=True) as uow:
            cached = await node_b.keyring.get(uow.session, "v" * 22)
        assert cached.decrypt(secret, "visitors.name:" + "v" * 22) == "Canary secret"
        who = await actor(node_a, admin.id)
        async with node_a.db.unit_of_work() as uow:
            await erasure.erase(node_a, uow, who, ws.id, ["v" * 22], reason="request")
        for _ in range(200):
            if listeners[1].forgotten:
                break
            await asyncio.sleep(0.01)
        assert listeners[1].forgotten == 1
        async with node_b.db.unit_of_work(readonly=True) as uow:
            with pytest.raises(NotFound):
                await node_b.keyring.get(uow.session, "v" * 22)  # not from the cache, and gone from the DB
        # Redis is a broker only: no key of it (names or values) holds the person's data.
        import redis.asyncio as redis

        client = redis.from_url(REDIS_URL)
        try:
            keys = [k async for k in client.scan_iter(match="*")]
            dumped = [await client.dump(k) or b"" for k in keys]
        finally:
            await client.aclose()
        assert not [k for k in keys if b"Canary secret" in k or secret in k]
        assert not [d for d in dumped if b"Canary secret" in d or secret in d]
    finally:
        for node in nodes:
            await node.close()


async def test_the_erased_visitors_socket_is_closed_and_the_old_token_creates_nothing(
    rt: Runtime, live: Live, world: World
) -> None:
    await set_status(rt, world.operator_id)
    chat = await wc.start_chat(live=live, site_key=world.site_key, origin=world.origin, name="Canary Visitor")
    ws, _welcome = await wc.visitor_hello(live=live, chat=chat)
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        await erasure.erase(rt, uow, admin, world.workspace_id, [chat.visitor_id], reason="request")
    code, frames = await wc.expect_close(ws=ws)
    assert code == ERASED
    assert {"type": "error", "code": "erased", "message": "this visitor's data was erased"} in frames
    before = await counts(rt, "visitors", "conversations", "messages", "consent_records", "activity_pages")
    # A retry with the old token: an explicit refusal, nothing created.
    again = await wc.visitor_socket(live=live, site_key=chat.site_key, origin=chat.origin)
    await wc.send(ws=again, frame={"type": "hello", "token": chat.token, "conversation_id": chat.conversation_id,
                                   "last_seq": 0})
    code, frames = await wc.expect_close(ws=again)
    assert code == ERASED
    assert [f["code"] for f in frames] == ["erased"]
    async with httpx.AsyncClient(base_url=live.base, trust_env=False, headers={"Origin": world.origin}) as http:
        for path, body in (
            (f"/api/v1/widget/{world.site_key}/privacy", {"token": chat.token}),
            (f"/api/v1/widget/{world.site_key}/privacy/choices",
             {"token": chat.token, "purpose": "marketing", "granted": True}),
            (f"/api/v1/widget/{world.site_key}/activity",
             {"type": "view", "token": chat.token, "url": f"{world.origin}/x", "title": "X"}),
        ):
            answer = await http.post(path, json=body)
            assert answer.status_code == 410, (path, answer.text)
            assert answer.json()["code"] == "erased"
    assert await counts(rt, "visitors", "conversations", "messages", "consent_records", "activity_pages") == before
    await wc.close_all()


async def test_a_console_holding_the_erased_chat_drops_it(rt: Runtime, live: Live, world: World) -> None:
    active = await wc.active_chat(live=live, world=world, name="Canary Visitor")
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        await erasure.erase(rt, uow, admin, world.workspace_id, [active.chat.visitor_id], reason="request")
    frame = await wc.recv_until(ws=active.operator, type="erased")
    assert frame == {"type": "erased", "conversation_id": active.chat.conversation_id}
    code, _ = await wc.expect_close(ws=active.visitor)
    assert code == ERASED
    await wc.close_all()
