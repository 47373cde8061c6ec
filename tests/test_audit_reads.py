"""The read-access log of list views and of the console (docs/audit.md, "Where rows are written"):
one row per list view naming the rows shown; a chat accepted or opened in the console recorded
once per operator session and conversation, never per message; the Audit Report finds a
conversation's list views by its id, filters by area and exports the new actions."""

from __future__ import annotations

import csv
import io
import json
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select

from confide.audit import service as audit
from confide.audit.models import AuditEvent
from confide.core.runtime import Runtime
from tests import wsclient as wc
from tests.conftest import Live, World
from tests.helpers_api import SELF, accept, actor, login, set_status, start_chat


async def _rows(rt: Runtime, *actions: str) -> list[AuditEvent]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        stmt = select(AuditEvent).where(AuditEvent.action.in_(actions)).order_by(AuditEvent.seq)
        return list((await uow.session.scalars(stmt)).all())


async def _chats(rt: Runtime, client: httpx.AsyncClient, world: World, n: int) -> list[str]:
    await set_status(rt, world.operator_id)
    ids = []
    for i in range(n):
        started = await start_chat(client, world, {"name": f"Visitor {i}", "email": f"v{i}@example.com"})
        await accept(rt, world.operator_id, started["conversation_id"])
        ids.append(started["conversation_id"])
    return ids


async def test_a_list_view_is_one_row_naming_what_it_showed(rt: Runtime, client: httpx.AsyncClient,
                                                           world: World) -> None:
    ids = await _chats(rt, client, world, 3)
    assert (await login(client, world.operator_email)).status_code == 200
    page = await client.get("/app/chats")
    assert "Visitor 2" in page.text
    (row,) = await _rows(rt, "chats.listed")
    detail = json.loads(row.detail)
    assert sorted(detail.pop("ids")) == sorted(ids)
    assert detail == {"via": "stored_chats", "page": 1, "shown": 3, "total": 3}
    assert (row.actor_id, row.target_type, row.target_id) == (world.operator_id, "conversation", None)
    # A page of 2 via the API: its two ids only; an empty result writes nothing.
    api = await client.get("/api/v1/conversations?per_page=2&page=2")
    assert api.status_code == 200
    shown = [item["id"] for item in api.json()["items"]]
    assert len(shown) == 1
    assert json.loads((await _rows(rt, "chats.listed"))[-1].detail)["ids"] == shown
    assert (await client.get("/api/v1/conversations?page=9")).json()["items"] == []
    assert (await client.post("/app/chats", headers=SELF, data={"visitor": "nobody-at-all"})).status_code == 303
    assert len(await _rows(rt, "chats.listed")) == 2
    # A bad filter (refused, 422): no row either.
    assert (await client.get("/api/v1/conversations?per_page=500")).status_code == 422
    assert len(await _rows(rt, "chats.listed")) == 2


async def test_list_detail_is_bounded_and_ids_only(rt: Runtime, world: World) -> None:
    who = await actor(rt, world.operator_id)
    for bad in (["x"] * (audit.MAX_LISTED + 1), ["a b"], ["a@b.c"], [1]):
        with pytest.raises(ValueError, match="ids"):
            async with rt.db.unit_of_work() as uow:
                await audit.record(rt, uow, "chats.listed", actor=who, detail={"ids": bad})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="at most"):
        async with rt.db.unit_of_work() as uow:
            await audit.record_list_view(rt, uow, "chats.listed", actor=who, target_type="conversation",
                                         ids=["x"] * (audit.MAX_LISTED + 1), via="api", page=1, total=101)
    assert await _rows(rt, "chats.listed") == []


async def test_the_report_finds_list_views_by_target_id_filters_by_area_and_exports_them(
    rt: Runtime, client: httpx.AsyncClient, world: World
) -> None:
    first, second = await _chats(rt, client, world, 2)
    assert (await login(client, world.operator_email)).status_code == 200
    assert (await client.get(f"/app/chats/{first}")).status_code == 200  # chats.viewed of the first
    assert (await client.get("/app/chats")).status_code == 200  # chats.listed of both
    assert (await client.get("/app/offline")).status_code == 200  # empty: nothing
    client.cookies.clear()
    assert (await login(client, world.admin_email)).status_code == 200
    found = await client.post("/app/audit", headers=SELF, data={"target_id": second})
    page = await client.get(found.headers["location"])
    assert page.status_code == 200
    assert [a for a in ("chats.listed", "chats.viewed") if f'data-action="{a}"' in page.text] == ["chats.listed"]
    assert second in page.text  # the list's ids are shown, joined
    found = await client.post("/app/audit", headers=SELF, data={"target_id": first, "action": "chats."})
    page = await client.get(found.headers["location"])
    assert page.text.count('data-testid="audit-row"') == 2
    assert '<option value="chats.">chats.*</option>' in page.text or 'value="chats." selected' in page.text
    query = urlsplit(found.headers["location"]).query
    rows = list(csv.reader(io.StringIO((await client.get(f"/app/audit/export.csv?{query}")).text)))
    assert sorted(r[5] for r in rows[1:]) == ["chats.listed", "chats.viewed"]
    listed = next(r for r in rows[1:] if r[5] == "chats.listed")
    assert first in json.loads(listed[9])["ids"]


async def test_the_console_records_a_chat_once_per_session_never_per_message(
    rt: Runtime, world: World, live: Live
) -> None:
    chat = await wc.active_chat(live=live, world=world)
    cid = chat.chat.conversation_id
    (row,) = await _rows(rt, "chats.viewed")
    detail = json.loads(row.detail)
    assert detail["via"] == "accept"
    assert (row.actor_id, row.target_id) == (world.operator_id, cid)
    for i in range(5):  # messages both ways, pushed to the console: no row
        await wc.send(ws=chat.visitor, frame={"type": "message", "client_id": f"v{i}", "text": f"hello {i}"})
        await wc.send(ws=chat.operator, frame={"type": "message", "conversation_id": cid, "client_id": f"o{i}",
                                               "text": f"answer {i}"})
    await wc.recv_until(ws=chat.operator, type="ack", where=wc.has(client_id="o4"))
    for after in (0, 3):  # opened again, in this console and in a second one of the same session
        await wc.send(ws=chat.operator, frame={"type": "history", "conversation_id": cid, "after_seq": after})
        await wc.recv_until(ws=chat.operator, type="history")
    again, _welcome, _cookie = await wc.operator_connect(live=live, cookie=chat.cookie)
    await wc.send(ws=again, frame={"type": "history", "conversation_id": cid, "after_seq": 0})
    await wc.recv_until(ws=again, type="history")
    assert len(await _rows(rt, "chats.viewed")) == 1
    # A new session (a new log-in) is a new view.
    fresh, _welcome, _cookie = await wc.operator_connect(live=live, email=world.operator_email)
    await wc.send(ws=fresh, frame={"type": "history", "conversation_id": cid, "after_seq": 0})
    await wc.recv_until(ws=fresh, type="history")
    rows = await _rows(rt, "chats.viewed")
    assert [json.loads(r.detail)["via"] for r in rows] == ["accept", "console"]
    assert json.loads(rows[1].detail)["session"] != detail["session"]
