"""WCAG 2.1 AA, checked by axe-core (from npm, see the Makefile) in every state of the widget, the console
and the back office: no violation anywhere, the widget's shadow root included. Plus what axe cannot see:
focus kept in the widget on a phone and put back after "End chat", what is announced, the launcher's name."""

from __future__ import annotations

import re

from playwright.async_api import Page, expect

from confide.core.runtime import Runtime
from tests.browser.conftest import People
from tests.browser.helpers import (
    accept_offer,
    add_canned_reply,
    axe,
    log_in,
    open_console,
    open_widget,
    operator_says,
    passes_inside_widget,
    serve_demo,
    start_chat,
    t,
    visitor_says,
    w,
    wait_status,
)
from tests.conftest import Live, World


async def _focused_in_widget(page: Page) -> str | None:
    """The data-confide hook (or tag) of the element focused inside the widget's shadow root."""
    return await page.evaluate("""() => {
        const a = document.querySelector('confide-widget')?.shadowRoot?.activeElement;
        return a ? (a.dataset.confide || a.getAttribute('aria-label') || a.tagName.toLowerCase()) : null; }""")


async def test_widget_every_state_has_no_violation(rt: Runtime, world: World, live: Live, people: People) -> None:
    await serve_demo(rt, world, live)
    console = await open_console(await people.new(), live, rt, world.operator_email, world.operator_id)
    page = await (await people.new()).new_page()
    await page.goto(f"{live.base}/demo")
    launcher = page.locator(w("launcher"))
    await expect(launcher).to_be_visible()
    closed = await axe(page, "launcher closed")
    # axe did look inside the shadow root: rules passed on the launcher itself.
    assert {"button-name", "aria-allowed-attr"} <= passes_inside_widget(closed), passes_inside_widget(closed)
    await expect(launcher).to_have_accessible_name("Chat with us")

    await launcher.click()
    form = page.locator(w("prechat"))
    await expect(form).to_be_visible()
    inside = passes_inside_widget(await axe(page, "pre-chat form"))
    assert {"label", "color-contrast"} <= inside, inside
    await expect(launcher).to_have_accessible_name("Minimise chat")

    await page.click(w("start"))  # required fields left empty
    await expect(form.locator('[aria-invalid="true"]').first).to_be_focused()
    await expect(form.locator('[name="name"]')).to_have_accessible_description("Please fill in this field.")
    await axe(page, "pre-chat form with validation errors")

    conv_id = await start_chat(page, name="Ana Lima", email="ana@example.com")
    await expect(page.locator(w("status"))).to_contain_text("Waiting for an operator")
    await axe(page, "queued")

    await accept_offer(console, conv_id)
    await visitor_says(page, "Hello, see https://shop.example/orders/17 please")
    await operator_says(console, "Hi Ana, looking at it now")
    await expect(page.locator(f'{w("msg")}[data-sender="operator"]')).to_have_count(1)
    await axe(page, "chatting with messages")

    # The operator's typing is announced: the indicator sits in a live region that stays in place.
    await console.locator(t("composer")).press_sequentially("One moment")
    typing = page.locator(w("typing"))
    await expect(typing).to_have_text("Mia is typing…")
    assert await typing.evaluate("(el) => el.closest('[role=status], [aria-live]') !== null")
    await console.fill(t("composer"), "")

    # Minimised: unread messages are in the launcher's name and announced.
    await launcher.click()
    await expect(page.locator(w("panel"))).to_be_hidden()
    await operator_says(console, "Are you still there?")
    await operator_says(console, "I found your order")
    await expect(launcher).to_have_attribute("data-unread", "2")
    await expect(launcher).to_have_accessible_name("Chat with us, 2 unread messages")
    announce = page.locator(w("announce"))
    await expect(announce).to_have_text("New message from Mia: I found your order")
    assert await announce.get_attribute("role") == "status"
    await axe(page, "minimised with unread messages")
    await launcher.click()
    await expect(launcher).to_have_accessible_name("Minimise chat")
    await expect(announce).to_have_text("")

    # Ended by the visitor: the focus moves to the rating, which is accessible, picked or not.
    await page.click(w("end"))
    await page.click(w("end-confirm"))
    rating = page.locator(w("rating"))
    await expect(rating).to_be_visible()
    await expect(rating.locator('[data-score="1"]')).to_be_focused()
    await axe(page, "ended, rating")
    await rating.locator('[data-score="4"]').click()
    await expect(rating.locator('[data-score="4"]')).to_have_attribute("aria-pressed", "true")
    await rating.locator(w("rate")).click()
    await expect(page.locator(w("new-chat"))).to_be_focused()
    await axe(page, "rated")

    # Nobody online: the leave-a-message form.
    await console.select_option(t("status"), "offline")
    await wait_status(rt, world.operator_id, "offline")
    other = await (await people.new()).new_page()
    await open_widget(other, live)
    await expect(other.locator(w("offline"))).to_be_visible()
    await axe(other, "leave-a-message form")
    await other.click(w("send-offline"))
    await expect(other.locator(w("offline")).locator('[aria-invalid="true"]').first).to_be_focused()
    await axe(other, "leave-a-message form with errors")


async def test_widget_keeps_focus_in_the_panel_on_a_phone(rt: Runtime, world: World, live: Live,
                                                          people: People) -> None:
    await serve_demo(rt, world, live)
    page = await (await people.new(viewport={"width": 390, "height": 844}, has_touch=True)).new_page()
    await page.goto(f"{live.base}/demo")
    await page.locator(w("launcher")).focus()
    await page.keyboard.press("Enter")
    panel = page.locator(w("panel"))
    await expect(panel).to_be_visible()
    await expect(panel).to_have_attribute("aria-modal", "true")
    await expect(page.locator(w("offline"))).to_be_visible()  # nobody online
    await axe(page, "phone, leave-a-message form")
    # Tab and Shift+Tab go round the panel's controls and never reach the page behind it.
    seen: list[str | None] = []
    for _ in range(30):
        await page.keyboard.press("Tab")
        seen.append(await _focused_in_widget(page))
    assert None not in seen, seen
    assert "Minimise chat" in seen, seen
    assert "send-offline" in seen, seen
    assert seen.count("Minimise chat") >= 2, seen  # it wrapped round
    for _ in range(30):
        await page.keyboard.press("Shift+Tab")
        assert await _focused_in_widget(page) is not None
    # On a wide screen the panel is not modal (the page stays usable beside it).
    await page.set_viewport_size({"width": 1280, "height": 800})
    await expect(panel).not_to_have_attribute("aria-modal", "true")


async def test_console_every_state_has_no_violation(rt: Runtime, world: World, live: Live, people: People) -> None:
    await serve_demo(rt, world, live)
    await add_canned_reply(rt, world, shortcut="hours", title="Opening hours", text="We answer from 9 to 17.")
    console = await open_console(await people.new(), live, rt, world.operator_email, world.operator_id)
    await expect(console.locator("#queue-empty")).to_be_visible()
    await axe(console, "console, empty")

    ana = await (await people.new()).new_page()
    await open_widget(ana, live)
    ana_id = await start_chat(ana, name="Ana Lima", email="ana@example.com")
    await expect(console.locator(t("offer"))).to_be_visible()
    await expect(console.locator(t("queue-item"))).to_have_count(1)
    await axe(console, "console, with an offer")

    await accept_offer(console, ana_id)
    await visitor_says(ana, "Hello, my order https://shop.example/o/17 is late")
    await operator_says(console, "Let me check")
    bruno = await (await people.new()).new_page()
    await open_widget(bruno, live)
    bruno_id = await start_chat(bruno, name="Bruno Reis", email="bruno@example.com")
    await accept_offer(console, bruno_id)
    await visitor_says(ana, "Thanks")  # an unread badge on Ana's chat
    await expect(console.locator(f'{t("chat-item")}[data-conversation-id="{ana_id}"] {t("unread")}')).to_have_text("1")
    await console.locator(t("composer")).press_sequentially("/ho")
    await expect(console.locator("#suggestions")).to_be_visible()
    await axe(console, "console, chats open, suggestions shown")
    await console.fill(t("composer"), "")

    # The visitor's typing is announced (a live region around the indicator).
    await bruno.fill(w("input"), "typing something")
    await expect(console.locator(t("visitor-typing"))).to_be_visible()
    assert await console.locator(t("visitor-typing")).evaluate("(el) => el.closest('[role=status]') !== null")

    await console.click(t("transfer"))
    await expect(console.locator(t("transfer-target"))).to_be_enabled()
    await axe(console, "console, transfer dialog")
    await console.keyboard.press("Escape")
    await expect(console.locator(t("composer"))).to_be_focused()  # the focus comes back to the message box

    await console.click(t("close-chat"))
    await expect(console.locator("#close-dialog")).to_be_visible()
    await axe(console, "console, close dialog")
    await console.click(t("close-confirm"))
    await expect(console.locator(t("chat-ended"))).to_contain_text("This chat is closed.")
    await expect(console.locator(t("chat-ended"))).to_be_focused()  # not lost on the disabled message box
    await axe(console, "console, a closed chat")
    # Dismissed: the focus goes to the next open chat's message box.
    await console.click(t("dismiss"))
    await expect(console.locator("#chat-title")).to_have_text("Ana Lima")
    await expect(console.locator(t("composer"))).to_be_focused()


async def test_back_office_pages_have_no_violation(rt: Runtime, world: World, live: Live, people: People) -> None:
    await serve_demo(rt, world, live)
    ctx = await people.new()
    login = await ctx.new_page()
    await login.goto(f"{live.base}/login")
    await axe(login, "login page")
    await login.fill("#email", world.admin_email)
    await login.fill("#password", "not the password")
    await login.click(t("login-submit"))
    await expect(login.locator(t("login-error"))).to_be_visible()
    await axe(login, "login page with an error")
    await login.close()

    # A stored chat with a rating and a comment, and an offline request.
    console = await open_console(await people.new(), live, rt, world.operator_email, world.operator_id)
    ana = await (await people.new()).new_page()
    await open_widget(ana, live)
    conv_id = await start_chat(ana, name="Ana Lima", email="ana@example.com")
    await accept_offer(console, conv_id)
    await visitor_says(ana, "Where is my refund?")
    await operator_says(console, "It left today: https://shop.example/refunds")
    await ana.click(w("end"))
    await ana.click(w("end-confirm"))
    await ana.locator(f'{w("rating")} [data-score="5"]').click()
    await ana.locator(f'{w("rating")} textarea').fill("Quick and kind")
    await ana.click(w("rate"))
    await expect(ana.locator(w("new-chat"))).to_be_visible()
    await console.select_option(t("status"), "offline")
    await wait_status(rt, world.operator_id, "offline")
    carla = await (await people.new()).new_page()
    await open_widget(carla, live)
    form = carla.locator(w("offline"))
    await form.locator('[name="name"]').fill("Carla Dias")
    await form.locator('[name="email"]').fill("carla@example.com")
    await form.locator('[name="message"]').fill("Please call me back")
    await carla.click(w("send-offline"))
    await expect(carla.locator(w("offline-done"))).to_be_visible()

    page = await log_in(ctx, live, world.admin_email, "/app/chats")
    await expect(page.locator(t("chat-row"))).to_have_count(1)
    await expect(page.locator(f'{t("chat-row")} .stars')).to_have_accessible_name("5 out of 5")
    await axe(page, "Stored Chats")
    await page.fill("#f-text", "refund")
    await page.select_option("#f-rating", "5")
    await page.click(t("filter-submit"))
    await page.wait_for_load_state()
    await expect(page.locator("#f-text")).to_have_value("refund")
    await expect(page.locator(t("chat-row"))).to_have_count(1)
    await axe(page, "Stored Chats, filtered")
    await page.fill("#f-text", "nothing like this")
    await page.click(t("filter-submit"))
    await page.wait_for_load_state()
    await expect(page.locator(t("chat-row"))).to_have_count(0)
    await axe(page, "Stored Chats, nothing found")

    await page.goto(f"{live.base}/app/chats/{conv_id}")
    await expect(page.locator(t("transcript"))).to_be_visible()
    await axe(page, "transcript")

    await page.goto(f"{live.base}/app/offline")
    await expect(page.locator(t("offline-row"))).to_have_count(1)
    await axe(page, "Offline Requests")
    await page.locator(t("mark-handled")).click()
    await expect(page.locator(t("flash"))).to_be_visible()
    await axe(page, "Offline Requests, after marking one handled")

    for path in ["/app/settings", "/app/settings/departments", "/app/settings/operators", "/app/settings/canned"]:
        await page.goto(live.base + path)
        await expect(page.locator("h1")).to_be_visible()
        await axe(page, f"settings {path}")
    # A settings form sent back with errors.
    await page.goto(f"{live.base}/app/settings/departments")
    name = page.locator(f'{t("department-row")} [name="name"]').first
    await name.evaluate("(el) => { el.removeAttribute('required'); el.value = ''; }")
    await page.locator(t("department-row")).first.get_by_role("button", name="Save").click()
    await expect(page.locator(".row-errors")).to_be_visible()
    await axe(page, "settings, department form with errors")
    # An operator is not an administrator: the console and the pages they can reach.
    op = await log_in(await people.new(), live, world.operator_email, "/app/offline")
    await expect(op).to_have_url(re.compile("/app/offline"))
    await axe(op, "Offline Requests, as an operator")
