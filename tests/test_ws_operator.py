"""The operator console WebSocket on a real server (docs/protocol.md, "Operator side")."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from confide.chats.models import Conversation
from confide.core import clock
from confide.core.runtime import Runtime
from confide.routing import service as routing
from confide.users import operators as user_operators
from confide.users import sessions as user_sessions
from confide.workspaces import service as workspaces
from confide.workspaces.schemas import CannedReplyIn, DepartmentPatch
from tests import factories
from tests import wsclient as wc
from tests.conftest import Live, World


@pytest.fixture(autouse=True)
async def _close_sockets(live: Live) -> AsyncIterator[None]:
    yield
    await wc.close_all()


async def _new_operator(rt: Runtime, *, workspace_id: str, email: str, name: str, department_ids: list[str],
                        role: str = "operator", status: str = "offline") -> str:
    async with rt.db.unit_of_work() as uow:
        op = await factories.operator(rt, uow, workspace_id=workspace_id, email=email, name=name, role=role,
                                      department_ids=department_ids, status=status)
        return op.id


async def _new_department(rt: Runtime, world: World, *, name: str, strategy: str = "round_robin") -> str:
    async with rt.db.unit_of_work() as uow:
        dept = await factories.department(uow, workspace_id=world.workspace_id, site_id=world.site_id, name=name,
                                          strategy=strategy)
        return dept.id


async def _make_manual(rt: Runtime, world: World) -> None:
    async with rt.db.unit_of_work() as uow:
        admin = await user_sessions.actor_for(uow, world.admin_id)
        await workspaces.update_department(uow, admin, world.department_id, DepartmentPatch(strategy="manual"))


async def _set_status(rt: Runtime, operator_id: str, status: str) -> None:
    async with rt.db.unit_of_work() as uow:
        if status == "online":
            await factories.present(uow, operator_id)  # a console of theirs is open (presence)
        await routing.set_status(rt, uow, await user_sessions.actor_for(uow, operator_id), status)


async def _conversation(rt: Runtime, conversation_id: str) -> Conversation:
    async with rt.db.unit_of_work(readonly=True) as uow:
        conv = await uow.session.get(Conversation, conversation_id)
        assert conv is not None
        return conv


async def _error(ws: Any, frame: dict[str, Any]) -> dict[str, Any]:
    await wc.send(ws=ws, frame=frame)
    return await wc.recv_until(ws=ws, type="error", where=lambda f: f.get("ref") == frame.get("client_id"))


async def test_welcome_lists_me_queue_chats_and_canned_replies(rt: Runtime, world: World, live: Live) -> None:
    await _make_manual(rt, world)
    sales = await _new_department(rt, world, name="Sales")
    async with rt.db.unit_of_work() as uow:
        admin = await user_sessions.actor_for(uow, world.admin_id)
        await workspaces.create_canned_reply(uow, admin, CannedReplyIn(shortcut="hi", title="Hello",
                                                                       text="Hi! How can I help?"))
        await workspaces.create_canned_reply(uow, admin, CannedReplyIn(shortcut="sales", title="Sales",
                                                                       text="Our prices…", department_id=sales))
    await _set_status(rt, world.admin_id, "online")  # someone must be online to start a chat
    mine = await wc.start_chat(live=live, site_key=world.site_key, origin=world.origin, name="Ana")
    waiting = await wc.start_chat(live=live, site_key=world.site_key, origin=world.origin, name="Ben")
    async with rt.db.unit_of_work() as uow:
        await routing.accept(rt, uow, await user_sessions.actor_for(uow, world.operator_id), mine.conversation_id)

    op, welcome, _ = await wc.operator_connect(live=live, email=world.operator_email)
    assert welcome["operator"] == {"id": world.operator_id, "name": "Mia", "role": "operator", "status": "offline",
                                   "max_chats": 5}
    assert [d["id"] for d in welcome["departments"]] == [world.department_id]
    assert [c["id"] for c in welcome["chats"]] == [mine.conversation_id]
    chat = welcome["chats"][0]
    assert (chat["status"], chat["operator_id"]) == ("active", world.operator_id)
    assert chat["visitor"]["name"] == "Ana"
    assert chat["visitor"]["email"] == "ana@example.com"
    assert chat["visitor"]["page_url"] == f"{world.origin}/pricing"
    assert chat["site"] == {"id": world.site_id, "name": "Shop"}
    assert [(c["id"], c["status"], c["visitor"]["name"]) for c in welcome["queue"]] == [
        (waiting.conversation_id, "queued", "Ben")]
    assert [(r["shortcut"], r["text"]) for r in welcome["canned_replies"]] == [("hi", "Hi! How can I help?")]
    # The chats of the welcome are live: a visitor message reaches this socket.
    visitor, _ = await wc.visitor_hello(live=live, chat=mine)
    await wc.send(ws=visitor, frame={"type": "message", "client_id": "c-1", "text": "still there?"})
    relayed = await wc.recv_until(ws=op, type="message")
    assert relayed["conversation_id"] == mine.conversation_id


async def test_round_robin_offer_accept_and_messages_both_ways(rt: Runtime, world: World, live: Live) -> None:
    op, _, _ = await wc.operator_connect(live=live, email=world.operator_email)
    status = await wc.go_online(ws=op)
    assert status == {"type": "status", "status": "online"}
    chat = await wc.start_chat(live=live, site_key=world.site_key, origin=world.origin)
    offer = await wc.recv_until(ws=op, type="offer")
    assert offer["conversation"]["id"] == chat.conversation_id
    assert offer["conversation"]["status"] == "queued"
    assert offer["conversation"]["visitor"]["name"] == "Ana"
    assert offer["expires_at"].endswith("Z")
    visitor, welcome = await wc.visitor_hello(live=live, chat=chat)
    assert welcome["conversation"]["status"] == "queued"

    await wc.send(ws=op, frame={"type": "accept", "conversation_id": chat.conversation_id})
    accepted = await wc.recv_until(ws=op, type="chat")
    assert accepted["conversation"]["status"] == "active"
    assert accepted["conversation"]["operator_id"] == world.operator_id
    status = await wc.recv_until(ws=visitor, type="status")
    assert status["conversation"]["status"] == "active"
    assert status["conversation"]["operator"] == {"name": "Mia"}

    await wc.send(ws=op, frame={"type": "message", "conversation_id": chat.conversation_id, "client_id": "o-1",
                                "text": "Hi, I am Mia."})
    ack = await wc.recv_until(ws=op, type="ack")
    assert ack["client_id"] == "o-1"
    assert (ack["message"]["sender"], ack["message"]["sender_name"]) == ("operator", "Mia")
    got = await wc.recv_until(ws=visitor, type="message", where=lambda f: f["message"]["sender"] == "operator")
    assert got["message"] == ack["message"]

    await wc.send(ws=visitor, frame={"type": "message", "client_id": "v-1", "text": "Hi Mia"})
    got = await wc.recv_until(ws=op, type="message", where=lambda f: f["message"]["sender"] == "visitor")
    assert got["conversation_id"] == chat.conversation_id
    assert got["message"]["text"] == "Hi Mia"
    # Retrying the operator's client id gives the stored message back.
    await wc.send(ws=op, frame={"type": "message", "conversation_id": chat.conversation_id, "client_id": "o-1",
                                "text": "Hi, I am Mia."})
    retry = await wc.recv_until(ws=op, type="ack")
    assert (retry["message"]["id"], retry["message"]["seq"]) == (ack["message"]["id"], ack["message"]["seq"])

    await wc.send(ws=op, frame={"type": "history", "conversation_id": chat.conversation_id, "after_seq": 1})
    history = await wc.recv_until(ws=op, type="history")
    assert history["conversation_id"] == chat.conversation_id
    assert [(m["seq"], m["text"]) for m in history["messages"]] == [(2, "Hi, I am Mia."), (3, "Hi Mia")]


async def test_manual_queue_accept_and_second_accept_conflicts(rt: Runtime, world: World, live: Live) -> None:
    await _make_manual(rt, world)
    mia, _, _ = await wc.operator_connect(live=live, email=world.operator_email)
    ada, _, _ = await wc.operator_connect(live=live, email=world.admin_email)
    await wc.go_online(ws=mia)
    await wc.go_online(ws=ada)
    chat = await wc.start_chat(live=live, site_key=world.site_key, origin=world.origin)
    cid = chat.conversation_id
    skipped: list[dict[str, Any]] = []
    for ws in (mia, ada):
        queue = await wc.recv_until(ws=ws, type="queue", where=lambda f: bool(f["queue"]), skipped=skipped)
        assert [c["id"] for c in queue["queue"]] == [cid]
    assert not [f for f in skipped if f["type"] == "offer"]  # manual: nobody is offered the chat

    await wc.send(ws=mia, frame={"type": "accept", "conversation_id": cid})
    chat_frame = await wc.recv_until(ws=mia, type="chat")
    assert chat_frame["conversation"]["operator_id"] == world.operator_id
    error = await _error(ada, {"type": "accept", "conversation_id": cid, "client_id": "a-1"})
    assert error["code"] == "conflict"
    for ws in (mia, ada):
        await wc.recv_until(ws=ws, type="queue", where=lambda f: f["queue"] == [])
    conv = await _conversation(rt, cid)
    assert (conv.status, conv.operator_id) == ("active", world.operator_id)
    # Ada (admin, not assigned) cannot write into Mia's chat.
    error = await _error(ada, {"type": "message", "conversation_id": cid, "client_id": "a-2", "text": "hi"})
    assert error["code"] == "not_found"


async def test_offer_is_withdrawn_when_the_visitor_leaves(rt: Runtime, world: World, live: Live) -> None:
    op, _, _ = await wc.operator_connect(live=live, email=world.operator_email)
    await wc.go_online(ws=op)
    chat = await wc.start_chat(live=live, site_key=world.site_key, origin=world.origin)
    await wc.recv_until(ws=op, type="offer")
    visitor, _ = await wc.visitor_hello(live=live, chat=chat)
    await wc.send(ws=visitor, frame={"type": "end"})
    withdrawn = await wc.recv_until(ws=op, type="offer_withdrawn")
    assert withdrawn == {"type": "offer_withdrawn", "conversation_id": chat.conversation_id}
    error = await _error(op, {"type": "accept", "conversation_id": chat.conversation_id, "client_id": "a-1"})
    assert error["code"] == "conflict"
    conv = await _conversation(rt, chat.conversation_id)
    assert (conv.status, conv.operator_id, conv.offered_to) == ("closed", None, None)


async def test_transfer_to_operator_moves_the_chat_at_once(rt: Runtime, world: World, live: Live) -> None:
    a = await wc.active_chat(live=live, world=world)
    cid = a.chat.conversation_id
    leo_id = await _new_operator(rt, workspace_id=world.workspace_id, email="leo@shop.example", name="Leo",
                                 department_ids=[world.department_id])
    leo, _, _ = await wc.operator_connect(live=live, email="leo@shop.example")
    await wc.go_online(ws=leo)

    await wc.send(ws=a.operator, frame={"type": "transfer", "conversation_id": cid, "operator_id": leo_id})
    removed = await wc.recv_until(ws=a.operator, type="chat_removed")
    assert removed == {"type": "chat_removed", "conversation_id": cid, "reason": "transferred"}
    chat = await wc.recv_until(ws=leo, type="chat")
    assert (chat["conversation"]["id"], chat["conversation"]["operator_id"]) == (cid, leo_id)
    status = await wc.recv_until(ws=a.visitor, type="status", where=lambda f: f["conversation"]["operator"] is not None
                                 and f["conversation"]["operator"]["name"] == "Leo")
    assert status["conversation"]["status"] == "active"

    for frame in ({"type": "message", "conversation_id": cid, "client_id": "m-1", "text": "still mine?"},
                  {"type": "typing", "conversation_id": cid, "on": True, "client_id": "m-2"},
                  {"type": "read", "conversation_id": cid, "seq": 1, "client_id": "m-3"},
                  {"type": "close", "conversation_id": cid, "client_id": "m-4"},
                  {"type": "transfer", "conversation_id": cid, "operator_id": world.operator_id, "client_id": "m-5"}):
        assert (await _error(a.operator, frame))["code"] == "not_found", frame

    await wc.send(ws=a.visitor, frame={"type": "typing", "on": True})
    await wc.recv_until(ws=leo, type="typing")
    await wc.send(ws=a.visitor, frame={"type": "message", "client_id": "v-1", "text": "for Leo"})
    got = await wc.recv_until(ws=leo, type="message", where=lambda f: f["message"]["sender"] == "visitor")
    assert got["message"]["text"] == "for Leo"
    # Leo has it, so it was fanned out; the former operator's socket got none of it.
    leaked = [f for f in await wc.frames_until_pong(ws=a.operator)
              if f["type"] in ("message", "typing", "chat", "read")]
    assert leaked == []

    await wc.send(ws=leo, frame={"type": "message", "conversation_id": cid, "client_id": "l-1", "text": "Leo here"})
    got = await wc.recv_until(ws=a.visitor, type="message", where=lambda f: f["message"]["sender"] == "operator")
    assert (got["message"]["text"], got["message"]["sender_name"]) == ("Leo here", "Leo")
    conv = await _conversation(rt, cid)
    assert (conv.status, conv.operator_id) == ("active", leo_id)


async def test_transfer_to_department(rt: Runtime, world: World, live: Live) -> None:
    a = await wc.active_chat(live=live, world=world)
    cid = a.chat.conversation_id
    sales = await _new_department(rt, world, name="Sales")
    leo_id = await _new_operator(rt, workspace_id=world.workspace_id, email="leo@shop.example", name="Leo",
                                 department_ids=[sales])
    leo, _, _ = await wc.operator_connect(live=live, email="leo@shop.example")
    await wc.go_online(ws=leo)

    error = await _error(a.operator, {"type": "transfer", "conversation_id": cid, "operator_id": leo_id,
                                      "department_id": sales, "client_id": "t-0"})
    assert error["code"] == "invalid"
    await wc.send(ws=a.operator, frame={"type": "transfer", "conversation_id": cid, "department_id": sales})
    removed = await wc.recv_until(ws=a.operator, type="chat_removed")
    assert (removed["conversation_id"], removed["reason"]) == (cid, "transferred")
    status = await wc.recv_until(ws=a.visitor, type="status")
    assert (status["conversation"]["status"], status["conversation"]["operator"]) == ("queued", None)
    chat = await wc.accept_offer(ws=leo, conversation_id=cid)
    assert chat["conversation"]["department"] == {"id": sales, "name": "Sales"}
    status = await wc.recv_until(ws=a.visitor, type="status", where=lambda f: f["conversation"]["status"] == "active")
    assert status["conversation"]["operator"] == {"name": "Leo"}
    conv = await _conversation(rt, cid)
    assert (conv.department_id, conv.operator_id) == (sales, leo_id)
    assert (await _error(a.operator, {"type": "message", "conversation_id": cid, "client_id": "m-1",
                                      "text": "hello?"}))["code"] == "not_found"


async def test_operator_close(rt: Runtime, world: World, live: Live) -> None:
    a = await wc.active_chat(live=live, world=world)
    cid = a.chat.conversation_id
    await wc.send(ws=a.operator, frame={"type": "close", "conversation_id": cid})
    status = await wc.recv_until(ws=a.visitor, type="status")
    assert status["conversation"]["status"] == "closed"
    chat = await wc.recv_until(ws=a.operator, type="chat", where=lambda f: f["conversation"]["status"] == "closed")
    assert chat["conversation"]["closed_at"] is not None
    assert (await _error(a.visitor, {"type": "message", "client_id": "v-1", "text": "wait"}))["code"] == "conflict"
    assert (await _error(a.operator, {"type": "message", "conversation_id": cid, "client_id": "o-1",
                                      "text": "bye"}))["code"] == "conflict"
    conv = await _conversation(rt, cid)
    assert (conv.status, conv.closed_by) == ("closed", "operator")
    # Closed chats cannot be accepted or transferred.
    assert (await _error(a.operator, {"type": "accept", "conversation_id": cid,
                                      "client_id": "o-2"}))["code"] == "conflict"


@pytest.mark.parametrize("who", ["other_department", "other_workspace"])
async def test_foreign_operator_cannot_touch_the_conversation(rt: Runtime, world: World, live: Live,
                                                             who: str) -> None:
    if who == "other_department":
        sales = await _new_department(rt, world, name="Sales")
        await _new_operator(rt, workspace_id=world.workspace_id, email="eve@shop.example", name="Eve",
                            department_ids=[sales])
    else:
        async with rt.db.unit_of_work() as uow:
            ws2 = await factories.workspace(uow, name="Rival Ltd")
            site2 = await factories.site(uow, workspace_id=ws2.id, name="Rival",
                                         allowed_origins=["https://rival.example"])
            dept2 = await factories.department(uow, workspace_id=ws2.id, site_id=site2.id)
        await _new_operator(rt, workspace_id=ws2.id, email="eve@rival.example", name="Eve", role="admin",
                            department_ids=[dept2.id])
    email = "eve@shop.example" if who == "other_department" else "eve@rival.example"
    await _make_manual(rt, world)
    mia, _, _ = await wc.operator_connect(live=live, email=world.operator_email)
    await wc.go_online(ws=mia)
    eve, welcome, _ = await wc.operator_connect(live=live, email=email)
    await wc.go_online(ws=eve)
    chat = await wc.start_chat(live=live, site_key=world.site_key, origin=world.origin)
    cid = chat.conversation_id
    await wc.recv_until(ws=mia, type="queue", where=lambda f: bool(f["queue"]))

    assert (await _error(eve, {"type": "accept", "conversation_id": cid, "client_id": "e-1"}))["code"] == "not_found"
    assert (await _conversation(rt, cid)).status == "queued"
    await wc.send(ws=mia, frame={"type": "accept", "conversation_id": cid})
    await wc.recv_until(ws=mia, type="chat")
    visitor, _ = await wc.visitor_hello(live=live, chat=chat)

    for frame in ({"type": "accept", "conversation_id": cid},
                  {"type": "history", "conversation_id": cid, "after_seq": 0},
                  {"type": "message", "conversation_id": cid, "text": "hello from Eve"},
                  {"type": "typing", "conversation_id": cid, "on": True},
                  {"type": "read", "conversation_id": cid, "seq": 1},
                  {"type": "transfer", "conversation_id": cid, "operator_id": welcome["operator"]["id"]},
                  {"type": "close", "conversation_id": cid}):
        error = await _error(eve, {**frame, "client_id": f"e-{frame['type']}"})
        assert error["code"] == "not_found", frame
        assert cid not in error["message"]

    await wc.send(ws=visitor, frame={"type": "message", "client_id": "v-1", "text": "secret order A-17"})
    await wc.recv_until(ws=mia, type="message", where=lambda f: f["message"]["sender"] == "visitor")
    frames = await wc.frames_until_pong(ws=eve)
    assert "secret order" not in repr(frames)
    assert not [f for f in frames if f["type"] in ("message", "typing", "chat", "offer", "history")]
    assert all(not f["queue"] for f in frames if f["type"] == "queue")
    conv = await _conversation(rt, cid)
    assert (conv.status, conv.operator_id, conv.seq) == ("active", world.operator_id, 2)
    # Nothing Eve sent reached the visitor.
    assert not [f for f in await wc.frames_until_pong(ws=visitor)
                if f["type"] in ("typing", "read") or (f["type"] == "message" and "Eve" in f["message"]["text"])]


async def test_removed_from_department_loses_access_at_once(rt: Runtime, world: World, live: Live) -> None:
    await _make_manual(rt, world)
    sales = await _new_department(rt, world, name="Sales")
    mia, _, _ = await wc.operator_connect(live=live, email=world.operator_email)
    await wc.go_online(ws=mia)
    chat = await wc.start_chat(live=live, site_key=world.site_key, origin=world.origin)
    await wc.recv_until(ws=mia, type="queue", where=lambda f: bool(f["queue"]))
    admin_cookie = await wc.login(live=live, email=world.admin_email)
    response = await wc.console_request(live=live, cookie=admin_cookie, method="PATCH",
                                        path=f"/api/v1/operators/{world.operator_id}",
                                        json_body={"department_ids": [sales]})
    assert response.status_code == 200, response.text
    departments = await wc.recv_until(ws=mia, type="departments")
    assert [d["id"] for d in departments["departments"]] == [sales]
    await wc.recv_until(ws=mia, type="queue", where=lambda f: f["queue"] == [])
    error = await _error(mia, {"type": "accept", "conversation_id": chat.conversation_id, "client_id": "a-1"})
    assert error["code"] == "not_found"
    assert (await _conversation(rt, chat.conversation_id)).status == "queued"


async def test_disabling_an_operator_closes_their_socket(rt: Runtime, world: World, live: Live) -> None:
    mia, _, mia_cookie = await wc.operator_connect(live=live, email=world.operator_email)
    mia_tab2, _, _ = await wc.operator_connect(live=live, email=world.operator_email)
    await wc.go_online(ws=mia)
    ada, _, admin_cookie = await wc.operator_connect(live=live, email=world.admin_email)
    response = await wc.console_request(live=live, cookie=admin_cookie, method="PATCH",
                                        path=f"/api/v1/operators/{world.operator_id}", json_body={"disabled": True})
    assert response.status_code == 200, response.text
    for ws in (mia, mia_tab2):  # every session of theirs
        code, _ = await wc.expect_close(ws=ws, timeout=2)
        assert code == 4403
    await wc.send(ws=ada, frame={"type": "ping"})
    await wc.recv_until(ws=ada, type="pong")  # the admin's socket is untouched
    with pytest.raises(InvalidStatus) as refused:
        await wc.operator_socket(live=live, cookie=mia_cookie)
    assert refused.value.response.status_code == 403
    async with rt.db.unit_of_work(readonly=True) as uow:
        op = await user_operators.get_operator(uow, world.operator_id)
        assert op is not None
        assert (op.disabled, op.status) == (True, "offline")


async def test_logout_closes_only_that_sessions_socket(rt: Runtime, world: World, live: Live) -> None:
    tab1, _, cookie1 = await wc.operator_connect(live=live, email=world.operator_email)
    tab2, _, cookie2 = await wc.operator_connect(live=live, email=world.operator_email)
    assert cookie1 != cookie2
    response = await wc.console_request(live=live, cookie=cookie1, method="POST", path="/api/v1/auth/logout")
    assert response.status_code == 204
    code, _ = await wc.expect_close(ws=tab1, timeout=2)
    assert code == 4403
    await wc.send(ws=tab2, frame={"type": "ping"})
    await wc.recv_until(ws=tab2, type="pong")
    with pytest.raises(InvalidStatus) as refused:
        await wc.operator_socket(live=live, cookie=cookie1)
    assert refused.value.response.status_code == 403


async def test_status_change_reaches_every_tab(rt: Runtime, world: World, live: Live) -> None:
    tab1, _, _ = await wc.operator_connect(live=live, email=world.operator_email)
    tab2, _, _ = await wc.operator_connect(live=live, email=world.operator_email)
    await wc.go_online(ws=tab1, status="away")
    assert (await wc.recv_until(ws=tab2, type="status"))["status"] == "away"
    error = await _error(tab1, {"type": "status", "status": "busy", "client_id": "s-1"})
    assert error["code"] == "invalid"
    async with rt.db.unit_of_work(readonly=True) as uow:
        op = await user_operators.get_operator(uow, world.operator_id)
        assert op is not None
        assert op.status == "away"


@pytest.mark.parametrize("case", ["foreign_origin", "no_origin", "no_cookie", "bad_cookie"])
async def test_handshake_refused(rt: Runtime, world: World, live: Live, case: str) -> None:
    cookie = await wc.login(live=live, email=world.operator_email)
    origin: str | None = {"foreign_origin": "https://evil.example", "no_origin": None}.get(case, "")
    if case == "no_cookie":
        cookie = ""
    elif case == "bad_cookie":
        cookie = ("x" if cookie[0] != "x" else "y") + cookie[1:]  # one character off
    with pytest.raises(InvalidStatus) as refused:
        await wc.operator_socket(live=live, cookie=cookie or None, origin=origin)
    assert refused.value.response.status_code == 403
    # The same cookie from our own origin is accepted.
    fresh = await wc.login(live=live, email=world.operator_email)
    _, welcome, _ = await wc.operator_connect(live=live, cookie=fresh)
    assert welcome["operator"]["id"] == world.operator_id


async def test_operator_frame_errors(rt: Runtime, world: World, live: Live) -> None:
    op, _, _ = await wc.operator_connect(live=live, email=world.operator_email)
    error = await _error(op, {"type": "dance", "client_id": "d-1"})
    assert error["code"] == "unknown_type"
    invalid: list[dict[str, Any]] = [
        {"type": "history", "conversation_id": "nope", "after_seq": -1, "client_id": "h-1"},
        {"type": "transfer", "conversation_id": "nope", "client_id": "t-1"}]
    for frame in invalid:
        assert (await _error(op, frame))["code"] == "invalid"
    missing: list[dict[str, Any]] = [
        {"type": "accept", "conversation_id": "does-not-exist", "client_id": "x-1"},
        {"type": "accept", "conversation_id": None, "client_id": "x-2"},
        {"type": "message", "conversation_id": "does-not-exist", "client_id": "x-3", "text": "hi"},
        {"type": "history", "conversation_id": ["x"], "client_id": "x-4"}]
    for frame in missing:
        assert (await _error(op, frame))["code"] == "not_found", frame
    await wc.send(ws=op, frame={"type": "ping"})
    assert await wc.recv_until(ws=op, type="pong") == {"type": "pong"}


async def test_expired_session_socket_is_closed(rt: Runtime, world: World, live: Live) -> None:
    op, _, _ = await wc.operator_connect(live=live, email=world.operator_email)
    await wc.go_online(ws=op)
    clock.advance(timedelta(seconds=rt.settings.session_ttl_s + 5))
    await wc.send(ws=op, frame={"type": "ping"})
    code, frames = await wc.expect_close(ws=op, timeout=2)
    assert code == 4403
    assert not [f for f in frames if f["type"] == "pong"]
