"""The widget's Privacy view (ADR 0018): one click withdraws, and a material notice change asks the
visitor again the next time they open the widget."""

from __future__ import annotations

import base64
import json

from playwright.async_api import expect

from confide.consent import admin as consent_admin
from confide.consent import notices as consent_notices
from confide.consent import questions as consent_questions
from confide.consent.schemas import NoticeIn, RecordFilters
from confide.core.runtime import Runtime
from confide.users import sessions as user_sessions
from tests.browser.conftest import People
from tests.browser.helpers import (
    accept_offer,
    axe,
    log_in,
    open_console,
    open_widget,
    serve_demo,
    set_status,
    start_chat,
    t,
    visitor_says,
    w,
)
from tests.conftest import Live, World


async def _may(rt: Runtime, world: World, subject_id: str) -> bool:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return await consent_questions.may(uow, workspace_id=world.workspace_id, subject_id=subject_id,
                                           purpose="marketing")


async def test_privacy_view_withdraws_and_a_material_change_asks_again(rt: Runtime, world: World, live: Live,
                                                                       people: People) -> None:
    await serve_demo(rt, world, live)
    await set_status(rt, world.operator_id, "online")
    page = await (await people.new()).new_page()
    await open_widget(page, live)
    await start_chat(page, name="Ana Lima", email="ana@example.com", marketing=True)
    subject_id = str(await page.evaluate(
        "() => JSON.parse(sessionStorage.getItem(Object.keys(sessionStorage).find((k) => k.startsWith('confide:'))))"
        ".token.split('.')[0]"))
    vid = json.loads(base64.urlsafe_b64decode(subject_id + "=" * (-len(subject_id) % 4)))["v"]
    assert await _may(rt, world, vid) is True

    await page.click(w("privacy-open"))
    item = page.locator(f'{w("privacy-purpose")}[data-purpose="marketing"]')
    await expect(item.locator(w("privacy-notice"))).to_have_text("News by e-mail")
    await expect(item).to_have_attribute("data-state", "on")
    await axe(page, "widget privacy view")
    await item.locator(w("privacy-withdraw")).click()
    await expect(item).to_have_attribute("data-state", "off")
    assert await _may(rt, world, vid) is False
    await item.locator(w("privacy-grant")).click()  # and back: one click each way
    await expect(item).to_have_attribute("data-state", "on")
    assert await _may(rt, world, vid) is True
    await page.click(w("privacy-close"))
    await expect(page.locator(w("messages"))).to_be_visible()

    # The business changes the notice materially; the next time the visitor opens the widget, it asks.
    await page.click(w("launcher"))
    await expect(page.locator(w("panel"))).to_be_hidden()
    async with rt.db.unit_of_work() as uow:
        admin = await user_sessions.actor_for(uow, world.admin_id)
        purpose = await consent_notices.get_purpose(uow, world.workspace_id, "marketing")
        assert purpose is not None
        await consent_admin.publish_notice(uow, admin, purpose.id, NoticeIn(text="News and partner offers by e-mail",
                                                                            material=True))
    assert await _may(rt, world, vid) is False
    await page.click(w("launcher"))
    await expect(page.locator(w("privacy-reask"))).to_be_visible()
    await expect(item).to_have_attribute("data-state", "ask")
    await expect(item.locator(w("privacy-notice"))).to_have_text("News and partner offers by e-mail")
    await axe(page, "widget privacy re-ask")
    await item.locator(w("privacy-grant")).click()
    await expect(item).to_have_attribute("data-state", "on")
    assert await _may(rt, world, vid) is True


async def test_an_operator_records_a_statement_from_the_visitor_panel(rt: Runtime, world: World, live: Live,
                                                                      people: People) -> None:
    await serve_demo(rt, world, live)
    console = await open_console(await people.new(), live, rt, world.operator_email, world.operator_id)
    visitor = await (await people.new()).new_page()
    await open_widget(visitor, live)
    conv_id = await start_chat(visitor, name="Ana Lima", email="ana@example.com")
    await accept_offer(console, conv_id)
    await visitor_says(visitor, "Yes, send me the newsletter please")
    await expect(console.locator(f'{t("msg")}[data-sender="visitor"]')).to_have_count(1)
    box = console.locator(t("consent-statement"))
    await box.locator("summary").click()
    await box.locator(t("statement-purpose")).select_option("newsletter")
    await expect(box.locator(f'{t("statement-message")} option')).to_have_count(1)
    await box.locator(t("statement-submit")).click()
    await expect(box.locator(t("statement-status"))).to_contain_text("Recorded: agreed")
    async with rt.db.unit_of_work(readonly=True) as uow:
        rows, _ = await consent_admin.search_records(uow, await user_sessions.actor_for(uow, world.admin_id),
                                                     RecordFilters(source="operator"))
    assert [(r.purpose, r.granted, r.conversation_id, r.actor_id) for r in rows] == [
        ("newsletter", True, conv_id, world.operator_id)]
    assert rows[0].message_id is not None
    await axe(console, "console with the consent statement form open")
    admin = await log_in(await people.new(), live, world.admin_email, "/app/consent")
    await expect(admin.locator(t("consent-row"))).to_have_count(2)  # the form's "marketing: no", the statement
    await axe(admin, "consent ledger")
    await admin.locator(f'{t("consent-row")}[data-purpose="newsletter"] a').first.click()
    await expect(admin.locator(t("notice-text"))).to_have_text("Send me the newsletter. I can unsubscribe at any time.")
    await axe(admin, "consent record")
    await admin.goto(f"{live.base}/app/settings/privacy")
    await admin.locator(f'{t("purpose")}[data-key="newsletter"] summary').click()
    await axe(admin, "privacy purposes settings")
