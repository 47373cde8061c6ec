"""Verified visitor identity in the widget (ADR 0022): a page of a logged-in visitor sets a signed
identity; opening the chat on a new device shows their earlier conversation."""

from __future__ import annotations

import json

import httpx
from playwright.async_api import expect

from confide.core import crypto
from confide.core.runtime import Runtime
from confide.verified import service as verified
from tests.browser.conftest import People
from tests.browser.helpers import accept_offer, open_console, serve_demo, set_status, t, w
from tests.conftest import Live, World
from tests.helpers_api import accept, actor, close, say


async def test_a_verified_visitor_sees_their_earlier_conversation(rt: Runtime, world: World, live: Live,
                                                                  people: People) -> None:
    await serve_demo(rt, world, live)
    await set_status(rt, world.operator_id, "online")
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        secret = await verified.rotate_secret(rt, uow, admin, world.site_id)
    claim = {"id": "user-42", "email": "ana@example.com", "name": "Ana Verified",
             "hash": crypto.identity_signature(secret, "user-42", "ana@example.com")}
    # An earlier visit, from another device.
    async with httpx.AsyncClient(base_url=live.base) as http:
        started = (await http.post(f"/api/v1/widget/{world.site_key}/conversations", headers={"Origin": world.origin},
                                   json={"fields": {"name": "Ana", "email": "ana@example.com"}, "consents": {},
                                         "identity": claim})).json()
    assert started["verified"] is True
    await accept(rt, world.operator_id, started["conversation_id"])
    await say(rt, started["conversation_id"], "where is my parcel 7781", sender_id=started["visitor_id"])
    await say(rt, started["conversation_id"], "it ships tomorrow", sender="operator", sender_id=world.operator_id)
    await close(rt, world.operator_id, started["conversation_id"])

    # A new device: the site's page sets the signed identity for its logged-in user.
    context = await people.new()
    await context.add_init_script(f"window.ConfideSettings = {{identity: {json.dumps(claim)}}};")
    page = await context.new_page()
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url))
    await page.goto(live.base + "/demo")
    await page.wait_for_load_state("networkidle")
    assert [u for u in sent if "/api/" in u] == []  # nothing sent before the visitor opens the chat
    await page.click(w("launcher"))
    history = page.locator(w("history"))
    await expect(history).to_be_visible()
    past = history.locator(w("past"))
    await expect(past).to_have_count(1)
    await past.locator("summary").click()
    await expect(past).to_contain_text("where is my parcel 7781")
    await expect(past).to_contain_text("it ships tomorrow")
    # The form is filled with the verified name and e-mail; a new chat is the same person's.
    form = page.locator(w("prechat"))
    await expect(form.locator('[name="name"]')).to_have_value("Ana Verified")
    await expect(form.locator('[name="email"]')).to_have_value("ana@example.com")
    console = await open_console(await people.new(), live, rt, world.operator_email, world.operator_id)
    await page.click(w("start"))
    await expect(page.locator(w("messages"))).to_be_visible()
    stored = await page.evaluate(f"() => JSON.parse(sessionStorage.getItem('confide:{world.site_key}'))")
    assert stored["conversation_id"] != started["conversation_id"]
    rows = await _visitors(rt)
    assert rows == 1
    # The operator's visitor panel: verified, with the earlier conversation linked.
    await accept_offer(console, stored["conversation_id"])
    await expect(console.locator(t("visitor-verified"))).to_be_visible()
    earlier = console.locator(t("visitor-earlier")).locator("a")
    await expect(earlier).to_have_count(1)
    assert await earlier.get_attribute("href") == f"/app/chats/{started['conversation_id']}"


async def test_a_wrongly_signed_identity_shows_no_history(rt: Runtime, world: World, live: Live,
                                                          people: People) -> None:
    await serve_demo(rt, world, live)
    await set_status(rt, world.operator_id, "online")
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        await verified.rotate_secret(rt, uow, admin, world.site_id)
    claim = {"id": "user-42", "email": "ana@example.com", "hash": "0" * 64}
    context = await people.new()
    await context.add_init_script(f"window.ConfideSettings = {{identity: {json.dumps(claim)}}};")
    page = await context.new_page()
    page.on("console", lambda m: None)
    await page.goto(live.base + "/demo")
    await page.click(w("launcher"))
    form = page.locator(w("prechat"))
    await expect(form).to_be_visible()
    await expect(page.locator(w("history"))).to_have_count(0)
    await expect(form.locator('[name="email"]')).to_have_value("")


async def _visitors(rt: Runtime) -> int:
    from sqlalchemy import text
    async with rt.db.unit_of_work(readonly=True) as uow:
        return int((await uow.session.execute(text("select count(*) from visitors"))).scalar_one())
