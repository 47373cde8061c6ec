"""The Prospects page in Chromium: add two prospects by hand, find one by a word of its company
(the word never reaches the URL), open it, edit its status and value, and see the list follow; and
"Add as prospect" in the console's visitor panel."""

from __future__ import annotations

from playwright.async_api import expect
from sqlalchemy import select

from confide.core.runtime import Runtime
from confide.prospects.models import Prospect
from tests.browser.conftest import People
from tests.browser.helpers import accept_offer, axe, log_in, open_console, open_widget, serve_demo, start_chat, t
from tests.conftest import Live, World


async def test_create_filter_and_edit_prospects(rt: Runtime, world: World, live: Live, people: People) -> None:
    page = await log_in(await people.new(), live, world.admin_email, "/app/prospects")
    await expect(page.locator(t("no-results"))).to_be_visible()
    await axe(page, "Prospects, empty")

    for name, company, email in (("Nina Park", "Orchard Ltd", "nina@orchard.example"),
                                 ("Omar Reyes", "Harbour GmbH", "omar@harbour.example")):
        await page.goto(f"{live.base}/app/prospects")
        form = page.locator(t("prospect-new"))
        await form.get_by_label("Name").fill(name)
        await form.get_by_label("Company").fill(company)
        await form.get_by_label("E-mail").fill(email)
        await form.get_by_label("Value").fill("250.00")
        await page.click(t("prospect-create"))
        await expect(page.locator(t("flash"))).to_have_text("Prospect added.")
        await expect(page.locator(t("prospect-title"))).to_have_text(name)

    await page.goto(f"{live.base}/app/prospects")
    await expect(page.locator(t("prospect-row"))).to_have_count(2)
    await page.fill("#f-text", "harbour")
    await page.click(t("filter-submit"))
    await expect(page.locator(t("prospect-row"))).to_have_count(1)
    await expect(page.locator(t("prospect-row"))).to_contain_text("Omar Reyes")
    assert "harbour" not in page.url.lower()
    await expect(page.locator("#f-text")).to_have_value("harbour")
    await axe(page, "Prospects, filtered")

    await page.locator(t("prospect-row")).get_by_role("link", name="Omar Reyes").click()
    edit = page.locator(t("prospect-edit"))
    await edit.get_by_label("Status").select_option("qualified")
    await edit.get_by_label("Value").fill("1234.50")
    await edit.get_by_label("Notes").fill("Wants a demo in January")
    await page.click(t("prospect-save"))
    await expect(page.locator(t("flash"))).to_have_text("Prospect saved.")
    await expect(edit.get_by_label("Notes")).to_have_value("Wants a demo in January")
    await axe(page, "a prospect, saved")

    await page.get_by_role("link", name="← All prospects").click()
    row = page.locator(t("prospect-row"))
    await expect(row).to_have_count(1)  # back to the filtered list
    await expect(row.locator(t("prospect-status"))).to_have_text("Qualified")
    await expect(row).to_contain_text("1234.50 EUR")
    await page.select_option("#f-status", "new")
    await page.fill("#f-text", "")
    await page.click(t("filter-submit"))
    await expect(page.locator(t("prospect-row"))).to_have_count(1)
    await expect(page.locator(t("prospect-row"))).to_contain_text("Nina Park")
    await page.goto(f"{live.base}/app/settings/prospects")
    await expect(page.locator(t("prospect-settings"))).to_have_count(1)
    await axe(page, "Settings, prospects")


async def test_add_as_prospect_from_the_console(rt: Runtime, world: World, live: Live, people: People) -> None:
    await serve_demo(rt, world, live)
    console = await open_console(await people.new(), live, rt, world.admin_email, world.admin_id)
    ana = await (await people.new()).new_page()
    await open_widget(ana, live)
    ana_id = await start_chat(ana, name="Ana Lima", email="ana@example.com")
    await accept_offer(console, ana_id)
    panel = console.locator(t("visitor-panel"))
    await panel.locator(t("add-prospect")).click()
    await expect(panel).to_contain_text("Added as a prospect.")
    async with rt.db.unit_of_work(readonly=True) as uow:
        rows = (await uow.session.scalars(select(Prospect))).all()
    assert [(r.source, r.conversation_id) for r in rows] == [("chat", ana_id)]
    link = panel.get_by_role("link", name="prospect")
    await link.click()
    await expect(console.locator(t("prospect-title"))).to_have_text("Ana Lima")
