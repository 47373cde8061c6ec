"""Visitor Activity in Chromium (ADR 0019): the widget reports pages only once the visitor opened
the chat and started it (nothing before), SPA navigation is a page view, and the trail shows in
the operator's visitor panel."""

from __future__ import annotations

from playwright.async_api import Request, expect

from confide.core.runtime import Runtime
from confide.users import sessions as user_sessions
from confide.workspaces import service as workspaces
from confide.workspaces.schemas import SitePatch
from tests.browser.conftest import People
from tests.browser.helpers import accept_offer, axe, fill_prechat, log_in, open_console, serve_demo, t, w
from tests.conftest import Live, World


async def test_pages_reported_only_after_the_chat_opens_and_shown_to_the_operator(
    rt: Runtime, world: World, live: Live, people: People
) -> None:
    await serve_demo(rt, world, live)
    async with rt.db.unit_of_work() as uow:
        admin = await user_sessions.actor_for(uow, world.admin_id)
        await workspaces.update_site(uow, admin, world.site_id, SitePatch(purposes=[
            {"key": "marketing", "label": "News by e-mail", "version": "v1"},
            {"key": "activity_tracking", "label": "Remember the pages I visit while I chat", "version": "v1"},
        ]))
    console = await open_console(await people.new(), live, rt, world.operator_email, world.operator_id)

    page = await (await people.new()).new_page()
    reports: list[Request] = []
    loaded: list[str] = []
    page.on("request", lambda r: reports.append(r) if r.url.endswith("/activity") else loaded.append(r.url))
    await page.goto(f"{live.base}/demo")
    await page.wait_for_load_state("networkidle")
    await page.evaluate("() => history.pushState({}, '', '/demo?before=1')")  # navigation before any click
    await page.wait_for_timeout(200)
    assert reports == []
    assert not [u for u in loaded if "/widget/app.js" in u or "/widget/activity.js" in u]

    await page.click(w("launcher"))  # opened, not started: still no report
    await fill_prechat(page, name="Ana Lima", email="ana@example.com")
    await page.locator(w("prechat")).locator('[name="consent:activity_tracking"]').check()
    await page.wait_for_timeout(200)
    assert reports == []

    async with page.expect_request(lambda r: r.url.endswith("/activity")) as first:
        await page.click(w("start"))
    body = (await first.value).post_data or ""
    assert '"token"' in body
    assert "/demo?before=1" in body
    assert "token=" not in (await first.value).url
    await expect(page.locator(w("messages"))).to_be_visible()
    conversation_id = await page.evaluate(
        f"() => JSON.parse(sessionStorage.getItem('confide:{world.site_key}')).conversation_id")
    async with page.expect_response(lambda r: r.url.endswith("/activity")) as second:  # SPA navigation
        await page.evaluate("() => { history.pushState({}, '', '/demo/checkout'); document.title = 'Checkout'; }")
    assert (await (await second.value).json())["stored"] is True

    await accept_offer(console, conversation_id)
    await console.locator(t("trail-refresh")).click()
    trail = console.locator(t("visitor-trail")).locator("li")
    await expect(trail).to_have_count(2)
    await expect(trail.first).to_contain_text("Checkout")
    await expect(trail.nth(1)).to_contain_text("Demo shop")
    await axe(console, "console, visitor panel with the pages seen")

    # The back office: the list, a filter by page words, the visitor's trail, the site's settings.
    office = await log_in(await people.new(), live, world.admin_email, "/app/activity")
    await expect(office.locator(t("activity-row"))).to_have_count(2)
    await axe(office, "Visitor Activity")
    await office.fill("#f-url", "checkout")
    await office.click(t("filter-submit"))
    await office.wait_for_load_state()
    assert "checkout" not in office.url  # the page words are sealed out of the URL
    await expect(office.locator(t("activity-row"))).to_have_count(1)
    await office.locator(t("trail-link")).click()
    await expect(office.locator(t("trail-row"))).to_have_count(2)
    await axe(office, "a visitor's trail")
    await office.goto(f"{live.base}/app/settings/sites/{world.site_id}/activity")
    await office.check('input[name="basis"][value="legitimate_interest"]')
    await office.click(t("activity-save"))
    await expect(office.locator(t("form-errors"))).to_contain_text("justification")
    await axe(office, "Visitor activity settings, refused")
