"""The operator console with several chats: unread badges, canned replies, transfer to another operator."""

from __future__ import annotations

from playwright.async_api import Locator, Page, expect

from confide.core.runtime import Runtime
from tests.browser.conftest import People
from tests.browser.helpers import (
    accept_offer,
    add_canned_reply,
    bubbles,
    chat_item,
    open_console,
    open_widget,
    serve_demo,
    start_chat,
    t,
    visitor_says,
    w,
)
from tests.conftest import Live, World


def _badge(console: Page, conversation_id: str) -> Locator:
    return chat_item(console, conversation_id).locator(t("unread"))


def _transcript(console: Page, sender: str) -> Locator:
    return console.locator(f'{t("transcript")} {t("msg")}[data-sender="{sender}"] .bubble')


async def test_two_chats_badges_canned_replies_and_transfer(rt: Runtime, world: World, live: Live,
                                                           people: People) -> None:
    await serve_demo(rt, world, live)
    await add_canned_reply(rt, world, shortcut="hours", title="Opening hours", text="We answer from 9 to 17.")
    await add_canned_reply(rt, world, shortcut="thanks", title="Thanks", text="Thank you for waiting!")
    console = await open_console(await people.new(), live, rt, world.operator_email, world.operator_id)

    ana = await (await people.new()).new_page()
    await open_widget(ana, live)
    ana_id = await start_chat(ana, name="Ana Lima", email="ana@example.com")
    await accept_offer(console, ana_id)
    bruno = await (await people.new()).new_page()
    await open_widget(bruno, live)
    bruno_id = await start_chat(bruno, name="Bruno Reis", email="bruno@example.com")
    await accept_offer(console, bruno_id)  # the chat just accepted has the focus
    await expect(console.locator(t("chat-item"))).to_have_count(2)
    await expect(console.locator("#chats-count")).to_have_text("2 / 5")

    # Messages to the chat in the background count as unread; the focused chat's are read at once.
    await visitor_says(ana, "First question")
    await visitor_says(ana, "Second question")
    await expect(_badge(console, ana_id)).to_have_text("2")
    await expect(_badge(console, ana_id)).to_be_visible()
    await expect(console).to_have_title("(2) Confide")
    await expect(chat_item(console, ana_id)).to_contain_text("Second question")
    await visitor_says(bruno, "Bruno is here")
    await expect(_transcript(console, "visitor")).to_have_text(["Bruno is here"])
    await expect(_badge(console, bruno_id)).to_be_hidden()

    # Focusing Ana's chat clears its badge and shows her messages.
    await chat_item(console, ana_id).click()
    await expect(_badge(console, ana_id)).to_be_hidden()
    await expect(console).to_have_title("Confide")
    await expect(console.locator("#chat-title")).to_have_text("Ana Lima")
    await expect(_transcript(console, "visitor")).to_have_text(["First question", "Second question"])
    await expect(console.locator(t("composer"))).to_be_focused()
    # …and now Bruno's chat, in the background, collects a badge of its own.
    await visitor_says(bruno, "Hello?")
    await expect(_badge(console, bruno_id)).to_have_text("1")
    await expect(console).to_have_title("(1) Confide")

    # A canned reply from the picker…
    await console.select_option(t("canned"), label="/hours — Opening hours")
    await expect(console.locator(t("composer"))).to_have_value("We answer from 9 to 17.")
    await console.press(t("composer"), "Enter")
    await expect(bubbles(ana, "operator")).to_have_text(["We answer from 9 to 17."])
    # …and one by its shortcut: the suggestion list, then Tab inserts it.
    await console.locator(t("composer")).press_sequentially("/tha")
    suggestions = console.locator("#suggestions")
    await expect(suggestions).to_be_visible()
    await expect(suggestions.get_by_role("option")).to_have_count(1)
    await expect(suggestions).to_contain_text("/thanks")
    await console.press(t("composer"), "Tab")
    await expect(console.locator(t("composer"))).to_have_value("Thank you for waiting!")
    await expect(suggestions).to_be_hidden()
    await console.press(t("composer"), "Enter")
    await expect(bubbles(ana, "operator")).to_have_text(["We answer from 9 to 17.", "Thank you for waiting!"])
    # An exact `/shortcut` expands on Enter rather than being sent as it is.
    await console.fill(t("composer"), "/hours")
    await console.press(t("composer"), "Enter")
    await expect(console.locator(t("composer"))).to_have_value("We answer from 9 to 17.")
    await console.fill(t("composer"), "")

    # The administrator comes online in a console of her own.
    admin = await open_console(await people.new(), live, rt, world.admin_email, world.admin_id)
    await expect(admin.locator(t("chat-item"))).to_have_count(0)

    # Transfer Bruno's chat to her: it moves to her console and out of the operator's.
    await chat_item(console, bruno_id).click()
    await expect(_badge(console, bruno_id)).to_be_hidden()
    await console.click(t("transfer"))
    target = console.locator(t("transfer-target"))
    await expect(target).to_be_enabled()
    await target.select_option(f"operator:{world.admin_id}")
    await console.click(t("transfer-confirm"))

    await expect(chat_item(admin, bruno_id)).to_be_visible()
    await expect(admin.locator("#chat-title")).to_have_text("Bruno Reis")
    await expect(_transcript(admin, "visitor")).to_have_text(["Bruno is here", "Hello?"])
    await expect(admin.locator(f'{t("msg")}[data-sender="system"]').last).to_contain_text(
        "The chat was transferred to Ada Admin.")
    await expect(bruno.locator(w("status"))).to_have_text("You are chatting with Ada Admin")

    await expect(console.locator(t("chat-ended"))).to_contain_text("You transferred this chat to Ada Admin.")
    await expect(chat_item(console, bruno_id)).to_contain_text("Transferred")
    await expect(console.locator(t("composer"))).to_be_disabled()
    await expect(console.locator("#chats-count")).to_have_text("1 / 5")

    # What Bruno writes now reaches the administrator only.
    await visitor_says(bruno, "Are you still there?")
    await expect(_transcript(admin, "visitor")).to_have_text(["Bruno is here", "Hello?", "Are you still there?"])
    await expect(_transcript(console, "visitor")).to_have_text(["Bruno is here", "Hello?"])
    await expect(_badge(console, bruno_id)).to_be_hidden()

    # Dismissed, it leaves the operator's list; Ana's chat is still there and still works.
    await console.click(t("dismiss"))
    await expect(chat_item(console, bruno_id)).to_have_count(0)
    await expect(console.locator(t("chat-item"))).to_have_count(1)
    await expect(console.locator("#chat-title")).to_have_text("Ana Lima")
    await console.fill(t("composer"), "Anything else?")
    await console.press(t("composer"), "Enter")
    await expect(bubbles(ana, "operator").last).to_have_text("Anything else?")
    await expect(admin.locator(t("chat-item"))).to_have_count(1)

    # The operator closes Ana's chat: she is told, and may rate it.
    await console.click(t("close-chat"))
    await console.click(t("close-confirm"))
    await expect(console.locator(t("chat-ended"))).to_contain_text("This chat is closed.")
    await expect(ana.locator(w("status"))).to_have_text("This chat has ended.")
    await expect(ana.locator(w("rating"))).to_be_visible()
    await expect(ana.locator(w("input"))).to_have_count(0)
