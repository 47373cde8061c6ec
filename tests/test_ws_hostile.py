"""Hostile visitors on the real server: refused handshakes, bad tokens, foreign conversations,
malformed and oversized frames, floods, markup. Denial looks like absence and leaks nothing."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from websockets.exceptions import InvalidStatus

from confide.chats import service as chats
from confide.chats.models import Conversation, Message
from confide.core import clock
from confide.core.runtime import Runtime
from tests import factories
from tests import wsclient as wc
from tests.conftest import Live, World


@pytest.fixture(autouse=True)
async def _close_sockets(live: Live) -> AsyncIterator[None]:
    yield
    await wc.close_all()


async def _stored(rt: Runtime, conversation_id: str, sender: str | None = None) -> list[dict[str, Any]]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        conv = await uow.session.get(Conversation, conversation_id)
        assert conv is not None
        messages = await chats.messages_after(rt, uow, conv, 0)
    return [m for m in messages if sender is None or m["sender"] == sender]


async def _message_count(rt: Runtime, conversation_id: str) -> int:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return int(await uow.session.scalar(select(func.count()).select_from(Message).where(
            Message.conversation_id == conversation_id)) or 0)


async def _online(rt: Runtime, world: World) -> None:
    """Somebody must be online for the widget to start a chat; Mia, without a console."""
    from confide.routing import service as routing
    from confide.users import sessions as user_sessions

    async with rt.db.unit_of_work() as uow:
        await factories.present(uow, world.operator_id)  # a console of hers is open (presence)
        await routing.set_status(rt, uow, await user_sessions.actor_for(uow, world.operator_id), "online")


async def _queued_chat(rt: Runtime, world: World, live: Live, *, name: str = "Ana") -> wc.VisitorChat:
    await _online(rt, world)
    return await wc.start_chat(live=live, site_key=world.site_key, origin=world.origin, name=name)


async def _refused_hello(live: Live, site_key: str, origin: str, hello: dict[str, Any]) -> tuple[int | None, list[Any]]:
    ws = await wc.visitor_socket(live=live, site_key=site_key, origin=origin)
    await wc.send(ws=ws, frame={"type": "hello", **hello})
    return await wc.expect_close(ws=ws)


# ---------------------------------------------------------------- handshake
@pytest.mark.parametrize("origin", ["https://evil.example", None, "null", "https://shop.example.evil.example",
                                    "http://shop.example"])
async def test_foreign_origin_is_refused_before_upgrade(rt: Runtime, world: World, live: Live,
                                                       origin: str | None) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await wc.visitor_socket(live=live, site_key=world.site_key, origin=origin)
    assert refused.value.response.status_code == 403
    ws = await wc.visitor_socket(live=live, site_key=world.site_key, origin=world.origin)  # the real one opens
    await ws.close()


@pytest.mark.parametrize("site_key", ["no-such-site", "", "x" * 100])
async def test_unknown_site_key_is_refused(rt: Runtime, world: World, live: Live, site_key: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await wc.visitor_socket(live=live, site_key=site_key, origin=world.origin)
    assert refused.value.response.status_code == 403


async def test_no_hello_in_time_closes_4408(rt: Runtime, world: World, live: Live,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rt.settings, "ws_hello_timeout_s", 0.2)
    ws = await wc.visitor_socket(live=live, site_key=world.site_key, origin=world.origin)
    code, frames = await wc.expect_close(ws=ws, timeout=3)
    assert (code, frames) == (4408, [])


async def test_first_frame_must_be_hello(rt: Runtime, world: World, live: Live) -> None:
    chat = await _queued_chat(rt, world, live)
    ws = await wc.visitor_socket(live=live, site_key=world.site_key, origin=world.origin)
    await wc.send(ws=ws, frame={"type": "message", "client_id": "c-1", "text": "hi"})
    code, frames = await wc.expect_close(ws=ws)
    assert code == 4401
    assert [f["code"] for f in frames] == ["unauthorized"]
    assert await _message_count(rt, chat.conversation_id) == 0


# ---------------------------------------------------------------- tokens
def _forge(token: str, **claims: Any) -> str:
    body, mac = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    data.update(claims)
    new_body = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":"), sort_keys=True).encode())
    return new_body.decode().rstrip("=") + "." + mac


@pytest.mark.parametrize("case", ["tampered_signature", "forged_claims", "garbage", "empty", "number", "missing",
                                  "huge"])
async def test_bad_token_closes_4401_after_an_error(rt: Runtime, world: World, live: Live, case: str) -> None:
    chat = await _queued_chat(rt, world, live)
    other = await wc.start_chat(live=live, site_key=world.site_key, origin=world.origin, name="Ben",
                                email="ben@example.com")
    body, mac = chat.token.split(".")
    tokens: dict[str, Any] = {
        "tampered_signature": body + "." + ("A" if mac[0] != "A" else "B") + mac[1:],
        # Claim to be the other visitor, keeping a genuine signature: the MAC no longer matches.
        "forged_claims": _forge(chat.token, v=other.visitor_id),
        "garbage": "not-a-token",
        "empty": "",
        "number": 12345,
        "huge": "a." + "b" * 5000,
    }
    hello: dict[str, Any] = {"conversation_id": other.conversation_id if case == "forged_claims"
                             else chat.conversation_id, "last_seq": 0}
    if case != "missing":
        hello["token"] = tokens[case]
    code, frames = await _refused_hello(live, world.site_key, world.origin, hello)
    assert code == 4401
    assert len(frames) == 1
    assert (frames[0]["type"], frames[0]["code"]) == ("error", "unauthorized")
    # The genuine token still works.
    _, welcome = await wc.visitor_hello(live=live, chat=chat)
    assert welcome["conversation"]["id"] == chat.conversation_id


async def test_expired_token_closes_4401(rt: Runtime, world: World, live: Live) -> None:
    chat = await _queued_chat(rt, world, live)
    clock.advance(timedelta(hours=12, seconds=5))
    code, frames = await _refused_hello(live, world.site_key, world.origin,
                                        {"token": chat.token, "conversation_id": chat.conversation_id, "last_seq": 0})
    assert code == 4401
    assert [(f["type"], f["code"]) for f in frames] == [("error", "unauthorized")]
    clock.reset()
    _, welcome = await wc.visitor_hello(live=live, chat=chat)  # just inside its 12 h it was fine
    assert welcome["type"] == "welcome"


async def test_token_of_another_site_is_refused(rt: Runtime, world: World, live: Live) -> None:
    other_origin = "https://other.example"
    async with rt.db.unit_of_work() as uow:
        site2 = await factories.site(uow, workspace_id=world.workspace_id, name="Other shop",
                                     allowed_origins=[other_origin, world.origin])
        dept2 = await factories.department(uow, workspace_id=world.workspace_id, site_id=site2.id, name="Other")
        await factories.operator(rt, uow, workspace_id=world.workspace_id, email="olga@shop.example", name="Olga",
                                 department_ids=[dept2.id], status="online")
    foreign = await wc.start_chat(live=live, site_key=site2.site_key, origin=other_origin)
    mine = await _queued_chat(rt, world, live)
    # Site 2's token on site 1's socket: for its own conversation, and for one of site 1.
    for conversation_id in (foreign.conversation_id, mine.conversation_id):
        code, frames = await _refused_hello(live, world.site_key, world.origin, {
            "token": foreign.token, "conversation_id": conversation_id, "last_seq": 0})
        assert code == 4401
        assert [(f["type"], f["code"]) for f in frames] == [("error", "unauthorized")]
    # Site 1's token on site 2's socket (whose allowlist admits the origin).
    code, frames = await _refused_hello(live, site2.site_key, world.origin, {
        "token": mine.token, "conversation_id": mine.conversation_id, "last_seq": 0})
    assert code == 4401
    assert [f["code"] for f in frames] == ["unauthorized"]
    _, welcome = await wc.visitor_hello(live=live, chat=foreign)  # on its own site it works
    assert welcome["conversation"]["id"] == foreign.conversation_id


async def test_another_visitors_conversation_leaks_nothing(rt: Runtime, world: World, live: Live) -> None:
    a = await wc.active_chat(live=live, world=world, name="Ana")
    ben = await wc.start_chat(live=live, site_key=world.site_key, origin=world.origin, name="Ben",
                              email="ben@example.com")
    for conversation_id in (a.chat.conversation_id, "no-such-conversation", None, 42):
        code, frames = await _refused_hello(live, world.site_key, world.origin, {
            "token": ben.token, "conversation_id": conversation_id, "last_seq": 0})
        assert code == 4401
        assert [(f["type"], f["code"]) for f in frames] == [("error", "not_found")]
        assert "Ana" not in json.dumps(frames)
    # While Ben is being refused, Ana's conversation is busy: still nothing of it reaches Ben.
    ws = await wc.visitor_socket(live=live, site_key=world.site_key, origin=world.origin)
    for n in range(20):
        await wc.send(ws=a.operator, frame={"type": "typing", "conversation_id": a.chat.conversation_id,
                                            "on": n % 2 == 0})
    await wc.send(ws=ws, frame={"type": "hello", "token": ben.token, "conversation_id": a.chat.conversation_id,
                                "last_seq": 0})
    for n in range(20):
        await wc.send(ws=a.operator, frame={"type": "typing", "conversation_id": a.chat.conversation_id,
                                            "on": n % 2 == 0})
    code, frames = await wc.expect_close(ws=ws)
    assert code == 4401
    assert [f["type"] for f in frames] == ["error"]


# ---------------------------------------------------------------- frames
async def test_oversized_frame_closes_1009_and_others_keep_working(rt: Runtime, world: World, live: Live) -> None:
    a = await wc.active_chat(live=live, world=world)
    bystander, _ = await wc.visitor_hello(live=live, chat=a.chat)
    big = json.dumps({"type": "message", "client_id": "big", "text": "x" * (16 * 1024)})
    assert len(big) > 16 * 1024
    await a.visitor.send(big)
    code, _ = await wc.expect_close(ws=a.visitor)
    assert code == 1009
    assert await _message_count(rt, a.chat.conversation_id) == 1  # only the "joined" line

    await wc.send(ws=bystander, frame={"type": "message", "client_id": "small", "text": "still here"})
    ack = await wc.recv_until(ws=bystander, type="ack")
    assert ack["message"]["text"] == "still here"
    await wc.recv_until(ws=a.operator, type="message", where=lambda f: f["message"]["client_id"] == "small")
    # A 16 KiB binary frame is refused the same way.
    other, _ = await wc.visitor_hello(live=live, chat=a.chat)
    await other.send(b"\0" * (16 * 1024 + 1))
    code, _ = await wc.expect_close(ws=other)
    assert code == 1009
    await wc.send(ws=bystander, frame={"type": "ping"})
    await wc.recv_until(ws=bystander, type="pong")


async def test_bad_frames_get_bad_frame_and_the_socket_keeps_working(rt: Runtime, world: World,
                                                                     live: Live) -> None:
    a = await wc.active_chat(live=live, world=world)
    bad: list[str | bytes] = [b"\x00\x01binary", b'{"type":"ping"}', "not json", "[1, 2, 3]", '{"text": "no type"}',
                              '{"type": 5}', "null", '"hello"', "{", ""]
    for raw in bad:
        await a.visitor.send(raw)
        error = await wc.recv(ws=a.visitor)
        assert (error["type"], error["code"]) == ("error", "bad_frame"), raw
        assert "ref" not in error
    await wc.send(ws=a.visitor, frame={"type": "ping"})
    assert await wc.recv(ws=a.visitor) == {"type": "pong"}
    await wc.send(ws=a.visitor, frame={"type": "message", "client_id": "ok-1", "text": "after the noise"})
    ack = await wc.recv_until(ws=a.visitor, type="ack")
    assert ack["message"]["text"] == "after the noise"


async def test_twenty_bad_frames_in_a_row_close_1008(rt: Runtime, world: World, live: Live) -> None:
    a = await wc.active_chat(live=live, world=world)
    # 19 bad frames, then a good one: the count starts again.
    for _ in range(19):
        await a.visitor.send(b"\x00")
    await wc.send(ws=a.visitor, frame={"type": "ping"})
    frames: list[dict[str, Any]] = []
    await wc.recv_until(ws=a.visitor, type="pong", skipped=frames)
    assert [f["code"] for f in frames] == ["bad_frame"] * 19
    for _ in range(20):
        await a.visitor.send("garbage")
    code, frames = await wc.expect_close(ws=a.visitor)
    assert code == 1008
    assert [f["code"] for f in frames] == ["bad_frame"] * 19


async def test_unknown_type(rt: Runtime, world: World, live: Live) -> None:
    a = await wc.active_chat(live=live, world=world)
    await wc.send(ws=a.visitor, frame={"type": "transfer", "client_id": "u-1", "operator_id": "x"})
    error = await wc.recv(ws=a.visitor)
    assert (error["type"], error["code"], error["ref"]) == ("error", "unknown_type", "u-1")
    await wc.send(ws=a.visitor, frame={"type": "x" * 500})
    error = await wc.recv(ws=a.visitor)
    assert error["code"] == "unknown_type"
    assert len(error["message"]) < 100  # the type is not echoed at length
    await wc.send(ws=a.visitor, frame={"type": "ping"})
    assert await wc.recv(ws=a.visitor) == {"type": "pong"}


@pytest.mark.parametrize(("frame", "ref"), [
    ({"client_id": "e-1", "text": ""}, "e-1"),
    ({"client_id": "e-2", "text": "   \n\t "}, "e-2"),
    ({"client_id": "e-3", "text": "x" * 4001}, "e-3"),
    ({"client_id": "e-4", "text": 42}, "e-4"),
    ({"client_id": "e-5", "text": ["a"]}, "e-5"),
    ({"client_id": "e-6"}, "e-6"),
    ({"text": "no client id"}, None),
    ({"client_id": "", "text": "empty client id"}, ""),
    ({"client_id": "c" * 65, "text": "long client id"}, None),
    ({"client_id": 7, "text": "numeric client id"}, None),
])
async def test_invalid_message_fields(rt: Runtime, world: World, live: Live, frame: dict[str, Any],
                                      ref: str | None) -> None:
    a = await wc.active_chat(live=live, world=world)
    await wc.send(ws=a.visitor, frame={"type": "message", **frame})
    error = await wc.recv(ws=a.visitor)
    assert (error["type"], error["code"]) == ("error", "invalid")
    assert error.get("ref") == ref
    assert await _message_count(rt, a.chat.conversation_id) == 1
    # The limits themselves are allowed: 4000 characters, a 64-character client id.
    await wc.send(ws=a.visitor, frame={"type": "message", "client_id": "k" * 64, "text": "y" * 4000})
    ack = await wc.recv_until(ws=a.visitor, type="ack")
    assert (ack["client_id"], len(ack["message"]["text"])) == ("k" * 64, 4000)


async def test_message_flood_is_rate_limited(rt: Runtime, world: World, live: Live) -> None:
    a = await wc.active_chat(live=live, world=world)
    burst = int(rt.settings.visitor_msg_burst)
    sent = burst + 6
    for n in range(sent):
        await wc.send(ws=a.visitor, frame={"type": "message", "client_id": f"f-{n}", "text": f"flood {n}"})
    acks: dict[str, dict[str, Any]] = {}
    limited: list[str] = []
    while len(acks) + len(limited) < sent:
        frame = await wc.recv(ws=a.visitor)
        if frame["type"] == "ack":
            acks[frame["client_id"]] = frame
        elif frame["type"] == "error":
            assert frame["code"] == "rate_limited"
            limited.append(frame["ref"])
    # The whole burst passes; beyond it, at most one token can have refilled (1/s) while sending.
    assert {f"f-{n}" for n in range(burst)} <= set(acks)
    assert burst <= len(acks) <= burst + 1
    assert set(limited) == {f"f-{n}" for n in range(sent)} - set(acks)
    stored = await _stored(rt, a.chat.conversation_id, sender="visitor")
    assert sorted(m["client_id"] for m in stored) == sorted(acks)
    assert all(acks[m["client_id"]]["message"]["id"] == m["id"] for m in stored)
    # The operator received exactly the stored ones.
    got: list[str] = []
    while len(got) < len(acks):
        got.append((await wc.recv_until(ws=a.operator, type="message"))["message"]["client_id"])
    assert got == [m["client_id"] for m in stored]
    assert not [f for f in await wc.frames_until_pong(ws=a.operator) if f["type"] == "message"]


async def test_markup_is_stored_and_relayed_verbatim(rt: Runtime, world: World, live: Live) -> None:
    a = await wc.active_chat(live=live, world=world, name="<b onmouseover=alert(1)>Ana</b>")
    script = "<script>alert(1)</script>"
    img = "<img src=x onerror=alert(1)>"
    await wc.send(ws=a.visitor, frame={"type": "message", "client_id": "x-1", "text": script})
    ack = await wc.recv_until(ws=a.visitor, type="ack")
    assert ack["message"]["text"] == script
    relayed = await wc.recv_until(ws=a.operator, type="message", where=lambda f: f["message"]["client_id"] == "x-1")
    assert relayed["message"]["text"] == script
    await wc.send(ws=a.operator, frame={"type": "message", "conversation_id": a.chat.conversation_id,
                                        "client_id": "x-2", "text": img})
    got = await wc.recv_until(ws=a.visitor, type="message", where=lambda f: f["message"]["client_id"] == "x-2")
    assert got["message"]["text"] == img
    texts = [m["text"] for m in await _stored(rt, a.chat.conversation_id) if m["sender"] != "system"]
    assert texts == [script, img]
    # Visitor-supplied profile strings reach the console as data, untouched.
    await wc.send(ws=a.operator, frame={"type": "history", "conversation_id": a.chat.conversation_id,
                                        "after_seq": 0})
    history = await wc.recv_until(ws=a.operator, type="history")
    assert [m["text"] for m in history["messages"] if m["sender"] != "system"] == [script, img]
    _, welcome, _ = await wc.operator_connect(live=live, cookie=a.cookie)
    assert welcome["chats"][0]["visitor"]["name"] == "<b onmouseover=alert(1)>Ana</b>"


async def test_typing_flood_is_rate_limited(rt: Runtime, world: World, live: Live) -> None:
    a = await wc.active_chat(live=live, world=world)
    sent = 36  # the allowance is 30 per 10 s (burst 30, refill 3/s)
    for n in range(sent):
        await wc.send(ws=a.visitor, frame={"type": "typing", "on": n % 2 == 0})
    errors = [f for f in await wc.frames_until_pong(ws=a.visitor) if f["type"] == "error"]
    assert {f["code"] for f in errors} == {"rate_limited"}
    assert 4 <= len(errors) <= 6  # 30 pass at once; at most a token or two refill while sending
    # The operator got exactly the typing frames that were let through, nothing more.
    relayed = [f for f in await wc.frames_until_pong(ws=a.operator) if f["type"] == "typing"]
    assert len(relayed) == sent - len(errors)
