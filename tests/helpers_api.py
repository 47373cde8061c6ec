"""Helpers shared by the HTTP API and service tests: logins, widget calls, actors, messages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from sqlalchemy import text

from confide.auth.actors import OperatorActor, VisitorActor
from confide.chats import service as chats
from confide.chats.schemas import Draft
from confide.core import crypto
from confide.core.runtime import Runtime
from confide.routing import service as routing
from confide.users import sessions as user_sessions
from tests import factories
from tests.conftest import World

SELF = {"Origin": "http://testserver"}  # unsafe cookie requests must come from the console's own origin
PASSWORD = factories.PASSWORD


# ---------------------------------------------------------------- operators
async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    # A browser sends its Origin with a fetch POST; the console's own origin passes the CSRF check.
    return await client.post("/api/v1/auth/login", json={"email": email, "password": password}, headers=SELF)


@asynccontextmanager
async def logged_in(app: Any, email: str, password: str = PASSWORD) -> AsyncIterator[httpx.AsyncClient]:
    """A client of its own (own cookie jar) logged in as ``email``."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await login(http, email, password)
        assert response.status_code == 200, response.text
        yield http


async def actor(rt: Runtime, operator_id: str) -> OperatorActor:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return await user_sessions.actor_for(uow, operator_id)


async def set_status(rt: Runtime, operator_id: str, status: str = "online") -> None:
    who = await actor(rt, operator_id)
    async with rt.db.unit_of_work() as uow:
        if status == "online":
            await factories.present(uow, operator_id)  # an open console, as the status select implies
        await routing.set_status(rt, uow, who, status)


# ---------------------------------------------------------------- widget
def chat_body(fields: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"fields": fields if fields is not None else {"name": "Ana Visitor",
                                                                         "email": "ana@example.com"},
                            "consents": {"marketing": False}}
    body.update(extra)
    return body


async def start_chat(client: httpx.AsyncClient, world: World, fields: dict[str, Any] | None = None, *,
                     origin: str | None = None, site_key: str | None = None, expect: int | None = 201,
                     **extra: Any) -> dict[str, Any]:
    response = await client.post(f"/api/v1/widget/{site_key or world.site_key}/conversations",
                                 json=chat_body(fields, **extra), headers={"Origin": origin or world.origin})
    if expect is not None:
        assert response.status_code == expect, response.text
    result: dict[str, Any] = response.json()
    return result


async def leave_message(client: httpx.AsyncClient, world: World, message: str = "Please call me back",
                        fields: dict[str, Any] | None = None, *, origin: str | None = None,
                        expect: int | None = 201, **extra: Any) -> dict[str, Any]:
    body = {"fields": fields if fields is not None else {"name": "Ana Visitor", "email": "ana@example.com"},
            "consents": {}, "message": message, **extra}
    response = await client.post(f"/api/v1/widget/{world.site_key}/offline-requests", json=body,
                                 headers={"Origin": origin or world.origin})
    if expect is not None:
        assert response.status_code == expect, response.text
    result: dict[str, Any] = response.json()
    return result


def visitor_actor(world: World, started: dict[str, Any]) -> VisitorActor:
    return VisitorActor(visitor_id=started["visitor_id"], site_id=world.site_id, workspace_id=world.workspace_id)


# ---------------------------------------------------------------- chats
async def accept(rt: Runtime, operator_id: str, conversation_id: str) -> None:
    who = await actor(rt, operator_id)
    async with rt.db.unit_of_work() as uow:
        await routing.accept(rt, uow, who, conversation_id)


async def say(rt: Runtime, conversation_id: str, text_: str, *, sender: str = "visitor",
              sender_id: str) -> dict[str, Any]:
    """Store one message through the chat service's write path (what the socket writer does)."""
    draft = Draft(conversation_id=conversation_id, sender=sender, sender_id=sender_id, sender_name=None,
                  client_id=crypto.new_id(), text=text_)
    async with rt.db.unit_of_work() as uow:
        [result] = await chats.store_messages(rt, uow, [draft])
    assert isinstance(result, dict), result
    return result


async def close(rt: Runtime, operator_id: str, conversation_id: str) -> None:
    who = await actor(rt, operator_id)
    async with rt.db.unit_of_work() as uow:
        await routing.close_by_operator(rt, uow, who, conversation_id)


async def rate(rt: Runtime, world: World, started: dict[str, Any], score: int, comment: str | None = None) -> None:
    async with rt.db.unit_of_work() as uow:
        await chats.rate(rt, uow, visitor_actor(world, started), started["conversation_id"], score, comment)


# ---------------------------------------------------------------- database
async def count(rt: Runtime, table: str) -> int:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return int((await uow.session.execute(text(f"select count(*) from {table}"))).scalar_one())  # noqa: S608


async def counts(rt: Runtime, *tables: str) -> dict[str, int]:
    return {t: await count(rt, t) for t in tables}


# ---------------------------------------------------------------- a second tenant
async def other_workspace(rt: Runtime) -> World:
    """Another business on the same server, with its own site, department, admin and operator."""
    origin = "https://other.example"
    async with rt.db.unit_of_work() as uow:
        ws = await factories.workspace(uow, name="Other GmbH")
        site = await factories.site(uow, workspace_id=ws.id, name="Other", allowed_origins=[origin])
        dept = await factories.department(uow, workspace_id=ws.id, site_id=site.id, name="Other support")
        admin = await factories.operator(rt, uow, workspace_id=ws.id, email="root@other.example", role="admin",
                                         department_ids=[dept.id], name="Otto Admin")
        op = await factories.operator(rt, uow, workspace_id=ws.id, email="olga@other.example",
                                      department_ids=[dept.id], name="Olga")
    return World(ws.id, site.id, site.site_key, origin, dept.id, admin.id, admin.email, op.id, op.email)

