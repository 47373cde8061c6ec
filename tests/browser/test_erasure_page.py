"""The Erase flow in Chromium: the preview with its counts, the typed confirmation, then the
certificate (with its JSON download); every state passes axe-core."""

from __future__ import annotations

import httpx
from playwright.async_api import expect

from confide.core.runtime import Runtime
from tests.browser.conftest import People
from tests.browser.helpers import axe, log_in, t
from tests.conftest import Live, World
from tests.helpers_api import count, set_status


async def test_preview_confirm_and_certificate(rt: Runtime, world: World, live: Live, people: People) -> None:
    await set_status(rt, world.operator_id)
    async with httpx.AsyncClient(base_url=live.base, trust_env=False) as http:
        started = await http.post(f"/api/v1/widget/{world.site_key}/conversations", headers={"Origin": world.origin},
                                  json={"fields": {"name": "Erin Erasable", "email": "erin@example.com"}})
    assert started.status_code == 201, started.text
    vid = started.json()["visitor_id"]
    page = await log_in(await people.new(), live, world.admin_email, f"/app/subjects/erase?visitor={vid}")
    await expect(page.locator(t("erase-preview"))).to_be_visible()
    await expect(page.locator(t("erase-count")).filter(has_text="visitors")).to_contain_text("1")
    await axe(page, "Erase a person, preview")
    await page.fill(t("erase-confirm"), "erase")  # not the word: refused, nothing erased
    await page.click(t("erase-submit"))
    assert await count(rt, "visitors") == 1
    await page.goto(f"{live.base}/app/subjects/erase?visitor={vid}")
    await page.get_by_label("Request reference (optional)").fill("REQ-42")
    await page.fill(t("erase-confirm"), "ERASE")
    await page.click(t("erase-submit"))
    await expect(page.locator(t("certificate"))).to_contain_text("REQ-42")
    await expect(page.locator(t("certificate-rows"))).to_contain_text("conversations")
    href = await page.locator(t("certificate-download")).get_attribute("href")
    assert href is not None
    assert href.endswith("?download=1")
    await axe(page, "Erasure certificate")
    assert await count(rt, "visitors") == 0
