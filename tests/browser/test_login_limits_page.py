"""Settings → Security → Login limits in Chromium: no axe-core violation (closed, opened, with
errors shown), a window saved through the form, and no CSP violation reported by the page."""

from __future__ import annotations

from playwright.async_api import expect

from confide.core.runtime import Runtime
from tests.browser.conftest import People
from tests.browser.helpers import axe, log_in
from tests.conftest import Live, World

PAGE = "/app/settings/security/login-limits"


async def test_login_limits_page_is_accessible_and_saves(rt: Runtime, world: World, live: Live,
                                                         people: People) -> None:
    ctx = await people.new()
    page = await log_in(ctx, live, world.admin_email, PAGE)
    csp_errors: list[str] = []
    page.on("console", lambda m: csp_errors.append(m.text) if "Content Security Policy" in m.text else None)
    await expect(page.locator('[data-testid="limits-card"]')).to_have_count(7)
    await axe(page, "login limits")

    card = page.locator('[data-subject="role-operator"]')
    await card.locator("summary").click()
    await axe(page, "login limits, a form open")
    await card.locator("textarea[name=ranges]").fill("127.0.0.0/8\n10.1.2.3/8")
    await card.locator('input[name="w-0-days"][value="mon"]').check()
    await card.locator('input[name="w-0-start"]').fill("17:00")
    await card.locator('input[name="w-0-end"]').fill("09:00")
    await card.locator("button[type=submit]").click()
    errors = page.locator('[data-subject="role-operator"] [data-testid="form-errors"]')
    await expect(errors).to_contain_text("did you mean 10.0.0.0/8?")
    await expect(errors).to_contain_text("is not after the start")
    await axe(page, "login limits, errors shown")

    card = page.locator('[data-subject="role-operator"]')
    await card.locator("textarea[name=ranges]").fill("127.0.0.0/8\n2001:db8::/32")
    await card.locator('input[name="w-0-overnight"]').check()
    await card.locator('input[name="timezone"]').fill("Europe/Lisbon")
    await card.locator("button[type=submit]").click()
    await expect(page.locator('[data-testid="flash"]')).to_have_text("Login limits saved.")
    await expect(page.locator('[data-subject="role-operator"] [data-testid="limits-summary"]')).to_have_text(
        "2 networks · 1 time window (Europe/Lisbon)")
    await axe(page, "login limits, saved")
    assert csp_errors == []
