"""What the audit log records outside log-in: settings changes, operator account changes, the
read-access log (transcripts, offline requests, the console opening a conversation) and denials,
each as the exact row expected; and never a personal value (canaries scanned in the whole table)."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select, text

from confide.audit import service as audit
from confide.audit.models import AuditEvent
from confide.core.runtime import Runtime
from tests import wsclient as wc
from tests.conftest import Live, World
from tests.helpers_api import SELF, accept, leave_message, login, say, set_status, start_chat

Row = tuple[str, str, str | None, str | None, str | None, str, dict[str, Any]]
CANARY_NAME = "Zebulon Canaryname"
CANARY_EMAIL = "zebulon.canary@canary.example"
CANARY_TEXT = "canary message quokka"


async def _rows(rt: Runtime, since: int = 0) -> list[Row]:
    import json

    async with rt.db.unit_of_work(readonly=True) as uow:
        rows = (
            await uow.session.scalars(select(AuditEvent).where(AuditEvent.seq > since).order_by(AuditEvent.seq))
        ).all()
    return [  # but the log-in path's own rows (auth.*, recorded by the accounts module)
        (r.action, r.actor_type, r.actor_id, r.target_type, r.target_id, r.outcome, json.loads(r.detail))
        for r in rows
        if not r.action.startswith("auth.")
    ]


async def _last_seq(rt: Runtime) -> int:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return int(await uow.session.scalar(text("SELECT COALESCE(MAX(seq), 0) FROM audit_events")) or 0)


async def _no_canary(rt: Runtime) -> None:
    async with rt.db.unit_of_work(readonly=True) as uow:
        dump = " ".join(
            " ".join("" if v is None else str(v) for v in row)
            for row in (await uow.session.execute(text("SELECT * FROM audit_events"))).all()
        ).lower()
    for canary in (CANARY_NAME, CANARY_EMAIL, CANARY_TEXT, "zebulon", "canary.example", "quokka", "ana@example.com"):
        assert canary.lower() not in dump, canary
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert (await audit.verify(rt, uow)).ok


async def test_settings_changes_are_recorded_with_field_names_only(
    rt: Runtime, client: httpx.AsyncClient, world: World
) -> None:
    assert (await login(client, world.admin_email)).status_code == 200
    start = await _last_seq(rt)
    site = (await client.post("/api/v1/sites", headers=SELF, json={"name": CANARY_NAME})).json()
    assert (
        await client.patch(
            f"/api/v1/sites/{site['id']}",
            headers=SELF,
            json={"greeting": CANARY_TEXT, "allowed_origins": ["https://canary.example"]},
        )
    ).status_code == 200
    dept = (
        await client.post("/api/v1/departments", headers=SELF, json={"site_id": site["id"], "name": CANARY_NAME})
    ).json()
    assert (
        await client.patch(f"/api/v1/departments/{dept['id']}", headers=SELF, json={"offer_timeout_s": 60})
    ).status_code == 200
    reply = (
        await client.post(
            "/api/v1/canned-replies", headers=SELF, json={"shortcut": "hi", "title": CANARY_NAME, "text": CANARY_TEXT}
        )
    ).json()
    assert (await client.delete(f"/api/v1/canned-replies/{reply['id']}", headers=SELF)).status_code == 204
    admin = world.admin_id
    assert await _rows(rt, start) == [
        ("settings.site_created", "operator", admin, "site", site["id"], "ok", {}),
        (
            "settings.site_updated",
            "operator",
            admin,
            "site",
            site["id"],
            "ok",
            {"allowed_origins": True, "greeting": True},
        ),
        ("settings.department_created", "operator", admin, "department", dept["id"], "ok", {"site_id": site["id"]}),
        ("settings.department_updated", "operator", admin, "department", dept["id"], "ok", {"offer_timeout_s": True}),
        (
            "settings.canned_reply_created",
            "operator",
            admin,
            "canned_reply",
            reply["id"],
            "ok",
            {"department_id": None},
        ),
        ("settings.canned_reply_deleted", "operator", admin, "canned_reply", reply["id"], "ok", {}),
    ]
    await _no_canary(rt)


async def test_operator_account_changes_are_recorded(rt: Runtime, client: httpx.AsyncClient, world: World) -> None:
    assert (await login(client, world.admin_email)).status_code == 200
    start = await _last_seq(rt)
    created = await client.post(
        "/api/v1/operators",
        headers=SELF,
        json={
            "email": CANARY_EMAIL,
            "name": CANARY_NAME,
            "password": "a canary password 1",
            "role": "operator",
            "department_ids": [world.department_id],
        },
    )
    assert created.status_code == 201, created.text
    new = created.json()["id"]
    for patch in (
        {"name": "Zebulon Other", "role": "admin"},
        {"disabled": True},
        {"disabled": False},
        {"password": "another canary pw 2"},
    ):
        assert (await client.patch(f"/api/v1/operators/{new}", headers=SELF, json=patch)).status_code == 200
    admin = world.admin_id
    assert await _rows(rt, start) == [
        ("users.created", "operator", admin, "operator", new, "ok", {"role": "operator", "departments": 1}),
        ("users.updated", "operator", admin, "operator", new, "ok",
         {"name": True, "role": True, "role_now": "administrator"}),
        ("users.disabled", "operator", admin, "operator", new, "ok", {"sessions_ended": True}),
        ("users.enabled", "operator", admin, "operator", new, "ok", {"sessions_ended": False}),
        ("users.updated", "operator", admin, "operator", new, "ok", {"password": True}),
    ]
    await _no_canary(rt)


async def test_reading_a_transcript_or_offline_requests_is_recorded(
    rt: Runtime, client: httpx.AsyncClient, world: World
) -> None:
    await set_status(rt, world.operator_id)
    started = await start_chat(client, world, {"name": CANARY_NAME, "email": CANARY_EMAIL})
    cid = started["conversation_id"]
    await accept(rt, world.operator_id, cid)
    await say(rt, cid, CANARY_TEXT, sender_id=started["visitor_id"])
    await set_status(rt, world.operator_id, "offline")
    offline = await leave_message(client, world, CANARY_TEXT, {"name": CANARY_NAME, "email": CANARY_EMAIL})
    assert (await login(client, world.operator_email)).status_code == 200
    start = await _last_seq(rt)
    page = await client.get(f"/app/chats/{cid}")
    assert page.status_code == 200
    assert CANARY_TEXT in page.text
    assert (await client.get(f"/api/v1/conversations/{cid}")).status_code == 200
    listing = await client.get("/app/offline")
    assert CANARY_TEXT in listing.text
    assert (await client.get("/api/v1/offline-requests")).json()["total"] == 1
    assert (await client.get("/app/chats/" + "x" * 22)).status_code == 404  # not found: not recorded
    listed = await client.get("/app/chats")
    assert CANARY_NAME in listed.text
    assert (await client.get("/api/v1/conversations")).json()["total"] == 1
    mia = world.operator_id
    oid = offline["id"]
    one = {"page": 1, "shown": 1, "total": 1}
    assert await _rows(rt, start) == [
        ("chats.viewed", "operator", mia, "conversation", cid, "ok", {"via": "stored_chats"}),
        ("chats.viewed", "operator", mia, "conversation", cid, "ok", {"via": "api"}),
        ("offline.listed", "operator", mia, "offline_request", None, "ok",
         {"via": "offline_requests", "ids": [oid], **one}),
        ("offline.listed", "operator", mia, "offline_request", None, "ok", {"via": "api", "ids": [oid], **one}),
        ("chats.listed", "operator", mia, "conversation", None, "ok", {"via": "stored_chats", "ids": [cid], **one}),
        ("chats.listed", "operator", mia, "conversation", None, "ok", {"via": "api", "ids": [cid], **one}),
    ]
    await _no_canary(rt)


async def test_denials_are_recorded_by_route(rt: Runtime, client: httpx.AsyncClient, world: World) -> None:
    assert (await login(client, world.operator_email)).status_code == 200
    start = await _last_seq(rt)
    assert (await client.get("/app/settings")).status_code == 403
    assert (await client.post("/api/v1/sites", headers=SELF, json={"name": CANARY_NAME})).status_code == 403
    assert (await client.get("/api/v1/conversations/" + "y" * 22)).status_code == 404
    mia = world.operator_id
    assert await _rows(rt, start) == [
        ("access.denied", "operator", mia, "route", "settings_sites", "denied", {"method": "GET"}),
        ("access.denied", "operator", mia, "route", "create_site", "denied", {"method": "POST"}),
    ]
    await _no_canary(rt)


async def test_the_console_opening_a_conversation_is_recorded(rt: Runtime, world: World, live: Live) -> None:
    start = await _last_seq(rt)
    chat = await wc.active_chat(live=live, world=world, name=CANARY_NAME)
    await wc.send(
        ws=chat.operator, frame={"type": "history", "conversation_id": chat.chat.conversation_id, "after_seq": 0}
    )
    history = await wc.recv_until(ws=chat.operator, type="history")
    assert history["conversation_id"] == chat.chat.conversation_id
    # Someone else's (or no) conversation: the error frame, and no row.
    await wc.send(ws=chat.operator, frame={"type": "history", "conversation_id": "z" * 22, "after_seq": 0})
    await wc.recv_until(ws=chat.operator, type="error")
    # Accepting opened it (one row, with the console's session); opening it again adds none.
    (viewed,) = [r for r in await _rows(rt, start) if r[0] == "chats.viewed"]
    assert viewed[:6] == ("chats.viewed", "operator", world.operator_id, "conversation", chat.chat.conversation_id,
                          "ok")
    assert viewed[6]["via"] == "accept"
    assert set(viewed[6]) == {"via", "session"}
    await _no_canary(rt)
