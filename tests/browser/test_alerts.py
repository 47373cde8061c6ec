"""Operators do not miss a chat: a tone, a desktop notification (off by default, remembered per operator)
and the tab title for offers, queued chats and new messages; the message box has the focus whenever a chat
is opened or accepted, and keys typed before it is open are kept; the status shown is the server's."""

from __future__ import annotations

from playwright.async_api import BrowserContext, Page, expect

from confide.core.runtime import Runtime
from tests.browser.conftest import People
from tests.browser.helpers import (
    accept_offer,
    bubbles,
    chat_item,
    open_console,
    open_widget,
    serve_demo,
    set_status,
    start_chat,
    t,
    visitor_says,
)
from tests.conftest import Live, World

# The browser's own APIs, observed (not replaced): every tone started and every notification shown.
OBSERVE = """
window.__tones = 0;
const start = OscillatorNode.prototype.start;
OscillatorNode.prototype.start = function (...args) { window.__tones += 1; return start.apply(this, args); };
window.__notes = [];
const Real = window.Notification;
if (Real) {
  window.Notification = class extends Real {
    constructor(title, options) {
      super(title, options);
      window.__notes.push({title, body: (options || {}).body || ''});
    }
  };
}
"""


async def _operator(people: People, live: Live) -> BrowserContext:
    ctx = await people.new(permissions=["notifications"])
    await ctx.grant_permissions(["notifications"], origin=live.base)
    await ctx.add_init_script(OBSERVE)
    return ctx


async def _tones(page: Page, at_least: int) -> None:
    await page.wait_for_function(f"() => window.__tones >= {at_least}", timeout=5000)


async def _note(page: Page, title: str) -> dict[str, str]:
    await page.wait_for_function("(t) => window.__notes.some((n) => n.title === t)", arg=title, timeout=5000)
    notes: list[dict[str, str]] = await page.evaluate("() => window.__notes")
    return next(n for n in notes if n["title"] == title)


async def test_tone_notification_and_title_for_offers_queue_and_messages(rt: Runtime, world: World, live: Live,
                                                                        people: People) -> None:
    await serve_demo(rt, world, live)
    ctx = await _operator(people, live)
    console = await open_console(ctx, live, rt, world.operator_email, world.operator_id)
    key = f"confide:alerts:{world.operator_id}"
    sound, desktop = console.locator(t("alert-sound")), console.locator(t("alert-desktop"))
    # Defaults: the tone on, desktop notifications off, nothing stored yet.
    await expect(sound).to_be_checked()
    await expect(desktop).not_to_be_checked()
    assert await console.evaluate("(k) => localStorage.getItem(k)", key) is None
    await desktop.check()  # permission is granted to this browser context, so it stays on
    await expect(desktop).to_be_checked()
    assert await console.evaluate("(k) => JSON.parse(localStorage.getItem(k))", key) == {"sound": True,
                                                                                          "desktop": True}
    await console.click("#queue-heading")  # a gesture on the page: browsers start audio only after one

    # An administrator, away, watches the queue in a console of her own.
    admin_ctx = await _operator(people, live)
    admin = await open_console(admin_ctx, live, rt, world.admin_email, world.admin_id, online=False)
    await admin.locator(t("alert-desktop")).check()
    await admin.select_option(t("status"), "away")
    await admin.click("#queue-heading")

    # A visitor asks for a chat: offered to Mia (tone, notification, title), queued for the admin.
    ana = await (await people.new()).new_page()
    await open_widget(ana, live)
    ana_id = await start_chat(ana, name="Ana Lima", email="ana@example.com")
    await expect(console.locator(t("offer"))).to_be_visible()
    await _tones(console, 1)
    offer = await _note(console, "New chat offered to you")
    assert "Ana Lima" in offer["body"]
    await expect(console).to_have_title("(1) Confide")
    queued = await _note(admin, "A new chat is waiting")
    assert "Ana Lima" in queued["body"]
    await _tones(admin, 1)
    await expect(admin).to_have_title("(1) Confide")

    await accept_offer(console, ana_id)
    await expect(console).to_have_title("Confide")
    await expect(admin).to_have_title("Confide")
    tones = await console.evaluate("() => window.__tones")

    # A message in the open chat of a visible tab: no alert. In a chat that is not open: all three.
    await visitor_says(ana, "Hello")
    await expect(console.locator(f'{t("msg")}[data-sender="visitor"]')).to_have_count(1)
    assert await console.evaluate("() => window.__notes.filter((n) => n.title.startsWith('New message')).length") == 0
    bruno = await (await people.new()).new_page()
    await open_widget(bruno, live)
    bruno_id = await start_chat(bruno, name="Bruno Reis", email="bruno@example.com")
    await accept_offer(console, bruno_id)
    await console.wait_for_timeout(1600)  # tones are at most one per 1.5 s
    tones = await console.evaluate("() => window.__tones")
    await visitor_says(ana, "Are you there?")
    await _tones(console, tones + 1)
    note = await _note(console, "New message from Ana Lima")
    assert "Are you there?" not in note["body"]  # a notification may show on a locked screen: no text
    await expect(console).to_have_title("(1) Confide")

    # The sound can be turned off; both choices are remembered for this operator.
    await sound.uncheck()
    await console.reload()
    await expect(console.locator(t("connection"))).to_have_attribute("data-state", "connected")
    await expect(console.locator(t("alert-sound"))).not_to_be_checked()
    await expect(console.locator(t("alert-desktop"))).to_be_checked()
    await console.click("#queue-heading")
    await chat_item(console, bruno_id).click()
    await console.wait_for_timeout(1600)
    await visitor_says(ana, "Hello again")
    await _note(console, "New message from Ana Lima")
    await expect(console).to_have_title("(1) Confide")  # Ana's chat, open right after the reload, was read
    await console.wait_for_timeout(300)
    assert await console.evaluate("() => window.__tones") == 0  # counted since the reload


async def test_the_message_box_has_the_focus_and_keeps_early_keys(rt: Runtime, world: World, live: Live,
                                                                 people: People) -> None:
    await serve_demo(rt, world, live)
    console = await open_console(await people.new(), live, rt, world.operator_email, world.operator_id)
    ana = await (await people.new()).new_page()
    await open_widget(ana, live)
    ana_id = await start_chat(ana, name="Ana Lima", email="ana@example.com")

    # Accepted from the keyboard and answered at once: what is typed before the chat opens is kept.
    accept = console.locator(t("offer-accept"))
    await accept.focus()
    await console.keyboard.press("Enter")
    await console.keyboard.type("Hello Ana, how can I help?")
    composer = console.locator(t("composer"))
    await expect(composer).to_be_focused()
    await expect(composer).to_have_value("Hello Ana, how can I help?")
    await console.keyboard.press("Enter")
    await expect(bubbles(ana, "operator")).to_have_text(["Hello Ana, how can I help?"])
    await expect(chat_item(console, ana_id)).to_have_attribute("aria-current", "true")

    # A second chat accepted from the queue gets the focus; going back to the first one too.
    bruno = await (await people.new()).new_page()
    await open_widget(bruno, live)
    bruno_id = await start_chat(bruno, name="Bruno Reis", email="bruno@example.com")
    await console.locator(f'{t("queue-item")}[data-conversation-id="{bruno_id}"] {t("accept")}').click()
    await expect(chat_item(console, bruno_id)).to_have_attribute("aria-current", "true")
    await expect(composer).to_be_focused()
    await composer.fill("A draft for Bruno")
    await chat_item(console, ana_id).click()
    await expect(composer).to_be_focused()
    await expect(composer).to_have_value("")
    await chat_item(console, bruno_id).click()
    await expect(composer).to_be_focused()
    await expect(composer).to_have_value("A draft for Bruno")  # nothing typed is dropped by switching


async def test_the_status_shown_is_the_one_the_server_holds(rt: Runtime, world: World, live: Live,
                                                           people: People) -> None:
    await set_status(rt, world.operator_id, "away")
    console = await open_console(await people.new(), live, rt, world.operator_email, world.operator_id,
                                 online=False)
    await expect(console.locator(t("status"))).to_have_value("away")
    await expect(console.locator("#status-wrap")).to_have_attribute("data-status", "away")


async def test_desktop_notifications_refused_by_the_browser_stay_off(rt: Runtime, world: World, live: Live,
                                                                    people: People) -> None:
    ctx = await people.new()  # no permission granted: the browser refuses when asked
    console = await open_console(ctx, live, rt, world.operator_email, world.operator_id, online=False)
    desktop = console.locator(t("alert-desktop"))
    await desktop.check()
    await expect(console.locator(t("notices"))).to_contain_text("Desktop notifications are blocked")
    await expect(desktop).not_to_be_checked()
    key = f"confide:alerts:{world.operator_id}"
    assert await console.evaluate("(k) => JSON.parse(localStorage.getItem(k))", key) == {"sound": True,
                                                                                          "desktop": False}


# The page's visibility, as the browser reports it when the operator switches to another tab or
# minimises the window (a headless browser never hides a page by itself).
SET_VISIBILITY = """(state) => {
  Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => state});
  Object.defineProperty(document, 'hidden', {configurable: true, get: () => state === 'hidden'});
  document.dispatchEvent(new Event('visibilitychange'));
}"""


async def test_a_hidden_console_tab_alerts_even_for_the_open_chat(rt: Runtime, world: World, live: Live,
                                                                 people: People) -> None:
    await serve_demo(rt, world, live)
    ctx = await _operator(people, live)
    console = await open_console(ctx, live, rt, world.operator_email, world.operator_id)
    await console.locator(t("alert-desktop")).check()
    await console.click("#queue-heading")  # a gesture: audio may start
    ana = await (await people.new()).new_page()
    await open_widget(ana, live)
    ana_id = await start_chat(ana, name="Ana Lima", email="ana@example.com")
    await accept_offer(console, ana_id)
    await expect(chat_item(console, ana_id)).to_have_attribute("aria-current", "true")  # open
    await visitor_says(ana, "Hello")
    await expect(console.locator(f'{t("msg")}[data-sender="visitor"]')).to_have_count(1)
    await expect(console).to_have_title("Confide")  # the open chat of a visible tab: read, no alert
    assert await console.evaluate("() => window.__notes.filter((n) => n.title.startsWith('New message')).length") == 0

    # The operator switches to another tab: a message in the very chat that is open alerts.
    await console.evaluate(SET_VISIBILITY, "hidden")
    await console.wait_for_timeout(1600)  # tones are at most one per 1.5 s
    tones = await console.evaluate("() => window.__tones")
    await visitor_says(ana, "Is anyone there?")
    await _tones(console, tones + 1)
    note = await _note(console, "New message from Ana Lima")
    assert "anyone" not in note["body"]  # names only, never the text
    await expect(console).to_have_title("(1) Confide")  # not marked read while nobody sees it

    # Back on the tab: the message is read and the title says so.
    await console.evaluate(SET_VISIBILITY, "visible")
    await expect(console).to_have_title("Confide")
