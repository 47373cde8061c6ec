"""The visitor's widget on the demo page: nothing stored or sent before the visitor acts, keyboard use,
a phone-sized screen, and a reload that resumes the chat."""

from __future__ import annotations

import re

from playwright.async_api import Page, Request, WebSocket, expect

from confide.core.runtime import Runtime
from tests.browser.conftest import People
from tests.browser.helpers import (
    accept_offer,
    bubbles,
    fill_prechat,
    open_console,
    open_widget,
    operator_says,
    serve_demo,
    set_status,
    start_chat,
    stored,
    t,
    visitor_says,
    w,
)
from tests.conftest import Live, World

STORAGE = """() => ({cookie: document.cookie, local: localStorage.length, session: sessionStorage.length})"""
NOTHING = {"cookie": "", "local": 0, "session": 0}


async def _within_viewport(page: Page) -> None:
    box = await page.locator(w("panel")).bounding_box()
    size = page.viewport_size
    assert box is not None
    assert size is not None
    assert box["x"] >= 0, box
    assert box["y"] >= 0, box
    assert box["x"] + box["width"] <= size["width"] + 0.5, (box, size)
    assert box["y"] + box["height"] <= size["height"] + 0.5, (box, size)
    assert min(box["width"], box["height"]) >= 300, box  # a usable panel, not a collapsed one


async def test_nothing_stored_or_sent_before_the_visitor_acts(rt: Runtime, world: World, live: Live,
                                                              people: People) -> None:
    await serve_demo(rt, world, live)
    await set_status(rt, world.operator_id, "online")
    page = await (await people.new()).new_page()
    requests: list[str] = []
    sockets: list[str] = []

    def on_request(request: Request) -> None:
        requests.append(request.url)

    def on_socket(ws: WebSocket) -> None:
        sockets.append(ws.url)

    page.on("request", on_request)
    page.on("websocket", on_socket)

    # The page with its launcher: no storage, no call to the API, no chat UI loaded, no socket.
    await page.goto(f"{live.base}/demo")
    launcher = page.locator(w("launcher"))
    await expect(launcher).to_be_visible()
    await expect(launcher).to_have_attribute("aria-expanded", "false")
    await page.wait_for_load_state("networkidle")
    assert await page.evaluate(STORAGE) == NOTHING
    assert [u for u in requests if "/api/" in u or "/widget/app.js" in u] == []
    assert sockets == []

    # Keyboard: focus + Enter opens the panel with the focus inside, Escape closes it back to the launcher.
    await launcher.focus()
    await page.keyboard.press("Enter")
    panel = page.locator(w("panel"))
    await expect(panel).to_be_visible()
    await expect(launcher).to_have_attribute("aria-expanded", "true")
    form = page.locator(w("prechat"))
    await expect(form.locator('[name="name"]')).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(panel).to_be_hidden()
    await expect(launcher).to_have_attribute("aria-expanded", "false")
    await expect(launcher).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(panel).to_be_visible()
    await _within_viewport(page)

    # Opened and filled in, not submitted: still nothing written (the config was read).
    assert any(u.endswith("/config") for u in requests)
    await fill_prechat(page, name="Ana Lima", email="ana@example.com")
    assert await page.evaluate(STORAGE) == NOTHING
    assert sockets == []

    # On a phone the panel takes the screen and stays within it.
    await page.set_viewport_size({"width": 390, "height": 844})
    await _within_viewport(page)

    # Submitted: the chat's token is kept for this tab only, and nothing else is written.
    await page.click(w("start"))
    await expect(page.locator(w("status"))).to_contain_text("Waiting for an operator")
    kept = await stored(page)
    assert set(kept) == {"token", "conversation_id", "last_seq"}
    assert await page.evaluate("() => Object.keys(sessionStorage)") == [f"confide:{world.site_key}"]
    assert await page.evaluate(STORAGE) == {**NOTHING, "session": 1}
    await _within_viewport(page)
    await expect(page.locator(w("input"))).to_be_in_viewport()


async def test_reload_resumes_the_chat_with_its_history(rt: Runtime, world: World, live: Live,
                                                        people: People) -> None:
    await serve_demo(rt, world, live)
    console = await open_console(await people.new(), live, rt, world.operator_email, world.operator_id)
    visitor = await (await people.new()).new_page()
    await open_widget(visitor, live)
    conv_id = await start_chat(visitor, name="Ana Lima", email="ana@example.com")
    await accept_offer(console, conv_id)
    await visitor_says(visitor, "Before the reload")
    await operator_says(console, "An answer before the reload")
    await expect(bubbles(visitor, "operator")).to_have_text(["An answer before the reload"])
    # Minimised, the launcher counts what the operator writes; opening the chat clears it.
    launcher = visitor.locator(w("launcher"))
    await launcher.click()
    await expect(visitor.locator(w("panel"))).to_be_hidden()
    await operator_says(console, "Are you there?")
    await expect(launcher).to_have_attribute("data-unread", "1")
    await launcher.click()
    await expect(bubbles(visitor, "operator").last).to_have_text("Are you there?")
    await expect(launcher).not_to_have_attribute("data-unread", re.compile(".*"))
    token = (await stored(visitor))["token"]

    await visitor.reload()
    # The widget resumes by itself: panel open, same chat, whole history, live again.
    await expect(visitor.locator(w("panel"))).to_be_visible()
    await expect(visitor.locator(w("status"))).to_have_text("You are chatting with Mia")
    await expect(bubbles(visitor, "visitor")).to_have_text(["Before the reload"])
    await expect(bubbles(visitor, "operator")).to_have_text(["An answer before the reload", "Are you there?"])
    await expect(bubbles(visitor, "system")).to_have_text(["Mia joined the chat."])
    assert (await stored(visitor))["token"] == token
    assert (await stored(visitor))["conversation_id"] == conv_id

    await visitor_says(visitor, "After the reload")
    await expect(console.locator(f'{t("msg")}[data-sender="visitor"] .bubble')).to_have_text(
        ["Before the reload", "After the reload"])
    await operator_says(console, "Still here")
    await expect(bubbles(visitor, "operator")).to_have_text(
        ["An answer before the reload", "Are you there?", "Still here"])
    await expect(bubbles(visitor, "visitor")).to_have_count(2)  # nothing shown twice
    assert (await stored(visitor))["last_seq"] >= 6
