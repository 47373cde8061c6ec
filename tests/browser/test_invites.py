"""In Chromium: an administrator invites a colleague, the e-mail arrives at a real SMTP server, the
colleague opens the link, sets a password and lands in the console; the account review page. Every
page passes axe-core."""

from __future__ import annotations

import asyncio
import re

from playwright.async_api import expect

from confide.core.runtime import Runtime
from confide.worker.jobs import JobRunner
from tests.browser.conftest import People
from tests.browser.helpers import axe, log_in, t
from tests.conftest import Live, World
from tests.mailbox import Mailbox

INVITEE = "nora.new@shop.example"
LINK = re.compile(r"(http://127\.0\.0\.1:\d+/invite/[A-Za-z0-9_-]+)")


async def test_invite_mail_link_password_console(rt: Runtime, world: World, live: Live, people: People) -> None:
    async with Mailbox() as box:
        rt.settings.smtp_host, rt.settings.smtp_port, rt.settings.smtp_security = "127.0.0.1", box.port, "none"
        runner = asyncio.create_task(JobRunner(rt, node_id="browser").run())
        try:
            admin = await log_in(await people.new(), live, world.admin_email, "/app/settings/operators")
            await axe(admin, "settings, operators with the invite form")
            form = admin.locator(t("invite-form"))
            # A bad address first: the form comes back with the reason and what was typed.
            await form.locator('[name="email"]').fill("not an address")
            await form.locator('[name="name"]').fill("Nora New")
            await form.locator(t("invite-submit")).click()
            await expect(admin.locator(t("invite-errors"))).to_be_visible()
            await expect(admin.locator('#inv-name')).to_have_value("Nora New")
            await axe(admin, "invitations, form with errors")
            await admin.fill("#inv-email", INVITEE)
            await admin.locator(f'{t("invite-form")} [name="department_ids"]').first.check()
            await admin.locator(t("invite-submit")).click()
            await expect(admin).to_have_url(f"{live.base}/app/settings/invites?done=sent")
            await expect(admin.locator(t("flash"))).to_have_text("Invitation sent.")
            await expect(admin.locator(f'{t("invite-row")}[data-state="pending"]')).to_have_count(1)
            await axe(admin, "invitations list")

            (got,) = await box.wait_for(1)  # the runner was woken by the commit
            assert got.rcpt_tos == [INVITEE]
            match = LINK.search(got.part("plain"))
            assert match is not None, got.part("plain")
            link = match.group(1)

            nora = await (await people.new()).new_page()
            await nora.goto(link)
            await expect(nora.locator("h1")).to_have_text("Create your account")
            await expect(nora.locator("#name")).to_have_value("Nora New")
            await axe(nora, "invitation page")
            await nora.fill("#password", "short")
            await nora.fill("#password_confirm", "short")
            await nora.locator("#password").evaluate("(el) => el.removeAttribute('minlength')")
            await nora.locator("#password_confirm").evaluate("(el) => el.removeAttribute('minlength')")
            await nora.click(t("invite-accept"))
            await expect(nora.locator(t("invite-accept-errors"))).to_contain_text("at least 12 characters")
            await axe(nora, "invitation page with errors")
            await nora.fill("#name", "Nora N.")
            await nora.fill("#password", "a long new password 42")
            await nora.fill("#password_confirm", "a long new password 42")
            await nora.click(t("invite-accept"))
            await expect(nora).to_have_url(f"{live.base}/app")
            await expect(nora.locator(t("connection"))).to_have_attribute("data-state", "connected")
            await expect(nora.locator(".account-label")).to_have_text("Nora N.")

            used = await (await people.new()).new_page()
            await used.goto(link)
            await expect(used.locator(t("invite-refused"))).to_contain_text("already used")
            await axe(used, "invitation already used")

            await admin.reload()
            await expect(admin.locator(f'{t("invite-row")}[data-state="used"]')).to_have_count(1)

            await admin.goto(f"{live.base}/app/settings/account-review")
            await expect(admin.locator(t("account-row"))).to_have_count(3)
            await axe(admin, "account review")
            await admin.click(t("review-sign-off"))
            await expect(admin.locator(t("flash"))).to_have_text("Review signed off.")
            await expect(admin.locator(t("review-row"))).to_have_count(1)
            await expect(admin.locator(t("review-state"))).to_have_attribute("data-due", "0")
            await axe(admin, "account review, signed off")
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
