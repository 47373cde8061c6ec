"""Nobody can answer a waiting visitor: the widget says so and offers to leave a message, which becomes an
offline request (with what the visitor already wrote), then shows a thank-you.

End to end against the real server: it needs the server side of "unanswered" (issue 5, point 5: the
visitor `conversation` object's `unanswered`, the `leave_message` / `message_left` frames). Nothing here
is faked."""

from __future__ import annotations

from playwright.async_api import expect

from confide.core.runtime import Runtime
from tests.browser.conftest import People
from tests.browser.helpers import (
    axe,
    log_in,
    open_console,
    open_widget,
    serve_demo,
    start_chat,
    stored,
    t,
    visitor_says,
    w,
    wait_status,
)
from tests.conftest import Live, World


async def test_a_visitor_nobody_can_answer_leaves_a_message(rt: Runtime, world: World, live: Live,
                                                            people: People) -> None:
    await serve_demo(rt, world, live)
    console = await open_console(await people.new(), live, rt, world.operator_email, world.operator_id)
    visitor = await (await people.new()).new_page()
    await open_widget(visitor, live)
    await start_chat(visitor, name="Ana Lima", email="ana@example.com")
    await expect(visitor.locator(w("status"))).to_contain_text("Waiting for an operator")
    await visitor_says(visitor, "My parcel 4471 never arrived")
    await expect(visitor.locator(w("unanswered"))).to_be_hidden()

    # The only operator goes offline: the waiting visitor is told, and offered to leave a message.
    await console.select_option(t("status"), "offline")
    await wait_status(rt, world.operator_id, "offline")
    box = visitor.locator(w("unanswered"))
    await expect(box).to_be_visible(timeout=15_000)
    await expect(box).to_contain_text("No one is online to answer right now.")
    await axe(visitor, "queued, nobody can answer")
    await visitor.click(w("leave-message"))
    form = visitor.locator(w("leave-form"))
    await expect(form).to_be_visible()
    # The pre-chat form already asked for the e-mail address: no second time.
    await expect(form.locator('[name="email"]')).to_have_count(0)
    await expect(form.locator('[name="message"]')).to_be_focused()
    await axe(visitor, "leave-a-message form in the chat")
    await form.locator('[name="message"]').fill("Please e-mail me the tracking number")
    await visitor.click(w("leave-send"))

    # message_left, then the chat is closed: a thank-you, and the tab forgets the chat.
    done = visitor.locator(w("message-left"))
    await expect(done).to_contain_text("We received your message")
    await expect(visitor.locator(w("status"))).to_have_text("This chat has ended.")
    await expect(visitor.locator(w("rating"))).to_have_count(0)
    await expect(visitor.locator(w("new-chat"))).to_be_focused()
    await axe(visitor, "message left")
    assert await stored(visitor) == {}

    # The operators find it in Offline Requests: what Ana wrote in the chat, and what she added.
    page = await log_in(await people.new(), live, world.operator_email, "/app/offline")
    row = page.locator(t("offline-row"))
    await expect(row).to_have_count(1)
    await expect(row.locator(".offline-name")).to_have_text("Ana Lima")
    await expect(row).to_contain_text("My parcel 4471 never arrived")
    await expect(row).to_contain_text("Please e-mail me the tracking number")
    await expect(row.get_by_role("link", name="ana@example.com")).to_have_attribute("href", "mailto:ana@example.com")
