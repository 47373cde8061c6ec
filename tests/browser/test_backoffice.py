"""The back office in a browser: offline requests from the widget to /app/offline, and visitor-supplied
markup shown as text wherever operators read it (console, Stored Chats, transcript)."""

from __future__ import annotations

import re

from playwright.async_api import Page, expect

from confide.core.runtime import Runtime
from tests.browser.conftest import People
from tests.browser.helpers import (
    bubbles,
    fill_prechat,
    log_in,
    open_console,
    open_widget,
    operator_says,
    serve_demo,
    set_status,
    start_chat,
    t,
    visitor_says,
    w,
    wait_status,
)
from tests.conftest import Live, World

IMG = '<img src=x onerror="window.__xss=1">'
SCRIPT = "<script>window.__xss=1</script>"
EMAIL = "eve&lt@example.com"


async def test_offline_message_reaches_offline_requests_and_is_handled(rt: Runtime, world: World, live: Live,
                                                                       people: People) -> None:
    await serve_demo(rt, world, live)

    # Nobody online: the widget offers "leave a message" straight away.
    carla = await (await people.new()).new_page()
    await open_widget(carla, live)
    form = carla.locator(w("offline"))
    await expect(form).to_be_visible()
    await expect(form).to_contain_text("We are not online right now")
    await expect(carla.locator(w("prechat"))).to_have_count(0)
    await form.locator('[name="name"]').fill("Carla Dias")
    await form.locator('[name="email"]').fill("carla@example.com")
    await form.locator('[name="message"]').fill("Please call me back about invoice 42")
    await carla.click(w("send-offline"))
    await expect(carla.locator(w("offline-done"))).to_contain_text("We received your message")
    assert await carla.evaluate("() => sessionStorage.length + localStorage.length") == 0

    # Someone was online when the form opened, nobody is when it is sent: the widget switches to
    # "leave a message" and keeps what was typed.
    await set_status(rt, world.operator_id, "online")
    dan = await (await people.new()).new_page()
    await open_widget(dan, live)
    await fill_prechat(dan, name="Dan Costa", email="dan@example.com", order="B-9")
    await set_status(rt, world.operator_id, "offline")
    await dan.click(w("start"))
    form = dan.locator(w("offline"))
    await expect(form).to_contain_text("No one is available right now. Leave us a message instead.")
    await expect(form.locator('[name="name"]')).to_have_value("Dan Costa")
    await expect(form.locator('[name="order"]')).to_have_value("B-9")
    await form.locator('[name="message"]').fill("Where is my order?")
    await dan.click(w("send-offline"))
    await expect(dan.locator(w("offline-done"))).to_be_visible()
    assert await dan.evaluate("() => sessionStorage.length") == 0

    # The operator finds both open requests, newest first, and marks Carla's handled.
    page = await log_in(await people.new(), live, world.operator_email, "/app/offline")
    rows = page.locator(t("offline-row"))
    await expect(rows).to_have_count(2)
    await expect(rows.locator(".offline-name")).to_have_text(["Dan Costa", "Carla Dias"])
    carla_row = rows.filter(has_text="Carla Dias")
    await expect(carla_row.locator(".offline-message")).to_have_text("Please call me back about invoice 42")
    await expect(carla_row.get_by_role("link", name="carla@example.com")).to_have_attribute(
        "href", "mailto:carla@example.com")
    await expect(rows.filter(has_text="Dan Costa")).to_contain_text("B-9")
    await carla_row.locator(t("mark-handled")).click()
    await expect(page.locator(t("flash"))).to_have_text("Marked as handled.")
    await expect(rows).to_have_count(1)
    await expect(rows).to_contain_text("Dan Costa")

    await page.select_option("#f-state", "handled")
    await page.click(t("filter-submit"))
    await expect(page).to_have_url(re.compile(r"/app/offline\?state=handled$"))
    await expect(rows).to_have_count(1)
    await expect(rows).to_contain_text("Carla Dias")
    await expect(rows.locator(".badge")).to_contain_text("Handled")
    await expect(rows.locator(".badge")).to_contain_text("by Mia")
    await expect(rows.locator(t("reopen"))).to_be_visible()


async def _clean(page: Page) -> None:
    """No markup of the visitor's became an element, and none of it ran."""
    assert await page.evaluate("() => window.__xss") is None, page.url
    injected = await page.evaluate("""() => {
        const all = [];
        const walk = (root) => root.querySelectorAll('*').forEach((el) => {
          all.push(el);
          if (el.shadowRoot) walk(el.shadowRoot);
        });
        walk(document);
        return all.filter((el) => (el.tagName === 'IMG' && el.getAttribute('src') === 'x')
          || (el.tagName === 'SCRIPT' && el.textContent.includes('__xss'))
          || [...el.attributes].some((a) => a.name.startsWith('on'))).length;
    }""")
    assert injected == 0, page.url


async def test_visitor_markup_is_shown_as_text_everywhere(rt: Runtime, world: World, live: Live,
                                                          people: People) -> None:
    await serve_demo(rt, world, live)
    console = await open_console(await people.new(), live, rt, world.operator_email, world.operator_id)
    name = f"{IMG}Eve"
    visitor = await (await people.new()).new_page()
    await open_widget(visitor, live, '/demo?q="><img src=x onerror=window.__xss=1>')
    # The browser's own e-mail check refuses "<" and ">" in an address; "&lt" is allowed, and would
    # show as "<" if the address were ever put in a page as HTML.
    conv_id = await start_chat(visitor, name=name, email=EMAIL, order=SCRIPT)

    # Console: the offer, the queue item (accepted from the queue), the chat, the visitor panel, the transcript.
    queue_item = console.locator(f'{t("queue-item")}[data-conversation-id="{conv_id}"]')
    await expect(queue_item.locator(".qi-name")).to_have_text(name)
    await expect(queue_item.locator(t("accept"))).to_have_attribute("aria-label", f"Accept the chat with {name}")
    await expect(console.locator(t("offer")).locator(".offer-title")).to_have_text(f"New chat: {name}")
    await _clean(console)
    await queue_item.locator(t("accept")).click()
    await expect(queue_item).to_have_count(0)
    await expect(console.locator(t("offer"))).to_have_count(0)
    await visitor_says(visitor, SCRIPT)
    await visitor_says(visitor, IMG)
    transcript = console.locator(f'{t("transcript")} {t("msg")}[data-sender="visitor"]')
    await expect(transcript.locator(".bubble")).to_have_text([SCRIPT, IMG])
    await expect(transcript.first.locator(".msg-author")).to_have_text(name)
    await expect(console.locator("#chat-title")).to_have_text(name)
    await expect(console.locator(f'{t("chat-item")} .ci-name')).to_have_text(name)
    panel = console.locator(t("visitor-panel"))
    await expect(panel.locator(".vp-name")).to_have_text(name)
    await expect(panel.locator(".vp-email")).to_have_text(EMAIL)
    await expect(panel.get_by_role("link", name=EMAIL)).to_have_attribute("href", f"mailto:{EMAIL}")
    await expect(panel.locator("dd").filter(has_text="<script>")).to_have_text(SCRIPT)
    await expect(panel.locator(".url")).to_contain_text("/demo?q=")
    await _clean(console)

    # The operator's markup is text in the widget too.
    await operator_says(console, f"Hi {IMG}")
    await expect(bubbles(visitor, "operator")).to_have_text([f"Hi {IMG}"])
    await _clean(visitor)

    # The visitor ends the chat with a comment of markup: the console shows it as text.
    await visitor.click(w("end"))
    await visitor.click(w("end-confirm"))
    rating = visitor.locator(w("rating"))
    await rating.locator('[data-score="1"]').click()
    await rating.locator("textarea").fill(SCRIPT)
    await rating.locator(w("rate")).click()
    await expect(panel.locator("dd").filter(has_text="★")).to_have_text("★☆☆☆☆")
    await expect(panel.locator("dd").last).to_have_text(SCRIPT)
    await _clean(console)

    # A second visitor leaves markup in an offline request.
    await console.select_option(t("status"), "offline")
    await wait_status(rt, world.operator_id, "offline")
    mallory = await (await people.new()).new_page()
    await open_widget(mallory, live)
    form = mallory.locator(w("offline"))
    await form.locator('[name="name"]').fill(name)
    await form.locator('[name="email"]').fill("mallory@example.com")
    await form.locator('[name="order"]').fill(SCRIPT)
    await form.locator('[name="message"]').fill(f"{SCRIPT} {IMG}")
    await mallory.click(w("send-offline"))
    await expect(mallory.locator(w("offline-done"))).to_be_visible()
    await console.goto(f"{live.base}/app/offline")
    request = console.locator(t("offline-row"))
    await expect(request.locator(".offline-name")).to_have_text(name)
    await expect(request.locator(".offline-message")).to_have_text(f"{SCRIPT} {IMG}")
    await expect(request.locator("dd")).to_have_text([SCRIPT])
    await _clean(console)

    # Stored Chats and the transcript page.
    await console.goto(f"{live.base}/app/chats")
    row = console.locator(t("chat-row"))
    await expect(row).to_have_count(1)
    await expect(row.locator(".strong")).to_have_text(name)
    await expect(row.locator(".muted.small")).to_have_text(EMAIL)
    await _clean(console)
    await row.get_by_role("link").click()
    await expect(console).to_have_url(re.compile(f"/app/chats/{conv_id}"))
    await expect(console).to_have_title(f"Chat with {name} · Confide")
    await expect(console.locator("h1")).to_contain_text(f"Chat with {name}")
    messages = console.locator(f'{t("transcript")} {t("msg")}')
    await expect(messages.locator(".bubble")).to_have_text([SCRIPT, IMG, f"Hi {IMG}"])
    await expect(messages.filter(has_text="<script>").locator(".msg-author")).to_have_text(name)
    details = console.locator(t("visitor-details"))
    await expect(details.locator("dd:not(.prewrap)").filter(has_text="<script>")).to_have_text(SCRIPT)
    await expect(details).to_contain_text(name)
    await expect(details.get_by_role("link", name=EMAIL)).to_have_attribute("href", f"mailto:{EMAIL}")
    await expect(details.locator("dd.prewrap")).to_have_text(SCRIPT)  # the rating comment
    await _clean(console)
    assert people.watch.dialogs == []
