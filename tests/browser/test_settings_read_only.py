"""An auditor's Settings in Chromium: Sites, Departments and Canned replies read-only (no form, no
submit button), with no axe-core violation; an administrator's Sites page has its forms."""

from __future__ import annotations

from playwright.async_api import expect

from confide.core.runtime import Runtime
from tests import factories
from tests.browser.conftest import People
from tests.browser.helpers import add_canned_reply, axe, log_in
from tests.conftest import Live, World


async def test_an_auditor_sees_settings_without_forms(rt: Runtime, world: World, live: Live, people: People) -> None:
    await add_canned_reply(rt, world, shortcut="hi", title="Hello", text="Hi there")
    async with rt.db.unit_of_work() as uow:
        await factories.operator(rt, uow, workspace_id=world.workspace_id, email="aud@shop.example", name="Audrey",
                                 role="auditor")
    page = await log_in(await people.new(), live, "aud@shop.example", "/app/settings")
    for path in ("/app/settings", "/app/settings/departments", "/app/settings/canned"):
        await page.goto(f"{live.base}{path}")
        await expect(page.locator('[data-testid="read-only"]')).to_be_visible()
        await expect(page.locator('main form[action^="/app/settings/"]')).to_have_count(0)
        await expect(page.locator('main button[type="submit"]')).to_have_count(0)
        await axe(page, f"read-only {path}")
    admin = await log_in(await people.new(), live, world.admin_email, "/app/settings")
    await expect(admin.locator('main form[action^="/app/settings/sites"]')).to_have_count(2)
