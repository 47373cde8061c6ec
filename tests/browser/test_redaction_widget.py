"""Redaction in a real browser: the widget tells the visitor that card numbers are masked, and the
operator's console shows the masked text only (Chromium)."""

from __future__ import annotations

from playwright.async_api import expect

from confide.core.runtime import Runtime
from confide.redaction import service as redaction
from confide.redaction.schemas import PolicyIn
from tests.browser.conftest import People
from tests.browser.helpers import accept_offer, bubbles, open_console, open_widget, serve_demo, start_chat, t, w
from tests.conftest import Live, World
from tests.helpers_api import actor


async def test_widget_notice_and_masked_card_in_the_console(
    rt: Runtime, world: World, live: Live, people: People
) -> None:
    async with rt.db.unit_of_work() as uow:
        await redaction.set_policy(rt, uow, await actor(rt, world.admin_id), world.site_id, PolicyIn(cards=True))
    await serve_demo(rt, world, live)
    console = await open_console(await people.new(), live, rt, world.operator_email, world.operator_id)
    visitor = await (await people.new()).new_page()
    await open_widget(visitor, live)
    conv_id = await start_chat(visitor, name="Ana Lima", email="ana@example.com", order="A-17", marketing=False)
    await accept_offer(console, conv_id)
    await expect(visitor.locator(w("redaction-notice"))).to_contain_text("Card numbers you type are masked")

    await visitor.fill(w("input"), "my card is 4111 1111 1111 1111")
    await visitor.press(w("input"), "Enter")
    masked = "my card is •••• •••• •••• 1111"
    await expect(console.locator(f'{t("msg")}[data-sender="visitor"]')).to_contain_text([masked])
    await expect(bubbles(visitor, "visitor")).to_contain_text([masked])
    assert "4111 1111 1111 1111" not in await console.content()
