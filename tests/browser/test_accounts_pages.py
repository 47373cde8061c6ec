"""The account pages in Chromium (issue 6): a one-time password forced to change at the first log-in,
the sessions list ending another device's session, the password and session rules in Settings;
every page passes axe-core (WCAG 2.1 AA), with the console's CSP (no 'unsafe-inline' scripts)."""

from __future__ import annotations

from playwright.async_api import expect
from sqlalchemy import text

from confide.core.runtime import Runtime
from tests.browser.conftest import People
from tests.browser.helpers import axe, log_in, t
from tests.conftest import Live, World

NEW = "a fresh phrase for the browser"


async def test_a_one_time_password_is_changed_at_first_log_in(rt: Runtime, world: World, live: Live,
                                                              people: People) -> None:
    async with rt.db.unit_of_work() as uow:
        await uow.session.execute(text("update operators set must_change_password = :t where id = :id"),
                                  {"t": True, "id": world.operator_id})
    context = await people.new()
    page = await context.new_page()
    await page.goto(f"{live.base}/login?next=/app/chats")
    await page.fill("#email", world.operator_email)
    await page.fill("#password", "correct horse battery staple")
    await page.click(t("login-submit"))
    await expect(page).to_have_url(f"{live.base}/app/account/password")
    await expect(page.locator(t("password-required"))).to_be_visible()
    await axe(page, "password change, required")
    await page.fill("#current_password", "correct horse battery staple")
    await page.fill("#new_password", "password1234")
    await page.fill("#confirm_password", "password1234")
    await page.click(t("password-submit"))
    await expect(page.locator(t("form-errors"))).to_contain_text("common or breached")
    await axe(page, "password change, refused")
    await page.fill("#current_password", "correct horse battery staple")
    await page.fill("#new_password", NEW)
    await page.fill("#confirm_password", NEW)
    await page.click(t("password-submit"))
    await expect(page).to_have_url(f"{live.base}/app/account/sessions?saved=password")
    await expect(page.locator(t("flash"))).to_contain_text("Your password was changed")
    await page.goto(f"{live.base}/app/chats")
    await expect(page).to_have_url(f"{live.base}/app/chats")


async def test_the_sessions_page_ends_another_device(rt: Runtime, world: World, live: Live, people: People) -> None:
    laptop = await log_in(await people.new(), live, world.operator_email, "/app/account/sessions")
    phone = await log_in(await people.new(), live, world.operator_email, "/app/account/sessions")
    await phone.reload()
    await expect(phone.locator(t("session-row"))).to_have_count(2)
    await axe(phone, "sessions")
    other = phone.locator(t("session-row")).filter(has_not_text="This session")
    await other.locator(t("session-end")).click()
    await expect(phone.locator(t("flash"))).to_contain_text("The session has ended")
    await expect(phone.locator(t("session-row"))).to_have_count(1)
    await laptop.goto(f"{live.base}/app/chats")
    await expect(laptop).to_have_url(f"{live.base}/login?next=%2Fapp%2Fchats")


async def test_the_password_rules_page(rt: Runtime, world: World, live: Live, people: People) -> None:
    page = await log_in(await people.new(), live, world.admin_email, "/app/settings/security/passwords")
    await axe(page, "password rules")
    await page.fill("#password_min_length", "9")
    await page.click(t("rules-submit"))
    await expect(page.locator(t("form-errors"))).to_be_visible()
    await axe(page, "password rules, refused")
    await page.fill("#password_min_length", "16")
    await page.fill("#session_max_per_operator", "3")
    await page.click(t("rules-submit"))
    await expect(page.locator(t("flash"))).to_contain_text("saved")
    await expect(page.locator("#password_min_length")).to_have_value("16")
