"""Settings -> Roles in Chromium: listed, created, edited with an error shown, deleted; no axe-core
violation in any of these states; an auditor sees the roles read-only."""

from __future__ import annotations

from playwright.async_api import expect

from confide.core.runtime import Runtime
from tests import factories
from tests.browser.conftest import People
from tests.browser.helpers import axe, log_in, t
from tests.conftest import Live, World


async def test_roles_page_in_every_state(rt: Runtime, world: World, live: Live, people: People) -> None:
    page = await log_in(await people.new(), live, world.admin_email, "/app/settings/roles")
    await expect(page.locator(t("role-row"))).to_have_count(5)
    await axe(page, "roles, built-in only")

    create = page.locator(t("role-create"))
    await create.locator('[name="name"]').fill("Night shift")
    await create.locator('[name="scope"]').select_option("departments")
    await create.locator('input[value="chats.read"]').check()
    await create.locator('input[value="chats.participate"]').check()
    await create.get_by_role("button", name="Add role").click()
    await expect(page.locator(t("flash"))).to_have_text("Role created.")
    await expect(page.locator(t("role-row"))).to_have_count(6)
    await axe(page, "roles, with a custom role")

    card = page.locator(t("role-card"))
    await card.locator("summary").click()
    name = card.locator('[name="name"]')
    await name.evaluate("(el) => { el.removeAttribute('required'); el.value = ''; }")
    await card.get_by_role("button", name="Save").click()
    await expect(page.locator(t("form-errors"))).to_be_visible()
    await axe(page, "roles, edit form with errors")

    # The operator form offers the new role.
    await page.goto(f"{live.base}/app/settings/operators")
    await expect(page.locator("#no-role option", has_text="Night shift")).to_have_count(1)

    await page.goto(f"{live.base}/app/settings/roles")
    delete = page.locator(t("role-delete"))
    await delete.click()  # the first click asks again (page.js), the second one sends
    await expect(delete).to_have_text("Confirm delete")
    await delete.click()
    await expect(page.locator(t("flash"))).to_have_text("Role deleted.")
    await expect(page.locator(t("role-row"))).to_have_count(5)

    async with rt.db.unit_of_work() as uow:
        await factories.operator(rt, uow, workspace_id=world.workspace_id, email="audit@shop.example",
                                 role="auditor")
    auditor = await log_in(await people.new(), live, "audit@shop.example", "/app/settings/roles")
    await expect(auditor.locator(t("role-row"))).to_have_count(5)
    await expect(auditor.locator(t("role-create"))).to_have_count(0)  # read-only
    await axe(auditor, "roles, as an auditor")
