"""Find a person in Chromium: search by phone (the number never reaches the URL), see the two
visits that share an e-mail address grouped as one person with the rows per store, download their
JSON export; axe-core finds no violation on the empty, the filled and the refused link page."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from playwright.async_api import expect

from confide.core.runtime import Runtime
from tests.browser.conftest import People
from tests.browser.helpers import axe, log_in, t
from tests.conftest import Live, World
from tests.helpers_api import leave_message, set_status, start_chat


async def test_find_a_person_and_download_their_export(rt: Runtime, world: World, live: Live, people: People,
                                                       tmp_path: Path) -> None:
    await set_status(rt, world.operator_id)
    async with httpx.AsyncClient(base_url=live.base) as http:
        chat = await start_chat(http, world, {"name": "Rosa Qzxbrowser", "email": "rosa.qzx@example.com",
                                              "phone": "+34 91 123 45 67"})
        await leave_message(http, world, "Please call me, Qzxbrowser",
                            {"name": "Rosa Qzxbrowser", "email": "rosa.qzx@example.com"})
        await start_chat(http, world, {"name": "Someone Else", "email": "else@example.com"})
    page = await log_in(await people.new(), live, world.admin_email, "/app/subjects")
    await expect(page.locator(t("subject-find"))).to_be_visible()
    await axe(page, "Find a person, empty")
    await page.select_option("#f-by", "phone")
    await page.fill("#f-value", "+34911234567")
    await page.locator(t("subject-find")).get_by_role("button", name="Find").click()
    person = page.locator(t("subject-person"))
    await expect(person).to_have_count(1)
    await expect(person).to_contain_text("rosa.qzx@example.com")
    await expect(person.locator('tr[data-store="visitors"]')).to_contain_text("2")
    await expect(person.locator('tr[data-store="offline_requests"]')).to_contain_text("1")
    assert "3491" not in page.url
    assert "else@example.com" not in await page.content()
    await axe(page, "Find a person, one person found")
    async with page.expect_download() as info:
        await person.get_by_role("button", name="Download the export").click()
    download = await info.value
    saved = tmp_path / "export.json"
    await download.save_as(saved)
    package = json.loads(saved.read_text())
    assert chat["visitor_id"] in package["person"]["visitor_ids"]
    assert "Please call me, Qzxbrowser" in saved.read_text()
    assert "else@example.com" not in saved.read_text()
    refused = await (await people.new()).new_page()
    await refused.goto(f"{live.base}/subject-export/not-a-real-link-token-at-all")
    await expect(refused.locator(t("export-refused"))).to_be_visible()
    await axe(refused, "an export link that is not valid")
