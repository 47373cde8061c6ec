"""The visitor's widget on the demo page: nothing stored or sent before the visitor acts, keyboard use,
a phone-sized screen, and a reload that resumes the chat."""

from __future__ import annotations

import re

from playwright.async_api import Page, Request, WebSocket, expect

from confide.core.runtime import Runtime
from confide.users import sessions as user_sessions
from confide.workspaces import service as workspaces
from confide.workspaces.schemas import SitePatch
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
    assert [u for u in requests if "/api/" in u or "/widget/app.js" in u or "/widget/activity.js" in u] == []
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
    assert [u for u in requests if u.endswith("/activity")] == []  # Visitor Activity: no page report yet

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
    # Visitor Activity: the page the chat started on is reported once; without consent the server keeps
    # nothing, says so, and this page reports no more (an SPA navigation sends nothing).
    await page.wait_for_timeout(300)
    await page.evaluate("() => history.pushState({}, '', '/demo?next=1')")
    await page.wait_for_timeout(300)
    assert len([u for u in requests if u.endswith("/activity")]) == 1
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


async def _site_colour(rt: Runtime, world: World, colour: str) -> None:
    async with rt.db.unit_of_work() as uow:
        admin = await user_sessions.actor_for(uow, world.admin_id)
        await workspaces.update_site(uow, admin, world.site_id, SitePatch(color=colour))


async def test_launcher_has_the_site_colour_and_corner_from_the_first_paint(rt: Runtime, world: World, live: Live,
                                                                           people: People) -> None:
    await serve_demo(rt, world, live)
    await _site_colour(rt, world, "#f5d90a")  # a light colour: dark text on it
    page = await (await people.new()).new_page()
    api: list[str] = []
    page.on("request", lambda r: api.append(r.url) if "/api/" in r.url else None)
    # The colour is on the tag, read when the launcher is drawn: the very first frame has it.
    await page.add_init_script("""new MutationObserver((_, obs) => {
        const host = document.querySelector('confide-widget');
        const button = host && host.shadowRoot && host.shadowRoot.querySelector('button');
        if (button) { window.__first = getComputedStyle(button).backgroundColor; obs.disconnect(); }
      }).observe(document, {childList: true, subtree: true});""")
    await page.goto(f"{live.base}/demo")
    launcher = page.locator(w("launcher"))
    await expect(launcher).to_have_css("background-color", "rgb(245, 217, 10)")
    await expect(launcher).to_have_css("color", "rgb(17, 24, 39)")
    assert await page.evaluate("() => window.__first") == "rgb(245, 217, 10)"
    await page.wait_for_load_state("networkidle")
    assert api == []
    assert await page.evaluate(STORAGE) == NOTHING
    box = await launcher.bounding_box()
    assert box is not None
    assert box["x"] > 1280 / 2

    # data-position="left" puts the launcher, and the panel, in the bottom left corner.
    tag = (f'<script src="{live.base}/widget.js" data-site="{world.site_key}" data-color="#14532d"'
           ' data-position="left" async></script>')
    shop = f"<!doctype html><html lang=en><title>Shop</title><main><h1>Shop</h1></main>{tag}"
    await page.route(f"{live.base}/shop-left", lambda route: route.fulfill(content_type="text/html", body=shop))
    await page.goto(f"{live.base}/shop-left")
    await expect(launcher).to_have_css("background-color", "rgb(20, 83, 45)")
    await expect(launcher).to_have_css("color", "rgb(255, 255, 255)")
    box = await launcher.bounding_box()
    assert box is not None
    assert box["x"] < 100, box
    await launcher.click()
    panel = page.locator(w("panel"))
    await expect(panel).to_be_visible()
    panel_box = await panel.bounding_box()
    assert panel_box is not None
    assert panel_box["x"] < 100, panel_box


async def test_demo_page_fits_a_phone(rt: Runtime, world: World, live: Live, people: People) -> None:
    await serve_demo(rt, world, live)
    page = await (await people.new(viewport={"width": 360, "height": 740}, has_touch=True)).new_page()
    await page.goto(f"{live.base}/demo")
    launcher = page.locator(w("launcher"))
    await expect(launcher).to_be_in_viewport(ratio=1)
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= 360
    await page.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
    await expect(launcher).to_be_in_viewport(ratio=1)
    # The last words of the page are not under the launcher once scrolled to the end.
    link = page.locator("main a[href=\"/app\"]")
    link_box, launcher_box = await link.bounding_box(), await launcher.bounding_box()
    assert link_box is not None
    assert launcher_box is not None
    assert link_box["y"] + link_box["height"] <= launcher_box["y"], (link_box, launcher_box)


async def test_messages_show_times_and_only_web_links_are_clickable(rt: Runtime, world: World, live: Live,
                                                                    people: People) -> None:
    await serve_demo(rt, world, live)
    console = await open_console(await people.new(), live, rt, world.operator_email, world.operator_id)
    visitor = await (await people.new()).new_page()
    await open_widget(visitor, live)
    conv_id = await start_chat(visitor, name="Ana Lima", email="ana@example.com")
    await accept_offer(console, conv_id)
    await visitor_says(visitor, "My order: http://shop.example/o/17, thanks")
    text = ("See https://shop.example/help?q=1&x=2. Not javascript:alert(1), data:text/html,hi, "
            "www.example.com or ftp://example.com")
    await operator_says(console, text)
    bubble = bubbles(visitor, "operator")
    await expect(bubble).to_have_text([text])  # the text itself is unchanged
    links = bubble.locator("a")
    await expect(links).to_have_count(1)
    await expect(links).to_have_text("https://shop.example/help?q=1&x=2")
    await expect(links).to_have_attribute("href", "https://shop.example/help?q=1&x=2")
    await expect(links).to_have_attribute("target", "_blank")
    await expect(links).to_have_attribute("rel", "noopener noreferrer")
    mine = bubbles(visitor, "visitor").locator("a")
    await expect(mine).to_have_attribute("href", "http://shop.example/o/17")  # the trailing comma is not in it
    # The operator's console links the visitor's web address the same way.
    in_console = console.locator(f'{t("msg")}[data-sender="visitor"] .bubble a')
    await expect(in_console).to_have_attribute("href", "http://shop.example/o/17")
    await expect(in_console).to_have_attribute("rel", "noopener noreferrer")
    await expect(console.locator(f'{t("msg")}[data-sender="operator"] .bubble a')).to_have_count(1)

    # Every committed message shows its time (hh:mm), with the full date and time on hover.
    times = visitor.locator(f'{w("msg")} {w("time")}')
    await expect(times).to_have_count(3)  # the visitor's, the "joined" line and the operator's
    for i in range(3):
        await expect(times.nth(i)).to_have_text(re.compile(r"^\d{1,2}[:.]\d{2}(\s?[AP]M)?$"))
        assert await times.nth(i).get_attribute("datetime")


async def test_a_refused_origin_is_explained_in_the_browser_console(rt: Runtime, world: World, live: Live,
                                                                    people: People) -> None:
    # The site allows https://shop.example only; the demo page is on the server's own origin.
    page = await (await people.new()).new_page()
    warnings: list[str] = []
    page.on("console", lambda m: warnings.append(m.text) if m.type == "warning" else None)
    await page.goto(f"{live.base}/demo")
    await page.click(w("launcher"))
    await expect(page.locator(w("panel"))).to_contain_text("The chat is not available right now.")
    for _ in range(50):
        if any("not allowed" in m for m in warnings):
            break
        await page.wait_for_timeout(100)
    [warning] = [m for m in warnings if "not allowed" in m]
    assert live.base in warning  # the page's origin, as the site's settings must list it
    assert "Settings → Sites" in warning
