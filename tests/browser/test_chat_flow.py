"""The whole flow in two browsers: a visitor on the demo page and an operator in the console."""

from __future__ import annotations

import re

from playwright.async_api import expect

from confide.core.runtime import Runtime
from tests.browser.conftest import People
from tests.browser.helpers import (
    accept_offer,
    bubbles,
    open_console,
    open_widget,
    operator_says,
    serve_demo,
    start_chat,
    t,
    visitor_says,
    w,
)
from tests.conftest import Live, World


async def test_visitor_and_operator_chat_end_to_end(rt: Runtime, world: World, live: Live, people: People) -> None:
    await serve_demo(rt, world, live)
    console = await open_console(await people.new(), live, rt, world.operator_email, world.operator_id)
    visitor = await (await people.new()).new_page()

    # The visitor opens the widget and starts a chat; marketing left unticked.
    await open_widget(visitor, live)
    conv_id = await start_chat(visitor, name="Ana Lima", email="ana@example.com", phone="+351 912 345 678",
                               order="A-17", marketing=False)
    await expect(visitor.locator(w("status"))).to_contain_text("Waiting for an operator")

    # Round robin offers it to the only operator online, who accepts.
    await accept_offer(console, conv_id)
    await expect(console.locator("#chat-title")).to_have_text("Ana Lima")
    panel = console.locator(t("visitor-panel"))
    await expect(panel).to_contain_text("ana@example.com")
    await expect(panel).to_contain_text("+351 912 345 678")
    await expect(panel).to_contain_text("A-17")
    await expect(panel.locator("li.declined")).to_contain_text("Marketing")
    await expect(visitor.locator(w("status"))).to_have_text("You are chatting with Mia")
    await expect(bubbles(visitor, "system")).to_contain_text(["Mia joined the chat."])

    # Typing, both ways.
    await visitor.fill(w("input"), "Hello, my parcel")
    await expect(console.locator(t("visitor-typing"))).to_be_visible()
    await expect(console.locator(t("visitor-typing"))).to_contain_text("Ana Lima is typing")
    await visitor.press(w("input"), "Enter")
    await expect(console.locator(t("visitor-typing"))).to_be_hidden()
    await expect(console.locator(f'{t("msg")}[data-sender="visitor"]')).to_contain_text(["Hello, my parcel"])

    await console.fill(t("composer"), "Let me check")
    await expect(visitor.locator(w("typing"))).to_be_visible()
    await expect(visitor.locator(w("typing"))).to_have_text("Mia is typing…")
    await console.press(t("composer"), "Enter")
    await expect(visitor.locator(w("typing"))).to_be_hidden()
    await expect(bubbles(visitor, "operator")).to_contain_text(["Let me check"])

    await operator_says(console, "Your parcel zebrafish left the warehouse")
    await expect(bubbles(visitor, "operator").last).to_have_text("Your parcel zebrafish left the warehouse")
    # Each side sees that the other has read its last message.
    await expect(console.locator(f'{t("msg")}[data-sender="operator"]').last.locator(".seen")).to_have_text("Seen")
    await visitor_says(visitor, "Thank you!")
    await expect(console.locator(f'{t("msg")}[data-sender="visitor"]').last).to_contain_text("Thank you!")
    await expect(visitor.locator(f'{w("msg")}[data-sender="visitor"]').last.locator(w("seen"))).to_be_visible()

    # The visitor ends the chat and rates it.
    await visitor.click(w("end"))
    await visitor.click(w("end-confirm"))
    await expect(visitor.locator(w("status"))).to_have_text("This chat has ended.")
    await expect(console.locator(t("chat-ended"))).to_be_visible()
    await expect(console.locator(t("composer"))).to_be_disabled()
    rating = visitor.locator(w("rating"))
    await rating.locator('[data-score="5"]').click()
    await rating.locator("textarea").fill("Quick and kind")
    await rating.locator(w("rate")).click()
    await expect(visitor.locator(w("panel"))).to_contain_text("Thank you for your feedback!")
    await expect(panel).to_contain_text("★★★★★")
    await expect(panel).to_contain_text("Quick and kind")
    assert await visitor.evaluate("() => sessionStorage.length") == 0  # ending the chat removes the token
    await visitor.reload()  # …so a reload shows the launcher only, not the old chat
    await expect(visitor.locator(w("launcher"))).to_have_attribute("aria-expanded", "false")
    await expect(visitor.locator(w("panel"))).to_have_count(0)

    # Stored Chats: found by a word of a message, not by a word that is not in it.
    await console.goto(f"{live.base}/app/chats")
    await console.fill("#f-text", "zebrafish")
    await console.click(t("filter-submit"))
    await expect(console).to_have_url(re.compile(r"/app/chats\?q=[A-Za-z0-9_-]+$"))  # the words stay server-side
    row = console.locator(t("chat-row"))
    await expect(row).to_have_count(1)
    await expect(row).to_have_attribute("data-conversation-id", conv_id)
    await expect(row).to_contain_text("Ana Lima")
    await expect(row.locator(".stars")).to_have_attribute("aria-label", "5 out of 5")
    await expect(row.locator("td.num")).to_have_text("4")  # 2 + 2; system lines are not counted

    await console.fill("#f-text", "giraffe")
    await console.click(t("filter-submit"))
    await expect(console).to_have_url(re.compile(r"/app/chats\?q=[A-Za-z0-9_-]+$"))
    await expect(console.locator(t("no-results"))).to_be_visible()
    await expect(console.locator(t("chat-row"))).to_have_count(0)

    # The transcript page shows every message, the rating and the comment.
    await console.go_back()
    await console.locator(t("chat-row")).get_by_role("link").click()
    await expect(console).to_have_url(re.compile(f"/app/chats/{conv_id}"))
    messages = console.locator(f'{t("transcript")} {t("msg")}')
    await expect(messages).to_have_count(6)
    await expect(messages.locator(".bubble")).to_have_text(
        ["Hello, my parcel", "Let me check", "Your parcel zebrafish left the warehouse", "Thank you!"])
    await expect(messages.filter(has_text="Mia joined the chat.")).to_have_attribute("data-sender", "system")
    details = console.locator(t("visitor-details"))
    await expect(details).to_contain_text("Quick and kind")
    await expect(details.locator(".stars")).to_have_attribute("aria-label", "5 out of 5")
    await expect(details).to_contain_text("declined")
