"""The Audit Report in Chromium: filtered through its form (no id in the address bar), the chain
verified with its button, and no axe-core violation in any of those states."""

from __future__ import annotations

import re

from playwright.async_api import expect
from sqlalchemy import text

from confide.audit import service as audit
from confide.core.runtime import Runtime
from tests.browser.conftest import People
from tests.browser.helpers import axe, log_in, t
from tests.conftest import Live, World


async def test_audit_report_filters_verifies_and_has_no_violation(
    rt: Runtime, world: World, live: Live, people: People
) -> None:
    async with rt.db.unit_of_work() as uow:
        for n in range(3):
            await audit.record(
                rt,
                uow,
                "chats.viewed",
                actor_type="operator",
                actor_id=world.operator_id,
                workspace_id=world.workspace_id,
                target_type="conversation",
                target_id=f"conv{n}",
                detail={"via": "api"},
            )
        await audit.record(
            rt,
            uow,
            "access.denied",
            actor_type="operator",
            actor_id=world.operator_id,
            workspace_id=world.workspace_id,
            outcome="denied",
            target_type="route",
            target_id="settings_sites",
            detail={"method": "GET"},
        )
    page = await log_in(await people.new(), live, world.admin_email, "/app/audit")
    rows = page.locator(t("audit-row") + ':not([data-action^="auth."])')  # the log-in path's rows aside
    await expect(rows).to_have_count(4)
    await expect(page.get_by_role("link", name="Audit")).to_have_attribute("aria-current", "page")
    await axe(page, "audit report")

    await page.fill("#f-actor", world.operator_id)
    await page.select_option("#f-outcome", "denied")
    await page.click(t("filter-submit"))
    await expect(rows).to_have_count(1)
    assert world.operator_id not in page.url
    await expect(rows.first).to_contain_text("access.denied")
    await expect(rows.first).to_contain_text("Mia")  # the operator's name, looked up when shown
    await axe(page, "audit report, filtered")

    await page.click(t("verify"))
    status = page.locator(t("chain-status"))
    await expect(status).to_contain_text(re.compile(r"Verified: audit log intact: \d+ rows\."))
    async with rt.db.unit_of_work(readonly=True) as uow:  # every row but the audit.verified just added
        total = int(await uow.session.scalar(text("SELECT COUNT(*) FROM audit_events")) or 0)
    await expect(status).to_contain_text(f"Verified: audit log intact: {total - 1} rows.")
    await expect(rows).to_have_count(1)  # the filters are kept
    await axe(page, "audit report, chain verified")

    await page.goto(f"{live.base}/app/audit?date_from=2026-13-40")
    await expect(page.locator(t("form-errors"))).to_be_visible()
    await axe(page, "audit report, bad filter")
