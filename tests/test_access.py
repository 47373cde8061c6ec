"""Who sees what, per built-in role: operators their own and the queued chats of their departments,
supervisors every chat of their departments, administrators their workspace, privacy officers and
auditors no chat at all, nobody another workspace; a visitor token reaches only its own
conversation. Denial of an object looks like absence (404); a route the role may not use is 403."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from confide.auth.actors import VisitorActor
from confide.chats import service as chats
from confide.core.errors import NotFound
from confide.core.runtime import Runtime
from confide.permissions.access import (
    access_conversation_by_id,
    access_offline_request_by_id,
)
from confide.routing import service as routing
from tests import factories
from tests.conftest import World
from tests.helpers_api import (
    SELF,
    accept,
    actor,
    leave_message,
    logged_in,
    other_workspace,
    set_status,
    start_chat,
    visitor_actor,
)


@dataclass
class Scene:
    world: World
    other: World
    sales_id: str
    sam_id: str
    sam_email: str
    sue_id: str  # supervisor of Sales
    support_chat: dict[str, Any]
    sales_chat: dict[str, Any]
    foreign_chat: dict[str, Any]
    support_request: str
    sales_request: str
    site_request: str  # left without a department
    foreign_request: str


@pytest.fixture
async def scene(client: httpx.AsyncClient, rt: Runtime, world: World) -> Scene:
    """Support (Mia) and Sales (Sam) on one site, a chat and requests in each; another workspace alike."""
    async with rt.db.unit_of_work() as uow:
        sales = await factories.department(uow, workspace_id=world.workspace_id, site_id=world.site_id,
                                           name="Sales")
        sam = await factories.operator(rt, uow, workspace_id=world.workspace_id, email="sam@shop.example",
                                       department_ids=[sales.id], name="Sam")
        sue = await factories.operator(rt, uow, workspace_id=world.workspace_id, email="sue@shop.example",
                                       department_ids=[sales.id], name="Sue", role="supervisor")
        for key in ("privacy_officer", "auditor"):
            await factories.operator(rt, uow, workspace_id=world.workspace_id, email=f"{key}@shop.example",
                                     department_ids=[world.department_id, sales.id], name=key, role=key)
    other = await other_workspace(rt)
    support_request = (await leave_message(client, world, "support question",
                                           department_id=world.department_id))["id"]
    sales_request = (await leave_message(client, world, "sales question", department_id=sales.id))["id"]
    site_request = (await leave_message(client, world, "any question"))["id"]
    foreign_request = (await leave_message(client, other, "their question"))["id"]
    for op in (world.operator_id, sam.id, other.operator_id):
        await set_status(rt, op)
    support_chat = await start_chat(client, world, {"name": "Ana Support", "email": "ana@example.com"},
                                    department_id=world.department_id)
    sales_chat = await start_chat(client, world, {"name": "Bo Sales", "email": "bo@example.com"},
                                  department_id=sales.id)
    foreign_chat = await start_chat(client, other, {"name": "Cy Other", "email": "cy@example.com"})
    return Scene(world, other, sales.id, sam.id, sam.email, sue.id, support_chat, sales_chat, foreign_chat,
                 support_request, sales_request, site_request, foreign_request)


async def visible(http: httpx.AsyncClient) -> tuple[set[str], set[str]]:
    """The conversation ids and offline request ids this console lists."""
    chat_list = (await http.get("/api/v1/conversations")).json()
    requests = (await http.get("/api/v1/offline-requests", params={"state": "all"})).json()
    assert chat_list["total"] == len(chat_list["items"])
    assert requests["total"] == len(requests["items"])
    return {c["id"] for c in chat_list["items"]}, {r["id"] for r in requests["items"]}


async def reachable(http: httpx.AsyncClient, scene: Scene) -> tuple[set[str], set[str]]:
    """The ids this console can open one by one (404 for the others)."""
    found_chats, found_requests = set(), set()
    for chat in (scene.support_chat, scene.sales_chat, scene.foreign_chat):
        response = await http.get(f"/api/v1/conversations/{chat['conversation_id']}")
        assert response.status_code in (200, 404)
        if response.status_code == 200:
            found_chats.add(chat["conversation_id"])
        else:
            assert response.json() == {"detail": "conversation not found", "code": "not_found"}
    for request_id in (scene.support_request, scene.sales_request, scene.site_request, scene.foreign_request):
        # Marking as not handled changes nothing on an open request, but must find it first.
        response = await http.post(f"/api/v1/offline-requests/{request_id}/handled", json={"handled": False},
                                   headers=SELF)
        assert response.status_code in (200, 404)
        if response.status_code == 200:
            found_requests.add(request_id)
        else:
            assert response.json() == {"detail": "offline request not found", "code": "not_found"}
    return found_chats, found_requests


async def test_operator_sees_only_their_departments(app: Any, scene: Scene) -> None:
    w = scene.world
    async with logged_in(app, w.operator_email) as mia:
        expected = ({scene.support_chat["conversation_id"]},
                    {scene.support_request, scene.site_request})
        assert await visible(mia) == expected
        assert await reachable(mia, scene) == expected
    async with logged_in(app, scene.sam_email) as sam:
        expected = ({scene.sales_chat["conversation_id"]}, {scene.sales_request, scene.site_request})
        assert await visible(sam) == expected
        assert await reachable(sam, scene) == expected


async def test_operator_sees_own_and_queued_supervisor_every_chat_of_their_departments(
        app: Any, rt: Runtime, scene: Scene) -> None:
    """Sam (operator) takes the Sales chat: it is his. A second Sales chat is taken
    by Sue (supervisor): Sam no longer sees it (not his, not waiting), Sue sees both."""
    w = scene.world
    first = scene.sales_chat["conversation_id"]
    await accept(rt, scene.sam_id, first)
    second = (await start_chat_in(app, w, scene.sales_id))["conversation_id"]
    await accept(rt, scene.sue_id, second)
    async with logged_in(app, scene.sam_email) as sam:
        expected = ({first}, {scene.sales_request, scene.site_request})
        assert await visible(sam) == expected
        assert await reachable(sam, scene) == (expected[0] & _scene_chats(scene), expected[1])
        assert (await sam.get(f"/api/v1/conversations/{second}")).status_code == 404
    async with logged_in(app, "sue@shop.example") as sue:
        expected = ({first, second}, {scene.sales_request, scene.site_request})
        assert await visible(sue) == expected
        assert (await sue.get(f"/api/v1/conversations/{second}")).status_code == 200


def _scene_chats(scene: Scene) -> set[str]:
    return {c["conversation_id"] for c in (scene.support_chat, scene.sales_chat, scene.foreign_chat)}


async def start_chat_in(app: Any, world: World, department_id: str) -> dict[str, Any]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        return await start_chat(http, world, {"name": "Di Second", "email": "di@example.com"},
                                department_id=department_id)


@pytest.mark.parametrize("email", ["privacy_officer@shop.example", "auditor@shop.example"])
async def test_privacy_officers_and_auditors_see_no_chat(app: Any, scene: Scene, email: str) -> None:
    """Neither may read chats or offline requests: every such route answers 403, for every id alike
    (so nothing tells an existing chat from a missing one), and their lists are refused too."""
    async with logged_in(app, email) as who:
        for path in ("/api/v1/conversations", "/api/v1/offline-requests"):
            response = await who.get(path)
            assert response.status_code == 403
            assert response.json() == {"detail": "you do not have permission to do this", "code": "forbidden"}
        for conv in [*_scene_chats(scene), "no-such-chat"]:
            assert (await who.get(f"/api/v1/conversations/{conv}")).status_code == 403
        for request_id in (scene.support_request, scene.foreign_request, "no-such-request"):
            response = await who.post(f"/api/v1/offline-requests/{request_id}/handled", json={"handled": False},
                                      headers=SELF)
            assert response.status_code == 403


async def test_admin_sees_the_whole_workspace_and_nothing_else(app: Any, scene: Scene) -> None:
    expected = ({scene.support_chat["conversation_id"], scene.sales_chat["conversation_id"]},
                {scene.support_request, scene.sales_request, scene.site_request})
    async with logged_in(app, scene.world.admin_email) as admin:
        assert await visible(admin) == expected
        assert await reachable(admin, scene) == expected
        # Filtering by the other workspace's site, department or operator finds nothing either.
        for params in ({"site_id": scene.other.site_id}, {"department_id": scene.other.department_id},
                       {"operator_id": scene.other.operator_id}):
            assert (await admin.get("/api/v1/conversations", params=params)).json()["total"] == 0
        for params in ({"site_id": scene.other.site_id}, {"department_id": scene.other.department_id}):
            response = await admin.get("/api/v1/offline-requests", params={**params, "state": "all"})
            assert response.json()["total"] == 0


async def test_another_workspace_sees_nothing_of_ours(app: Any, scene: Scene) -> None:
    expected = ({scene.foreign_chat["conversation_id"]}, {scene.foreign_request})
    for email in (scene.other.admin_email, scene.other.operator_email):
        async with logged_in(app, email) as theirs:
            assert await visible(theirs) == expected
            assert await reachable(theirs, scene) == expected


async def test_a_fresh_workspace_lists_nothing(app: Any, rt: Runtime, scene: Scene) -> None:
    async with rt.db.unit_of_work() as uow:
        ws = await factories.workspace(uow, name="Empty")
        await factories.operator(rt, uow, workspace_id=ws.id, email="boss@empty.example", role="admin")
    async with logged_in(app, "boss@empty.example") as boss:
        assert await visible(boss) == (set(), set())
        assert await reachable(boss, scene) == (set(), set())


async def test_removing_a_department_takes_access_away_at_once(app: Any, scene: Scene) -> None:
    w = scene.world
    conv = scene.support_chat["conversation_id"]
    async with logged_in(app, w.operator_email) as mia, logged_in(app, w.admin_email) as admin:
        assert (await mia.get(f"/api/v1/conversations/{conv}")).status_code == 200
        response = await admin.patch(f"/api/v1/operators/{w.operator_id}",
                                     json={"department_ids": [scene.sales_id]}, headers=SELF)
        assert response.status_code == 200
        # The same session, the next request: the new departments apply.
        assert (await mia.get(f"/api/v1/conversations/{conv}")).status_code == 404
        assert await visible(mia) == ({scene.sales_chat["conversation_id"]},
                                      {scene.sales_request, scene.site_request})


async def test_transfer_moves_visibility_with_the_chat(app: Any, rt: Runtime, scene: Scene) -> None:
    w = scene.world
    conv = scene.support_chat["conversation_id"]
    await accept(rt, w.operator_id, conv)
    mia = await actor(rt, w.operator_id)
    async with rt.db.unit_of_work() as uow:
        await routing.transfer(rt, uow, mia, conv, department_id=scene.sales_id)
    async with logged_in(app, w.operator_email) as console:
        assert (await console.get(f"/api/v1/conversations/{conv}")).status_code == 404
    async with logged_in(app, scene.sam_email) as console:
        assert (await console.get(f"/api/v1/conversations/{conv}")).json()["department"]["id"] == scene.sales_id


async def test_an_assigned_operator_outside_the_department_keeps_the_chat(rt: Runtime, scene: Scene) -> None:
    """An administrator hands a Sales chat to themselves (not in Sales): the assignee reaches it."""
    w = scene.world
    conv = scene.sales_chat["conversation_id"]
    admin = await actor(rt, w.admin_id)
    async with rt.db.unit_of_work() as uow:
        await routing.transfer(rt, uow, admin, conv, operator_id=w.admin_id)
    async with rt.db.unit_of_work(readonly=True) as uow:
        found = await access_conversation_by_id(uow.session, admin, conv, assigned=True)
        assert found.operator_id == w.admin_id
        mia = await actor(rt, w.operator_id)
        with pytest.raises(NotFound):
            await access_conversation_by_id(uow.session, mia, conv)
        sam = await actor(rt, scene.sam_id)  # an operator of Sales: neither his nor waiting any more
        with pytest.raises(NotFound):
            await access_conversation_by_id(uow.session, sam, conv)
        sue = await actor(rt, scene.sue_id)  # the supervisor of Sales sees every chat of Sales
        assert (await access_conversation_by_id(uow.session, sue, conv)).id == conv
        with pytest.raises(NotFound):  # ...but it is not assigned to her
            await access_conversation_by_id(uow.session, sue, conv, assigned=True)


async def test_offline_request_access_at_service_level(rt: Runtime, scene: Scene) -> None:
    w = scene.world
    mia, sam = await actor(rt, w.operator_id), await actor(rt, scene.sam_id)
    theirs = await actor(rt, scene.other.admin_id)
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert (await access_offline_request_by_id(uow.session, mia, scene.support_request)).id
        assert (await access_offline_request_by_id(uow.session, sam, scene.site_request)).id
        for who, request_id in ((mia, scene.sales_request), (sam, scene.support_request),
                                (theirs, scene.site_request), (mia, scene.foreign_request), (mia, 42),
                                (mia, "no-such-request")):
            with pytest.raises(NotFound):
                await access_offline_request_by_id(uow.session, who, request_id)


# ---------------------------------------------------------------- visitors
async def test_visitor_reaches_only_its_own_conversation(rt: Runtime, scene: Scene) -> None:
    w = scene.world
    ana = visitor_actor(w, scene.support_chat)
    bo = visitor_actor(w, scene.sales_chat)
    async with rt.db.unit_of_work(readonly=True) as uow:
        own = await access_conversation_by_id(uow.session, ana, scene.support_chat["conversation_id"])
        assert own.visitor_id == ana.visitor_id
        assert (await access_conversation_by_id(uow.session, bo, scene.sales_chat["conversation_id"])).id
        denied: list[tuple[VisitorActor, object]] = [
            (ana, scene.sales_chat["conversation_id"]),  # another visitor's chat on the same site
            (bo, scene.support_chat["conversation_id"]),
            (ana, scene.foreign_chat["conversation_id"]),  # another workspace
            # Its own visitor id, but a token of another site: not reachable.
            (VisitorActor(ana.visitor_id, scene.other.site_id, w.workspace_id),
             scene.support_chat["conversation_id"]),
            (ana, "no-such-conversation"),
            (ana, None),
            (ana, ["list"]),
            (ana, "x" * 65),
        ]
        for who, conversation_id in denied:
            with pytest.raises(NotFound, match="conversation not found"):
                await access_conversation_by_id(uow.session, who, conversation_id)


async def test_visitor_cannot_act_on_another_conversation(rt: Runtime, scene: Scene) -> None:
    """Closing, rating or reading someone else's chat is refused like a missing one; nothing changes."""
    ana = visitor_actor(scene.world, scene.support_chat)
    target = scene.sales_chat["conversation_id"]

    async def close() -> None:
        async with rt.db.unit_of_work() as uow:
            await routing.close_by_visitor(rt, uow, ana, target)

    async def rate() -> None:
        async with rt.db.unit_of_work() as uow:
            await chats.rate(rt, uow, ana, target, 1, "bad")

    async def read() -> None:
        async with rt.db.unit_of_work() as uow:
            await chats.mark_read(rt, uow, ana, target, 0)

    for action in (close, rate, read):
        with pytest.raises(NotFound):
            await action()
    bo = visitor_actor(scene.world, scene.sales_chat)
    async with rt.db.unit_of_work(readonly=True) as uow:
        conv = await access_conversation_by_id(uow.session, bo, target)
        assert conv.status == "queued"
        assert conv.rating is None
