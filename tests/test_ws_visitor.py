"""The visitor WebSocket protocol on a real server (docs/protocol.md, "Visitor side")."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select

from confide.chats import service as chats
from confide.chats.models import Conversation, Message
from confide.core.runtime import Runtime
from confide.users import sessions as user_sessions
from confide.workspaces import service as workspaces
from confide.workspaces.schemas import DepartmentPatch
from tests import wsclient as wc
from tests.conftest import Live, World


@pytest.fixture(autouse=True)
async def _close_sockets(live: Live) -> AsyncIterator[None]:
    yield
    await wc.close_all()


async def _history(rt: Runtime, conversation_id: str) -> list[dict[str, Any]]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        conv = await uow.session.get(Conversation, conversation_id)
        assert conv is not None
        return await chats.messages_after(rt, uow, conv, 0)


async def _conversation(rt: Runtime, conversation_id: str) -> Conversation:
    async with rt.db.unit_of_work(readonly=True) as uow:
        conv = await uow.session.get(Conversation, conversation_id)
        assert conv is not None
        return conv


async def _rows_with_client_id(rt: Runtime, conversation_id: str, client_id: str) -> int:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return int(await uow.session.scalar(select(func.count()).select_from(Message).where(
            Message.conversation_id == conversation_id, Message.client_id == client_id)) or 0)


async def _say(ws: Any, client_id: str, text: str) -> dict[str, Any]:
    await wc.send(ws=ws, frame={"type": "message", "client_id": client_id, "text": text})
    return await wc.recv_until(ws=ws, type="ack", where=lambda f: f["client_id"] == client_id)


async def test_welcome_carries_state_and_history(rt: Runtime, world: World, live: Live) -> None:
    op, _, _ = await wc.operator_connect(live=live, email=world.operator_email)
    await wc.go_online(ws=op)
    chat = await wc.start_chat(live=live, site_key=world.site_key, origin=world.origin)

    visitor, welcome = await wc.visitor_hello(live=live, chat=chat)
    conv = welcome["conversation"]
    assert conv["id"] == chat.conversation_id
    assert conv["status"] == "queued"
    assert conv["queue_position"] == 1
    assert conv["operator"] is None
    assert welcome["messages"] == []
    assert welcome["seq"] == 0

    await wc.accept_offer(ws=op, conversation_id=chat.conversation_id)
    status = await wc.recv_until(ws=visitor, type="status", where=lambda f: f["conversation"]["status"] == "active")
    assert status["conversation"]["operator"] == {"name": "Mia"}
    assert status["conversation"]["queue_position"] is None
    ack = await _say(visitor, "c-1", "Hello, my order is late")
    await wc.send(ws=op, frame={"type": "message", "conversation_id": chat.conversation_id, "client_id": "o-1",
                                "text": "Let me look."})
    await wc.recv_until(ws=op, type="ack", where=lambda f: f["client_id"] == "o-1")
    await visitor.close()

    _, welcome = await wc.visitor_hello(live=live, chat=chat, last_seq=0)
    assert welcome["conversation"]["status"] == "active"
    assert welcome["conversation"]["operator"] == {"name": "Mia"}
    assert welcome["seq"] == 3
    assert [(m["seq"], m["sender"], m["text"]) for m in welcome["messages"]] == [
        (1, "system", "Mia joined the chat."),
        (2, "visitor", "Hello, my order is late"),
        (3, "operator", "Let me look."),
    ]
    assert welcome["messages"][1]["id"] == ack["message"]["id"]
    assert welcome["messages"][2]["sender_name"] == "Mia"
    assert welcome["messages"] == await _history(rt, chat.conversation_id)


async def test_ack_only_after_commit_and_message_reaches_operator(rt: Runtime, world: World, live: Live) -> None:
    a = await wc.active_chat(live=live, world=world)
    await wc.send(ws=a.visitor, frame={"type": "message", "client_id": "c-1", "text": "Is it in stock?"})
    skipped: list[dict[str, Any]] = []
    ack = await wc.recv_until(ws=a.visitor, type="ack", skipped=skipped)
    # The moment the ack arrives, the row is committed: another transaction sees it.
    async with rt.db.unit_of_work(readonly=True) as uow:
        row = await uow.session.get(Message, ack["message"]["id"])
        assert row is not None
        assert (row.conversation_id, row.seq, row.sender, row.sender_id, row.client_id) == (
            a.chat.conversation_id, ack["message"]["seq"], "visitor", a.chat.visitor_id, "c-1")
    assert ack["client_id"] == "c-1"
    assert ack["message"]["text"] == "Is it in stock?"
    assert ack["message"]["sender"] == "visitor"
    # The sender gets the broadcast too (clients de-duplicate by id).
    echoed = [f for f in skipped if f["type"] == "message"]
    assert [f["message"]["id"] for f in echoed] == [ack["message"]["id"]]

    relayed = await wc.recv_until(ws=a.operator, type="message")
    assert relayed["conversation_id"] == a.chat.conversation_id
    assert relayed["message"] == ack["message"]
    stored = await _history(rt, a.chat.conversation_id)
    assert stored[-1]["text"] == "Is it in stock?"


async def test_retried_client_id_is_stored_once(rt: Runtime, world: World, live: Live) -> None:
    a = await wc.active_chat(live=live, world=world)
    first = await _say(a.visitor, "c-1", "Hello")
    # Same socket: a plain retry, and two copies sent back to back (possibly one batch).
    retry = await _say(a.visitor, "c-1", "Hello")
    await wc.send(ws=a.visitor, frame={"type": "message", "client_id": "c-2", "text": "Twice"})
    await wc.send(ws=a.visitor, frame={"type": "message", "client_id": "c-2", "text": "Twice"})
    twice = [await wc.recv_until(ws=a.visitor, type="ack", where=lambda f: f["client_id"] == "c-2")
             for _ in range(2)]
    assert retry["message"]["id"] == first["message"]["id"]
    assert retry["message"]["seq"] == first["message"]["seq"]
    assert twice[0]["message"]["id"] == twice[1]["message"]["id"]
    assert twice[0]["message"]["seq"] == twice[1]["message"]["seq"] == first["message"]["seq"] + 1
    await a.visitor.close()

    # After a reconnect (the page was reloaded before the ack came).
    visitor, _ = await wc.visitor_hello(live=live, chat=a.chat, last_seq=first["message"]["seq"])
    again = await _say(visitor, "c-1", "Hello")
    assert (again["message"]["id"], again["message"]["seq"]) == (first["message"]["id"], first["message"]["seq"])
    assert await _rows_with_client_id(rt, a.chat.conversation_id, "c-1") == 1
    assert await _rows_with_client_id(rt, a.chat.conversation_id, "c-2") == 1
    # Even once the chat is closed, a retry of a stored message is acknowledged, not refused.
    await wc.send(ws=visitor, frame={"type": "end"})
    await wc.recv_until(ws=visitor, type="status", where=lambda f: f["conversation"]["status"] == "closed")
    late = await _say(visitor, "c-2", "Twice")
    assert late["message"]["id"] == twice[0]["message"]["id"]
    conv = await _conversation(rt, a.chat.conversation_id)
    assert conv.seq == first["message"]["seq"] + 2  # joined, c-1, c-2, ended: nothing stored twice
    # The operator saw each visitor message once.
    frames = await wc.frames_until_pong(ws=a.operator)
    assert [f["message"]["client_id"] for f in frames
            if f["type"] == "message" and f["message"]["sender"] == "visitor"] == ["c-1", "c-2"]


async def test_resume_gets_exactly_the_messages_after_last_seq(rt: Runtime, world: World, live: Live) -> None:
    a = await wc.active_chat(live=live, world=world)
    for n in range(1, 4):
        await _say(a.visitor, f"v-{n}", f"visitor {n}")
        await wc.send(ws=a.operator, frame={"type": "message", "conversation_id": a.chat.conversation_id,
                                            "client_id": f"o-{n}", "text": f"operator {n}"})
        await wc.recv_until(ws=a.operator, type="ack", where=wc.has(client_id=f"o-{n}"))
    await a.visitor.close()  # seq 1 is the "joined" line, then 2..7
    visitor, welcome = await wc.visitor_hello(live=live, chat=a.chat, last_seq=4)
    assert welcome["seq"] == 7
    assert [m["seq"] for m in welcome["messages"]] == [5, 6, 7]
    assert [m["text"] for m in welcome["messages"]] == ["operator 2", "visitor 3", "operator 3"]
    await visitor.close()

    caught_up, welcome = await wc.visitor_hello(live=live, chat=a.chat, last_seq=7)
    assert welcome["messages"] == []
    assert welcome["seq"] == 7
    # Live traffic continues on the resumed socket.
    await wc.send(ws=a.operator, frame={"type": "message", "conversation_id": a.chat.conversation_id,
                                        "client_id": "o-4", "text": "still there?"})
    live_msg = await wc.recv_until(ws=caught_up, type="message")
    assert live_msg["message"]["seq"] == 8


async def test_last_seq_ahead_of_server_gets_resync(rt: Runtime, world: World, live: Live) -> None:
    a = await wc.active_chat(live=live, world=world)
    await _say(a.visitor, "c-1", "one")
    await _say(a.visitor, "c-2", "two")
    await a.visitor.close()
    visitor, resync = await wc.visitor_hello(live=live, chat=a.chat, last_seq=50, expect="resync")
    assert resync["seq"] == 3
    assert resync["conversation"]["id"] == a.chat.conversation_id
    assert [m["seq"] for m in resync["messages"]] == [1, 2, 3]
    assert resync["messages"] == await _history(rt, a.chat.conversation_id)
    # A bad last_seq is treated as 0 (full history in a welcome), not as an error.
    await visitor.close()
    for bad in (-1, "3", True, None):
        ws, welcome = await wc.visitor_hello(live=live, chat=a.chat, last_seq=bad)  # type: ignore[arg-type]
        assert [m["seq"] for m in welcome["messages"]] == [1, 2, 3]
        await ws.close()


async def test_typing_and_read_flow_both_ways(rt: Runtime, world: World, live: Live) -> None:
    a = await wc.active_chat(live=live, world=world)
    cid = a.chat.conversation_id
    await wc.send(ws=a.visitor, frame={"type": "typing", "on": True})
    typing = await wc.recv_until(ws=a.operator, type="typing")
    assert typing == {"type": "typing", "conversation_id": cid, "from": "visitor", "on": True}
    await wc.send(ws=a.operator, frame={"type": "typing", "conversation_id": cid, "on": True})
    typing = await wc.recv_until(ws=a.visitor, type="typing")
    assert typing == {"type": "typing", "conversation_id": cid, "from": "operator", "on": True}
    await wc.send(ws=a.visitor, frame={"type": "typing", "on": False})
    assert (await wc.recv_until(ws=a.operator, type="typing"))["on"] is False

    msg = await _say(a.visitor, "c-1", "hi")
    await wc.send(ws=a.operator, frame={"type": "read", "conversation_id": cid, "seq": msg["message"]["seq"]})
    read = await wc.recv_until(ws=a.visitor, type="read")
    assert read == {"type": "read", "conversation_id": cid, "from": "operator", "seq": 2}
    await wc.send(ws=a.operator, frame={"type": "message", "conversation_id": cid, "client_id": "o-1",
                                        "text": "hello"})
    reply = await wc.recv_until(ws=a.visitor, type="message", where=lambda f: f["message"]["sender"] == "operator")
    await wc.send(ws=a.visitor, frame={"type": "read", "seq": reply["message"]["seq"]})
    read = await wc.recv_until(ws=a.operator, type="read")
    assert read == {"type": "read", "conversation_id": cid, "from": "visitor", "seq": 3}
    conv = await _conversation(rt, cid)
    assert (conv.visitor_read_seq, conv.operator_read_seq) == (3, 2)

    # Nobody gets their own typing/read echoed back.
    visitor_frames = await wc.frames_until_pong(ws=a.visitor)
    operator_frames = await wc.frames_until_pong(ws=a.operator)
    assert not [f for f in visitor_frames if f["type"] in ("typing", "read")]
    assert not [f for f in operator_frames if f["type"] in ("typing", "read")]


async def test_read_ahead_is_capped_and_bad_seq_is_invalid(rt: Runtime, world: World, live: Live) -> None:
    a = await wc.active_chat(live=live, world=world)
    await wc.send(ws=a.visitor, frame={"type": "read", "seq": 999})
    read = await wc.recv_until(ws=a.operator, type="read")
    assert read["seq"] == 1  # only the "joined" line exists
    for bad in (-1, "2", None, 1.5):
        await wc.send(ws=a.visitor, frame={"type": "read", "seq": bad})
        error = await wc.recv_until(ws=a.visitor, type="error")
        assert error["code"] == "invalid"
    assert (await _conversation(rt, a.chat.conversation_id)).visitor_read_seq == 1


async def test_end_closes_the_chat_for_both(rt: Runtime, world: World, live: Live) -> None:
    a = await wc.active_chat(live=live, world=world)
    cid = a.chat.conversation_id
    await wc.send(ws=a.visitor, frame={"type": "end"})
    status = await wc.recv_until(ws=a.visitor, type="status")
    assert status["conversation"]["status"] == "closed"
    assert status["conversation"]["closed_at"] is not None
    ended = await wc.recv_until(ws=a.operator, type="message")
    assert (ended["message"]["sender"], ended["message"]["text"]) == ("system", "The visitor ended the chat.")
    chat = await wc.recv_until(ws=a.operator, type="chat", where=lambda f: f["conversation"]["id"] == cid)
    assert chat["conversation"]["status"] == "closed"

    await wc.send(ws=a.visitor, frame={"type": "message", "client_id": "late-1", "text": "one more thing"})
    error = await wc.recv_until(ws=a.visitor, type="error")
    assert (error["code"], error["ref"]) == ("conflict", "late-1")
    await wc.send(ws=a.operator, frame={"type": "message", "conversation_id": cid, "client_id": "late-2",
                                        "text": "bye"})
    error = await wc.recv_until(ws=a.operator, type="error")
    assert (error["code"], error["ref"]) == ("conflict", "late-2")
    conv = await _conversation(rt, cid)
    assert (conv.status, conv.closed_by) == ("closed", "visitor")
    assert await _rows_with_client_id(rt, cid, "late-1") == 0
    assert await _rows_with_client_id(rt, cid, "late-2") == 0
    # Ending twice is harmless.
    await wc.send(ws=a.visitor, frame={"type": "end"})
    frames = await wc.frames_until_pong(ws=a.visitor)
    assert not [f for f in frames if f["type"] == "error"]
    assert (await _conversation(rt, cid)).seq == conv.seq
    # The visitor never sees the operators' view of the conversation.
    assert not [f for f in frames if f["type"] in ("chat", "chat_removed", "offer", "queue")]


async def test_rate_stores_score_and_comment(rt: Runtime, world: World, live: Live) -> None:
    a = await wc.active_chat(live=live, world=world)
    cid = a.chat.conversation_id
    await wc.send(ws=a.visitor, frame={"type": "end"})
    await wc.recv_until(ws=a.visitor, type="status", where=lambda f: f["conversation"]["status"] == "closed")
    for bad in (0, 6, "5", 4.5, True, None):
        await wc.send(ws=a.visitor, frame={"type": "rate", "score": bad, "client_id": "r-bad"})
        error = await wc.recv_until(ws=a.visitor, type="error")
        assert (error["code"], error["ref"]) == ("invalid", "r-bad")
    await wc.send(ws=a.visitor, frame={"type": "rate", "score": 4, "comment": "x" * 1001})
    assert (await wc.recv_until(ws=a.visitor, type="error"))["code"] == "invalid"
    conv = await _conversation(rt, cid)
    assert (conv.rating, conv.rating_comment_enc) == (None, None)

    await wc.send(ws=a.visitor, frame={"type": "rate", "score": 5, "comment": "Quick & <b>kind</b>"})
    status = await wc.recv_until(ws=a.visitor, type="status", where=lambda f: f["conversation"]["rating"] == 5)
    assert status["conversation"]["status"] == "closed"
    chat = await wc.recv_until(ws=a.operator, type="chat", where=lambda f: f["conversation"]["rating"] == 5)
    assert chat["conversation"]["rating_comment"] == "Quick & <b>kind</b>"
    conv = await _conversation(rt, cid)
    assert conv.rating == 5
    assert conv.rating_comment_enc is not None
    assert b"kind" not in conv.rating_comment_enc  # stored encrypted
    async with rt.db.unit_of_work(readonly=True) as uow:
        view = await chats.operator_view(rt, uow, conv)
    assert (view["rating"], view["rating_comment"]) == (5, "Quick & <b>kind</b>")

    # Every score 1..5 is accepted (the visitor may change their mind).
    for score in (1, 2, 3):
        await wc.send(ws=a.visitor, frame={"type": "rate", "score": score})
        status = await wc.recv_until(ws=a.visitor, type="status")
        assert status["conversation"]["rating"] == score
    assert (await _conversation(rt, cid)).rating == 3


async def test_queue_position_reported_and_moves_up(rt: Runtime, world: World, live: Live) -> None:
    async with rt.db.unit_of_work() as uow:
        admin = await user_sessions.actor_for(uow, world.admin_id)
        await workspaces.update_department(uow, admin, world.department_id, DepartmentPatch(strategy="manual"))
    op, _, _ = await wc.operator_connect(live=live, email=world.operator_email)
    await wc.go_online(ws=op)
    first = await wc.start_chat(live=live, site_key=world.site_key, origin=world.origin, name="First")
    second = await wc.start_chat(live=live, site_key=world.site_key, origin=world.origin, name="Second")
    third = await wc.start_chat(live=live, site_key=world.site_key, origin=world.origin, name="Third")
    v1, w1 = await wc.visitor_hello(live=live, chat=first)
    v2, w2 = await wc.visitor_hello(live=live, chat=second)
    v3, w3 = await wc.visitor_hello(live=live, chat=third)
    assert [w["conversation"]["queue_position"] for w in (w1, w2, w3)] == [1, 2, 3]
    assert {w["conversation"]["status"] for w in (w1, w2, w3)} == {"queued"}

    await wc.send(ws=op, frame={"type": "accept", "conversation_id": first.conversation_id})
    s1 = await wc.recv_until(ws=v1, type="status")
    assert (s1["conversation"]["status"], s1["conversation"]["queue_position"]) == ("active", None)
    s2 = await wc.recv_until(ws=v2, type="status", where=lambda f: f["conversation"]["queue_position"] == 1)
    s3 = await wc.recv_until(ws=v3, type="status", where=lambda f: f["conversation"]["queue_position"] == 2)
    assert s2["conversation"]["status"] == s3["conversation"]["status"] == "queued"

    # The visitor ahead gives up: the last one moves up again.
    await wc.send(ws=v2, frame={"type": "end"})
    s3 = await wc.recv_until(ws=v3, type="status", where=lambda f: f["conversation"]["queue_position"] == 1)
    assert s3["conversation"]["status"] == "queued"


async def test_ping_pong_and_second_hello(rt: Runtime, world: World, live: Live) -> None:
    a = await wc.active_chat(live=live, world=world)
    await wc.send(ws=a.visitor, frame={"type": "ping"})
    assert await wc.recv_until(ws=a.visitor, type="pong") == {"type": "pong"}
    await wc.send(ws=a.visitor, frame={"type": "hello", "token": a.chat.token, "client_id": "h-2",
                                       "conversation_id": a.chat.conversation_id, "last_seq": 0})
    error = await wc.recv_until(ws=a.visitor, type="error")
    assert (error["code"], error["ref"]) == ("invalid", "h-2")
    await wc.send(ws=a.visitor, frame={"type": "ping"})
    await wc.recv_until(ws=a.visitor, type="pong")


async def test_two_tabs_of_one_visitor_both_receive(rt: Runtime, world: World, live: Live) -> None:
    a = await wc.active_chat(live=live, world=world)
    tab2, _ = await wc.visitor_hello(live=live, chat=a.chat, last_seq=1)
    ack = await _say(a.visitor, "c-1", "from tab 1")
    echoed = await wc.recv_until(ws=tab2, type="message")
    assert echoed["message"] == ack["message"]
    # Tab 2 does not get tab 1's ack.
    assert not [f for f in await wc.frames_until_pong(ws=tab2) if f["type"] == "ack"]
