"""Offline requests in the back office: list and filters, handled / reopened, scoping, validation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from confide.core import clock
from confide.core.runtime import Runtime
from tests import factories
from tests.conftest import World
from tests.helpers_api import SELF, leave_message, logged_in, other_workspace


@dataclass
class Inbox:
    world: World
    blog_site_id: str
    sales_id: str
    ids: dict[str, str]  # label -> request id


def day(d: int) -> datetime:
    return datetime(2026, 11, d, 12, 0, tzinfo=UTC)


@pytest.fixture
async def inbox(client: httpx.AsyncClient, rt: Runtime, world: World) -> Inbox:
    clock.freeze(day(1))
    async with rt.db.unit_of_work() as uow:
        sales = await factories.department(uow, workspace_id=world.workspace_id, site_id=world.site_id,
                                           name="Sales")
        await factories.operator(rt, uow, workspace_id=world.workspace_id, email="sam@shop.example",
                                 department_ids=[sales.id], name="Sam")
        blog = await factories.site(uow, workspace_id=world.workspace_id, name="Blog",
                                    allowed_origins=["https://blog.example"])
        await factories.department(uow, workspace_id=world.workspace_id, site_id=blog.id, name="Blog")
    blog_world = World(world.workspace_id, blog.id, blog.site_key, "https://blog.example", "", world.admin_id,
                       world.admin_email, world.operator_id, world.operator_email)
    ids = {}
    ids["one"] = (await leave_message(client, world, "Please call me back",
                                      {"name": "Ana Lovelace", "email": "Ana@Example.com"},
                                      department_id=world.department_id,
                                      page_url="https://shop.example/pricing"))["id"]
    clock.freeze(day(10))
    ids["two"] = (await leave_message(client, world, "Do you ship to Norway?",
                                      {"name": "Bob Builder", "email": "bob@example.org"},
                                      department_id=sales.id))["id"]
    clock.freeze(day(20))
    ids["three"] = (await leave_message(client, world, "Call me",
                                        {"name": "Cara Mia", "email": "cara@example.com",
                                         "phone": "+49 30 1234567"}))["id"]  # no department
    clock.freeze(day(25))
    ids["four"] = (await leave_message(client, blog_world, "About your blog post",
                                       {"name": "Dan Brown", "email": "dan@example.com"}))["id"]
    other = await other_workspace(rt)
    ids["foreign"] = (await leave_message(client, other, "Their request",
                                          {"name": "Ana Lovelace", "email": "ana@example.com"}))["id"]
    clock.freeze(day(28))
    return Inbox(world, blog.id, sales.id, ids)


@pytest.fixture
async def admin(app: Any, inbox: Inbox) -> AsyncIterator[httpx.AsyncClient]:
    async with logged_in(app, inbox.world.admin_email) as http:
        yield http


async def listed(http: httpx.AsyncClient, inbox: Inbox, **params: Any) -> list[str]:
    response = await http.get("/api/v1/offline-requests", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    by_id = {v: k for k, v in inbox.ids.items()}
    labels = [by_id[item["id"]] for item in body["items"]]
    if "page" not in params and "per_page" not in params:
        assert body["total"] == len(labels)
    return labels


async def handled(http: httpx.AsyncClient, request_id: str, value: bool = True, **kwargs: Any) -> httpx.Response:
    kwargs.setdefault("headers", SELF)
    return await http.post(f"/api/v1/offline-requests/{request_id}/handled", json={"handled": value}, **kwargs)


async def test_open_requests_newest_first(admin: httpx.AsyncClient, inbox: Inbox) -> None:
    assert await listed(admin, inbox) == ["four", "three", "two", "one"]
    body = (await admin.get("/api/v1/offline-requests")).json()
    assert body["total"] == 4
    assert body["page"] == 1
    assert body["per_page"] == 25
    one = body["items"][3]
    assert one["message"] == "Please call me back"
    assert one["page_url"] == "https://shop.example/pricing"
    assert one["site"] == {"id": inbox.world.site_id, "name": "Shop"}
    assert one["department"] == {"id": inbox.world.department_id, "name": "Support"}
    assert one["visitor"]["name"] == "Ana Lovelace"
    assert one["visitor"]["email"] == "Ana@example.com"
    assert one["created_at"] == "2026-11-01T12:00:00Z"
    assert one["handled_at"] is None
    assert one["handled_by"] is None
    three = body["items"][1]
    assert three["department"] is None
    assert three["visitor"]["phone"] == "+49 30 1234567"
    assert three["page_url"] is None


async def test_mark_handled_and_reopen(app: Any, admin: httpx.AsyncClient, inbox: Inbox) -> None:
    async with logged_in(app, inbox.world.operator_email) as mia:
        response = await handled(mia, inbox.ids["one"])
        assert response.status_code == 200, response.text
        assert response.json()["handled_at"] == "2026-11-28T12:00:00Z"
        assert response.json()["handled_by"] == "Mia"
    assert await listed(admin, inbox) == ["four", "three", "two"]
    assert await listed(admin, inbox, state="open") == ["four", "three", "two"]
    assert await listed(admin, inbox, state="handled") == ["one"]
    assert await listed(admin, inbox, state="all") == ["four", "three", "two", "one"]
    # Handling twice keeps it handled (by the latest hand).
    response = await handled(admin, inbox.ids["one"])
    assert response.json()["handled_by"] == "Ada Admin"
    # Reopen.
    response = await handled(admin, inbox.ids["one"], False)
    assert response.status_code == 200
    assert response.json()["handled_at"] is None
    assert response.json()["handled_by"] is None
    assert await listed(admin, inbox, state="handled") == []
    assert await listed(admin, inbox) == ["four", "three", "two", "one"]
    # The body defaults to "handled".
    response = await admin.post(f"/api/v1/offline-requests/{inbox.ids['two']}/handled", json={}, headers=SELF)
    assert response.json()["handled_by"] == "Ada Admin"


async def test_filters(admin: httpx.AsyncClient, inbox: Inbox) -> None:
    w = inbox.world
    await handled(admin, inbox.ids["two"])
    cases: list[tuple[dict[str, Any], list[str]]] = [
        ({"state": "all", "site_id": w.site_id}, ["three", "two", "one"]),
        ({"site_id": w.site_id}, ["three", "one"]),
        ({"site_id": inbox.blog_site_id}, ["four"]),
        ({"state": "all", "department_id": inbox.sales_id}, ["two"]),
        ({"department_id": w.department_id}, ["one"]),
        ({"visitor": "ana@example.com"}, ["one"]),  # not the other workspace's Ana
        ({"visitor": "ANA@EXAMPLE.COM"}, ["one"]),
        ({"state": "all", "visitor": "bob@example.org"}, ["two"]),
        ({"visitor": "bob@example.org"}, []),  # handled
        ({"visitor": "mia"}, ["three"]),  # name words: Cara Mia
        ({"visitor": "lovelace ana"}, ["one"]),
        ({"visitor": "nobody@example.com"}, []),
        ({"state": "all", "date_from": "2026-11-05T00:00:00Z"}, ["four", "three", "two"]),
        ({"state": "all", "date_to": "2026-11-10T12:00:00Z"}, ["two", "one"]),
        ({"state": "all", "date_from": "2026-11-05", "date_to": "2026-11-21"}, ["three", "two"]),
        ({"state": "handled", "date_from": "2026-11-11T00:00:00Z"}, []),
        ({"state": "all", "site_id": w.site_id, "visitor": "ana", "date_to": "2026-11-02T00:00:00Z"}, ["one"]),
    ]
    for params, expected in cases:
        assert await listed(admin, inbox, **params) == expected, params


async def test_pagination(admin: httpx.AsyncClient, inbox: Inbox) -> None:
    first = (await admin.get("/api/v1/offline-requests", params={"per_page": 3})).json()
    second = (await admin.get("/api/v1/offline-requests", params={"per_page": 3, "page": 2})).json()
    assert first["total"] == second["total"] == 4
    ids = inbox.ids
    assert [r["id"] for r in first["items"]] == [ids["four"], ids["three"], ids["two"]]
    assert [r["id"] for r in second["items"]] == [ids["one"]]
    third = (await admin.get("/api/v1/offline-requests", params={"per_page": 3, "page": 3})).json()
    assert third["items"] == []


async def test_invalid_filters_and_bodies(admin: httpx.AsyncClient, inbox: Inbox) -> None:
    for params in ({"state": "closed"}, {"per_page": 1000}, {"per_page": 0}, {"page": 0},
                   {"date_from": "soon"}, {"priority": "high"}):
        response = await admin.get("/api/v1/offline-requests", params=params)
        assert response.status_code == 422, params
    url = f"/api/v1/offline-requests/{inbox.ids['one']}/handled"
    for body in ({"handled": "maybe"}, {"handled": True, "note": "x"}, [True]):
        response = await admin.post(url, json=body, headers=SELF)
        assert response.status_code == 422, body
    assert await listed(admin, inbox, state="handled") == []


async def test_scoping(app: Any, admin: httpx.AsyncClient, rt: Runtime, inbox: Inbox) -> None:
    ids = inbox.ids
    async with logged_in(app, inbox.world.operator_email) as mia:
        # Support, plus requests of her site left without a department.
        assert await listed(mia, inbox, state="all") == ["three", "one"]
        assert await listed(mia, inbox, department_id=inbox.sales_id) == []
        assert await listed(mia, inbox, site_id=inbox.blog_site_id) == []
        for label in ("two", "four", "foreign"):
            response = await handled(mia, ids[label])
            assert response.status_code == 404, label
            assert response.json() == {"detail": "offline request not found", "code": "not_found"}
        assert (await handled(mia, ids["three"])).status_code == 200
    async with logged_in(app, "sam@shop.example") as sam:
        assert await listed(sam, inbox, state="all") == ["three", "two"]
    async with logged_in(app, "root@other.example") as theirs:
        assert await listed(theirs, inbox, state="all") == ["foreign"]
        assert await listed(theirs, inbox, visitor="ana@example.com") == ["foreign"]
        for label in ("one", "two", "three", "four"):
            assert (await handled(theirs, ids[label])).status_code == 404
    # Nothing the refused calls touched has changed.
    assert await listed(admin, inbox, state="handled") == ["three"]
    assert (await handled(admin, "no-such-request")).status_code == 404


async def test_cross_site_and_anonymous_calls_are_refused(client: httpx.AsyncClient, admin: httpx.AsyncClient,
                                                          inbox: Inbox) -> None:
    response = await handled(admin, inbox.ids["one"], headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert await listed(admin, inbox, state="handled") == []
    assert (await client.get("/api/v1/offline-requests")).status_code == 401
    assert (await handled(client, inbox.ids["one"])).status_code == 401
