"""No personal data in any log line: a session of every flow (widget, console, back office, CLI) with a
canary in every personal field, against a real uvicorn served with ``confide serve``'s own options
and logging at DEBUG. Neither a canary, nor a visitor or session token, nor the client's address may
appear in anything logged; Confide's own access lines must be there (so removing the access-log
middleware, or switching uvicorn's back on, fails this test)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import AsyncIterator

import pytest
import uvicorn

from confide.app import create_app
from confide.cli.main import server_options
from confide.config import Settings
from confide.core.logging import configure as configure_logging
from confide.core.runtime import Runtime
from tests import wsclient as wc
from tests.cli_helpers import run_cli
from tests.conftest import Live, World, free_port

TAG = "zqk7xw"  # every canary carries it, so that any part of one is found
CANARY = {
    "name": f"Canaryname{TAG}",
    "email": f"canarymail{TAG}@example.com",
    "phone": f"+44 20 7946 0{TAG.count('z')}99",  # digits checked separately below
    "order": f"CanaryOrder{TAG}",
    "page_url": f"https://shop.example/canarypage{TAG}?ref=canaryquery{TAG}",
    "message": f"canarymessage{TAG} please help",
    "reply": f"canaryreply{TAG} of course",
    "rating": f"canaryrating{TAG} great",
    "offline": f"canaryoffline{TAG} call me back",
    "offline_name": f"Canaryoffname{TAG}",
    "offline_email": f"canaryoffmail{TAG}@example.com",
    "admin_email": f"canaryadmin{TAG}@example.com",
    "admin_name": f"Canaryadminname{TAG}",
    "password": f"canarypassword{TAG}-long-enough",
}
PHONE_DIGITS = re.sub(r"\D", "", CANARY["phone"])


@pytest.fixture
async def served(rt: Runtime, settings: Settings) -> AsyncIterator[tuple[Live, io.StringIO]]:
    """The app behind uvicorn with exactly ``confide serve``'s options, logging at DEBUG to a buffer."""
    application = create_app(runtime=rt)
    buffer = io.StringIO()
    configure_logging("debug", stream=buffer)
    options = server_options(settings) | {"port": free_port(), "log_level": "debug"}
    options.pop("loop")  # the test's loop serves it
    config = uvicorn.Config(application, lifespan="on", **options)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.02)
    assert server.started
    try:
        yield Live(base=f"http://127.0.0.1:{options['port']}", ws=f"ws://127.0.0.1:{options['port']}",
                   app=application), buffer
    finally:
        await wc.close_all()
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        configure_logging("warning")


async def _raw_http(live: Live, payload: bytes) -> bytes:
    host, port = live.base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(payload)
    await writer.drain()
    try:
        data = await asyncio.wait_for(reader.read(4096), 5)
    finally:
        writer.close()
    return data


async def test_no_personal_data_in_any_log_line(
    rt: Runtime, settings: Settings, world: World, served: tuple[Live, io.StringIO], capfd: pytest.CaptureFixture[str]
) -> None:
    live, buffer = served
    secrets: list[str] = []

    # ---- CLI: create-admin and reset-password (the canary e-mail and password go through the shell)
    created = await run_cli(settings, "create-admin", "--email", CANARY["admin_email"], "--name",
                            CANARY["admin_name"], CONFIDE_ADMIN_PASSWORD=CANARY["password"])
    assert created.exit_code == 0, created.output
    reset = await run_cli(settings, "reset-password", CANARY["admin_email"], "--generate")
    assert reset.exit_code == 0, reset.output
    assert (await run_cli(settings, "reset-password", f"nobody{TAG}@example.com",
                          CONFIDE_ADMIN_PASSWORD=CANARY["password"])).exit_code == 1

    op, _, cookie = await wc.operator_connect(live=live, email=world.operator_email)
    secrets.append(cookie)
    admin_ws, _, admin_cookie = await wc.operator_connect(live=live, email=world.admin_email)
    secrets.append(admin_cookie)
    await wc.go_online(ws=op)

    async with wc.http(live=live) as http:
        # ---- widget: config, start a chat with canaries in every field, the socket, an offline request
        headers = {"Origin": world.origin}
        assert (await http.get(f"/api/v1/widget/{world.site_key}/config", headers=headers)).status_code == 200
        started = await http.post(f"/api/v1/widget/{world.site_key}/conversations", headers=headers, json={
            "fields": {"name": CANARY["name"], "email": CANARY["email"], "phone": CANARY["phone"],
                       "order": CANARY["order"]},
            "consents": {"marketing": True}, "page_url": CANARY["page_url"]})
        assert started.status_code == 201, started.text
        chat = started.json()
        secrets.append(chat["token"])
        offline = await http.post(f"/api/v1/widget/{world.site_key}/offline-requests", headers=headers, json={
            "fields": {"name": CANARY["offline_name"], "email": CANARY["offline_email"]}, "consents": {},
            "message": CANARY["offline"], "page_url": CANARY["page_url"]})
        assert offline.status_code == 201, offline.text
        # ---- activity: a page report (the token in the body, text/plain like a beacon) and a refused one
        for url, status in ((CANARY["page_url"], 200), (f"javascript:canaryjs{TAG}", 422)):
            report = await http.post(f"/api/v1/widget/{world.site_key}/activity", headers=headers, content=json.dumps(
                {"type": "view", "token": chat["token"], "url": url, "title": f"canarytitle{TAG}"}))
            assert report.status_code == status, report.text
        # refused and malformed calls log too: a foreign origin, a bad body, a garbage request line
        assert (await http.post(f"/api/v1/widget/{world.site_key}/conversations",
                                headers={"Origin": f"https://canaryorigin{TAG}.example"},
                                json={"fields": {"name": CANARY["name"]}})).status_code == 403
        assert (await http.post(f"/api/v1/widget/{world.site_key}/conversations", headers=headers,
                                content=f'{{"fields": {{"name": "{CANARY["name"]}"'.encode())).status_code == 422
        assert (await http.post("/api/v1/auth/login", json={"email": CANARY["email"], "password": "x" * 20},
                                headers={"Origin": live.base})).status_code == 401

    await _raw_http(live, f"GET /canaryraw{TAG} HTTP/1.1\r\nHost: x\r\nX-C: \x01{CANARY['email']}\r\n\r\n".encode())
    await _raw_http(live, f"\x16\x03canary{TAG}garbage\r\n\r\n".encode())

    # ---- console: log in, accept, reply, transfer, close (operators named by id only)
    visitor_chat = wc.VisitorChat(token=chat["token"], visitor_id=chat["visitor_id"],
                                  conversation_id=chat["conversation_id"], expires_at=chat["expires_at"],
                                  site_key=world.site_key, origin=world.origin)
    cid = chat["conversation_id"]
    offered = await wc.recv_until(ws=op, type="offer", where=lambda f: f["conversation"]["id"] == cid, timeout=5)
    assert offered
    await wc.send(ws=op, frame={"type": "accept", "conversation_id": cid})
    await wc.recv_until(ws=op, type="chat", where=lambda f: f["conversation"]["status"] == "active")
    await wc.go_online(ws=admin_ws)  # after the accept: the offer could have gone to either
    visitor, _ = await wc.visitor_hello(live=live, chat=visitor_chat)
    await wc.send(ws=visitor, frame={"type": "message", "client_id": "v-1", "text": CANARY["message"]})
    await wc.recv_until(ws=op, type="message", where=lambda f: f["message"]["sender"] == "visitor")
    await wc.send(ws=op, frame={"type": "message", "conversation_id": cid, "client_id": "o-1",
                                "text": CANARY["reply"]})
    await wc.recv_until(ws=visitor, type="message", where=lambda f: f["message"]["sender"] == "operator")
    await wc.send(ws=visitor, frame={"type": "typing", "on": True})
    await wc.send(ws=op, frame={"type": "transfer", "conversation_id": cid, "operator_id": world.admin_id})
    await wc.recv_until(ws=admin_ws, type="chat", where=lambda f: f["conversation"]["id"] == cid)
    await wc.send(ws=admin_ws, frame={"type": "close", "conversation_id": cid})
    await wc.recv_until(ws=visitor, type="status", where=lambda f: f["conversation"]["status"] == "closed")
    await wc.send(ws=visitor, frame={"type": "rate", "score": 5, "comment": CANARY["rating"]})
    await wc.recv_until(ws=visitor, type="status", where=lambda f: f["conversation"]["rating"] == 5)
    # hostile frames, both sockets
    await wc.send(ws=visitor, frame={"type": f"canarytype{TAG}", "text": CANARY["message"]})
    await wc.recv_until(ws=visitor, type="error")
    await visitor.send(f'{{"type": "message", "text": "{CANARY["message"]}"'.encode())
    await wc.send(ws=op, frame={"type": "message", "conversation_id": f"canaryid{TAG}", "text": CANARY["reply"]})
    await wc.recv_until(ws=op, type="error")

    # ---- back office: Stored Chats and Offline Requests with personal filters, the transcript
    async with wc.http(live=live) as page:
        page.cookies.set(wc.SESSION_COOKIE, admin_cookie)
        own = {"Origin": live.base}
        for path, data in (("/app/chats", {"text": f"canarymessage{TAG}", "visitor": CANARY["email"]}),
                           ("/app/offline", {"visitor": CANARY["offline_email"], "state": "all"}),
                           ("/app/activity", {"visitor": CANARY["email"], "url": f"canarypage{TAG}"})):  # ---- activity
            posted = await page.post(path, data=data, headers=own)
            assert posted.status_code == 303
            listed = await page.get(posted.headers["location"])
            assert listed.status_code == 200
            assert CANARY["name"] in listed.text or CANARY["offline_name"] in listed.text or path == "/app/activity"
        old_link = await page.get("/app/chats", params={"visitor": CANARY["name"], "text": f"canaryreply{TAG}"})
        assert old_link.status_code == 303
        transcript = await page.get(f"/app/chats/{cid}")
        assert CANARY["message"] in transcript.text
        api = await page.get("/api/v1/conversations", params={"visitor": CANARY["email"]})
        assert api.status_code == 200
        assert api.json()["total"] == 1
        assert (await page.get("/app/settings")).status_code == 200

    await wc.close_all()
    await asyncio.sleep(0.1)  # let the sockets' closing lines be written
    logging.getLogger().handlers[0].flush()

    captured = capfd.readouterr()
    text = buffer.getvalue() + captured.out + captured.err
    lines = text.splitlines()

    # Confide's own access lines are there: method, route template, status, duration, operator id.
    access = [line for line in lines if " http " in line or '"event": "http"' in line]
    assert any("route=/api/v1/widget/{site_key}/conversations" in line and "status=201" in line for line in access)
    assert any("route=/app/chats/{conversation_id}" in line and f"operator_id={world.admin_id}" in line
               for line in access)
    assert any("route=/app/chats" in line and "method=POST" in line for line in access)
    assert len(access) >= 15, "\n".join(lines[-40:])

    forbidden = [*CANARY.values(), TAG, PHONE_DIGITS, *secrets, "127.0.0.1", world.admin_email, world.operator_email]
    for needle in forbidden:
        leaks = [line for line in lines if needle.lower() in line.lower()]
        assert leaks == [], f"{needle!r} appears in the log:\n" + "\n".join(leaks[:5])
    # a token in any encoding (the cookie header, JSON): no long URL-safe strings but ids
    for token in secrets:
        assert json.dumps(token)[1:-1] not in text
