"""A data-subject request from the widget's Privacy view, in Chromium (ADR 0029): the visitor asks for
erasure, receives the code by e-mail (the real SMTP server), enters it, and the request appears,
verified, in the back office's Requests view with its timeline."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from confide.core.runtime import Runtime
from confide.worker.jobs import JobRunner
from tests.browser.conftest import People
from tests.browser.helpers import axe, log_in, open_widget, serve_demo, set_status, start_chat, t, w
from tests.conftest import Live, World
from tests.mailbox import Mailbox

pytestmark = pytest.mark.browser
CODE = re.compile(r"enter this code: (\d{6})")


async def test_visitor_makes_a_request_from_the_privacy_view(rt: Runtime, world: World, live: Live,
                                                             people: People) -> None:
    await serve_demo(rt, world, live)
    await set_status(rt, world.operator_id, "online")
    page = await (await people.new()).new_page()
    await open_widget(page, live)
    await start_chat(page, name="Ana Lima", email="ana@example.com")

    await page.click(w("privacy-open"))
    await page.click(w("request-open"))
    await page.select_option(w("request-type"), "erasure")
    await page.fill(w("request-email"), "ana@example.com")
    await page.fill(w("request-details"), "<img src=x onerror=alert(1)> please erase my chats")
    await axe(page, "widget request form")
    async with Mailbox() as box:
        rt.settings.smtp_host, rt.settings.smtp_port, rt.settings.smtp_security = "127.0.0.1", box.port, "none"
        await page.click(w("request-send"))
        await expect(page.locator(w("request-sent"))).to_be_visible()
        await JobRunner(rt, node_id="t").drain()
        (mail,) = await box.wait_for(1)
    match = CODE.search(mail.part("plain"))
    assert match is not None
    assert mail.rcpt_tos == ["ana@example.com"]

    await page.fill(w("request-code"), "999999" if match.group(1) != "999999" else "111111")
    await page.click(w("request-verify"))
    await expect(page.locator(w("request-error"))).to_contain_text("This code is not right; 4 attempts left")
    await page.fill(w("request-code"), match.group(1))
    await page.click(w("request-verify"))
    await expect(page.locator(w("request-done"))).to_be_visible()
    await axe(page, "widget request confirmed")

    staff = await log_in(await people.new(), live, world.admin_email, "/app/requests")
    row = staff.locator(t("request-row"))
    await expect(row).to_have_count(1)
    await expect(row).to_have_attribute("data-state", "verifying")
    await expect(row).to_contain_text("ana@example.com")
    await axe(staff, "Requests list")
    await row.locator("a").click()
    await expect(staff.locator(t("request-title"))).to_have_text("Erasure (Art. 17)")
    await expect(staff.locator(t("request-details"))).to_have_text("<img src=x onerror=alert(1)> please erase my chats")
    timeline = staff.locator(f"{t('request-timeline')} li")
    await expect(timeline).to_have_count(4)  # received, code sent, wrong code, verified
    await axe(staff, "request detail")
    await staff.click(t("request-start"))
    await expect(staff.locator(t("request-state"))).to_have_text("In progress")
