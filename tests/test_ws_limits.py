"""Limits per visitor across all its sockets, per operator and per client address; slow and silent
handshakes; Origins compared by scheme as well as host and port (docs/protocol.md, "Limits")."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from confide.core import clock
from confide.core.runtime import Runtime
from confide.realtime.limits import Limits
from confide.routing import service as routing
from confide.users import sessions as user_sessions
from tests import factories
from tests import wsclient as wc
from tests.conftest import Live, World

ADDRESS = "127.0.0.1"


@pytest.fixture(autouse=True)
async def _close_sockets(live: Live) -> AsyncIterator[None]:
    yield
    await wc.close_all()


def _limits(live: Live) -> Limits:
    limits: Limits = live.app.state.confide.limits
    return limits


async def _until(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    """Wait for the server to notice a socket closed (its counts are released on disconnect)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def _online(rt: Runtime, world: World) -> None:
    async with rt.db.unit_of_work() as uow:
        await factories.present(uow, world.operator_id)  # a console of hers is open (presence)
        await routing.set_status(rt, uow, await user_sessions.actor_for(uow, world.operator_id), "online")


# ---------------------------------------------------------------- rates per visitor, not per socket
async def test_message_rate_is_per_visitor_across_its_sockets(rt: Runtime, world: World, live: Live) -> None:
    a = await wc.active_chat(live=live, world=world)
    tab2, _ = await wc.visitor_hello(live=live, chat=a.chat)
    burst = int(rt.settings.visitor_msg_burst)
    assert (burst, rt.settings.visitor_msg_rate) == (10, 1.0)  # docs: 10 messages in any 10 s
    sent = burst + 6
    tabs = [a.visitor, tab2]
    for n in range(sent):
        await wc.send(ws=tabs[n % 2], frame={"type": "message", "client_id": f"m-{n}", "text": f"hello {n}"})
    acks: set[str] = set()
    limited: set[str] = set()
    for n, tab in enumerate(tabs):
        mine = {f"m-{k}" for k in range(n, sent, 2)}
        while mine - acks - limited:
            frame = await wc.recv(ws=tab)
            if frame["type"] == "ack":
                acks.add(frame["client_id"])
            elif frame["type"] == "error":
                assert frame["code"] == "rate_limited", frame
                limited.add(frame["ref"])
    # Two sockets share one allowance: the burst, plus at most one token refilled while sending.
    assert burst <= len(acks) <= burst + 1
    assert len(limited) == sent - len(acks)


async def test_typing_rate_is_per_visitor_across_its_sockets(rt: Runtime, world: World, live: Live) -> None:
    a = await wc.active_chat(live=live, world=world)
    tab2, _ = await wc.visitor_hello(live=live, chat=a.chat)
    assert (rt.settings.visitor_typing_burst, rt.settings.visitor_typing_rate) == (30, 3)  # 30 per 10 s
    sent = 36
    for n in range(sent):
        await wc.send(ws=(a.visitor, tab2)[n % 2], frame={"type": "typing", "on": n % 2 == 0})
    errors = [f for tab in (a.visitor, tab2) for f in await wc.frames_until_pong(ws=tab) if f["type"] == "error"]
    assert {f["code"] for f in errors} == {"rate_limited"}
    assert 4 <= len(errors) <= 6  # 30 pass in all, not 30 per socket
    relayed = [f for f in await wc.frames_until_pong(ws=a.operator) if f["type"] == "typing"]
    assert len(relayed) == sent - len(errors)


async def test_operator_typing_is_rate_limited(rt: Runtime, world: World, live: Live) -> None:
    a = await wc.active_chat(live=live, world=world)
    cid = a.chat.conversation_id
    for n in range(36):
        await wc.send(ws=a.operator, frame={"type": "typing", "conversation_id": cid, "on": n % 2 == 0})
    errors = [f for f in await wc.frames_until_pong(ws=a.operator) if f["type"] == "error"]
    assert {f["code"] for f in errors} == {"rate_limited"}
    assert 4 <= len(errors) <= 6
    relayed = [f for f in await wc.frames_until_pong(ws=a.visitor) if f["type"] == "typing"]
    assert len(relayed) == 36 - len(errors)


async def test_reconnecting_does_not_reset_the_allowance(rt: Runtime, world: World, live: Live) -> None:
    a = await wc.active_chat(live=live, world=world)
    for n in range(10):
        await wc.send(ws=a.visitor, frame={"type": "message", "client_id": f"r-{n}", "text": "x"})
    for _ in range(10):
        assert (await wc.recv_until(ws=a.visitor, type="ack"))["type"] == "ack"
    await a.visitor.close()
    again, _ = await wc.visitor_hello(live=live, chat=a.chat)
    await wc.send(ws=again, frame={"type": "message", "client_id": "r-after", "text": "x"})
    await wc.send(ws=again, frame={"type": "message", "client_id": "r-after-2", "text": "x"})
    answers = [await wc.recv(ws=again), await wc.recv(ws=again)]
    assert "rate_limited" in [f.get("code") for f in answers]


# ---------------------------------------------------------------- sockets per visitor and per address
async def test_sockets_per_visitor_are_capped(rt: Runtime, world: World, live: Live) -> None:
    a = await wc.active_chat(live=live, world=world)
    limits = _limits(live)
    limits.visitor_sockets.limit = 2
    tab2, _ = await wc.visitor_hello(live=live, chat=a.chat)
    tab3 = await wc.visitor_socket(live=live, site_key=world.site_key, origin=world.origin)
    await wc.send(ws=tab3, frame={"type": "hello", "token": a.chat.token, "conversation_id": a.chat.conversation_id,
                                  "last_seq": 0})
    code, frames = await wc.expect_close(ws=tab3)
    assert code == 4429
    assert [(f["type"], f["code"]) for f in frames] == [("error", "rate_limited")]
    # Another visitor is not affected; a closed tab frees its place.
    other = await wc.start_chat(live=live, site_key=world.site_key, origin=world.origin, name="Ben",
                                email="ben@example.com")
    await wc.visitor_hello(live=live, chat=other)
    await tab2.close()
    await _until(lambda: limits.visitor_sockets.count(a.chat.visitor_id) == 1)
    _, welcome = await wc.visitor_hello(live=live, chat=a.chat)
    assert welcome["conversation"]["id"] == a.chat.conversation_id


async def test_sockets_per_address_are_capped(rt: Runtime, world: World, live: Live) -> None:
    a = await wc.active_chat(live=live, world=world)  # an operator socket and a visitor socket
    limits = _limits(live)
    assert limits.address_sockets.count(ADDRESS) == 2
    limits.address_sockets.limit = 3
    extra, _ = await wc.visitor_hello(live=live, chat=a.chat)
    for opener in (lambda: wc.visitor_socket(live=live, site_key=world.site_key, origin=world.origin),
                   lambda: wc.operator_socket(live=live, cookie=a.cookie)):
        with pytest.raises(InvalidStatus) as refused:
            await opener()
        assert refused.value.response.status_code == 429
        assert json.loads(refused.value.response.body) == {
            "detail": "too many open connections from your address", "code": "rate_limited"}
    await extra.close()
    await _until(lambda: limits.address_sockets.count(ADDRESS) == 2)
    console, welcome, _ = await wc.operator_connect(live=live, cookie=a.cookie)
    assert welcome["operator"]["id"] == world.operator_id
    await console.close()
    await _until(lambda: limits.address_sockets.count(ADDRESS) == 2)


# ---------------------------------------------------------------- chats per address per hour
async def test_conversations_per_address_per_hour(rt: Runtime, world: World, live: Live) -> None:
    await _online(rt, world)
    _limits(live).conversations.limit = 2
    async with wc.http(live=live) as client:
        bad = await client.post(f"/api/v1/widget/{world.site_key}/conversations", json={"fields": {}},
                                headers={"Origin": world.origin})
        assert bad.status_code == 422  # refused chats do not count
    for name in ("Ana", "Ben"):
        await wc.start_chat(live=live, site_key=world.site_key, origin=world.origin, name=name)
    body = {"fields": {"name": "Cy", "email": "cy@example.com"}, "consents": {}, "department_id": None,
            "page_url": None}
    async with wc.http(live=live) as client:
        third = await client.post(f"/api/v1/widget/{world.site_key}/conversations", json=body,
                                  headers={"Origin": world.origin})
    assert third.status_code == 429
    assert third.json() == {"detail": "too many chats were started from your address; try again later",
                            "code": "rate_limited"}
    assert third.headers["access-control-allow-origin"] == world.origin  # the widget can read it
    clock.advance(timedelta(hours=1, seconds=1))
    await wc.start_chat(live=live, site_key=world.site_key, origin=world.origin, name="Cy")


# ---------------------------------------------------------------- slow and silent handshakes
async def test_silent_handshake_is_closed_4408_even_with_noise(rt: Runtime, world: World, live: Live,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rt.settings, "ws_hello_timeout_s", 0.5)
    ws = await wc.visitor_socket(live=live, site_key=world.site_key, origin=world.origin)
    with contextlib.suppress(ConnectionClosed):
        for _ in range(8):  # bad frames do not stand for a hello
            await ws.send(b"\x00")
            await asyncio.sleep(0.1)
    code, frames = await wc.expect_close(ws=ws, timeout=3)
    assert code == 4408
    assert {f.get("code") for f in frames} <= {"bad_frame"}


async def test_slow_hello_is_closed_4408(rt: Runtime, world: World, live: Live,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A hello trickled in fragments does not hold the socket open past the deadline."""
    chat_token = "t" * 100
    monkeypatch.setattr(rt.settings, "ws_hello_timeout_s", 0.5)
    ws = await wc.visitor_socket(live=live, site_key=world.site_key, origin=world.origin)

    async def fragments() -> AsyncIterator[str]:
        yield '{"type":"hello","token":"'
        for _ in range(20):
            await asyncio.sleep(0.1)
            yield chat_token[:5]

    with contextlib.suppress(ConnectionClosed):
        await ws.send(fragments())
    await ws.wait_closed()
    assert ws.close_code == 4408


# ---------------------------------------------------------------- origins: scheme, host and port
@pytest.mark.parametrize("origin", ["https://shop.example:443", "HTTPS://SHOP.EXAMPLE", "https://shop.example/"])
async def test_visitor_origin_in_another_spelling_is_the_same(rt: Runtime, world: World, live: Live,
                                                              origin: str) -> None:
    ws = await wc.visitor_socket(live=live, site_key=world.site_key, origin=origin)
    await ws.close()


@pytest.mark.parametrize("origin", ["http://shop.example", "https://shop.example:8443", "wss://shop.example"])
async def test_visitor_origin_scheme_and_port_count(rt: Runtime, world: World, live: Live, origin: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await wc.visitor_socket(live=live, site_key=world.site_key, origin=origin)
    assert refused.value.response.status_code == 403
    async with wc.http(live=live) as client:  # the widget's HTTP calls and their CORS headers too
        response = await client.get(f"/api/v1/widget/{world.site_key}/config", headers={"Origin": origin})
    assert response.status_code == 403
    assert "access-control-allow-origin" not in response.headers


async def test_operator_origin_scheme_counts(rt: Runtime, world: World, live: Live) -> None:
    cookie = await wc.login(live=live, email=world.operator_email)
    https_twin = live.base.replace("http://", "https://")
    with pytest.raises(InvalidStatus) as refused:
        await wc.operator_socket(live=live, cookie=cookie, origin=https_twin)
    assert refused.value.response.status_code == 403
    # The cookie-authenticated HTTP API (CSRF check) compares the scheme the same way.
    async with wc.http(live=live) as client:
        response = await client.post("/api/v1/auth/logout", headers={
            "Origin": https_twin, "Cookie": f"{wc.SESSION_COOKIE}={cookie}"})
    assert response.status_code == 403
    _, welcome, _ = await wc.operator_connect(live=live, cookie=cookie)  # still logged in
    assert welcome["operator"]["id"] == world.operator_id
