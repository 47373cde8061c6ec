"""The Retention settings page and the record of processing page (ADR 0030): hostile input answers
422 with a sentence and saves nothing; holds placed and lifted from the page; downloads."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
import pytest

from confide.core.runtime import Runtime
from tests.conftest import World
from tests.helpers_api import SELF, count, logged_in, set_status, start_chat
from tests.pdf_checks import pdf_text


async def _policies(rt: Runtime) -> int:
    return await count(rt, "retention_policies")


@pytest.mark.parametrize(
    ("days", "message"),
    [
        ("-5", "whole number of days"),
        ("99999999999", "whole number of days"),
        ("ten", "whole number of days"),
        ("36501", "36500"),
        ("1e3", "whole number of days"),
        ("<script>", "whole number of days"),
    ],
)
async def test_hostile_periods_are_refused_with_a_sentence(
    app: Any, rt: Runtime, world: World, days: str, message: str
) -> None:
    async with logged_in(app, world.admin_email) as http:
        response = await http.post("/app/retention/policy", headers=SELF,
                                   data={"scope": "workspace", "category": "chats", "days": days})
    assert response.status_code == 422
    assert message in response.text
    assert "<script>" not in response.text
    assert await _policies(rt) == 0


async def test_unknown_category_site_and_audit_are_refused(app: Any, rt: Runtime, world: World) -> None:
    async with logged_in(app, world.admin_email) as http:
        bad_category = await http.post("/app/retention/policy", headers=SELF,
                                       data={"scope": "workspace", "category": "everything", "days": "5"})
        foreign_site = await http.post("/app/retention/policy", headers=SELF,
                                       data={"scope": "no-such-site", "category": "chats", "days": "5"})
        audit = await http.post("/app/retention/policy", headers=SELF,
                                data={"scope": "workspace", "category": "audit", "days": "5"})
    assert bad_category.status_code == 422
    assert "Category" in bad_category.text or "category" in bad_category.text
    assert foreign_site.status_code == 404
    assert "Site not found" in foreign_site.text
    assert audit.status_code == 422
    assert "CONFIDE_AUDIT_RETENTION_DAYS" in audit.text
    assert await _policies(rt) == 0


async def test_set_a_period_and_see_it(app: Any, rt: Runtime, world: World) -> None:
    async with logged_in(app, world.admin_email) as http:
        saved = await http.post("/app/retention/policy", headers=SELF,
                                data={"scope": world.site_id, "category": "activity", "days": "30"})
        assert saved.status_code == 303
        forever = await http.post("/app/retention/policy", headers=SELF,
                                  data={"scope": "workspace", "category": "prospects", "days": "forever"})
        assert forever.status_code == 303
        page = await http.get("/app/retention?saved=policy")
    assert page.status_code == 200
    assert "Retention period saved." in page.text
    row = page.text.split('data-category="activity"')[1].split("</tr>")[0]
    assert "30 days" in row
    assert "90 days" in row  # the default, and the workspace (no override)
    assert "kept forever" in page.text.split('data-category="prospects"')[1].split("</tr>")[0]
    assert await _policies(rt) == 2


async def test_holds_from_the_page(app: Any, rt: Runtime, world: World, client: httpx.AsyncClient) -> None:
    await set_status(rt, world.operator_id)
    started = await start_chat(client, world)
    async with logged_in(app, world.admin_email) as http:
        short = await http.post("/app/retention/holds", headers=SELF,
                                data={"target_type": "visitor", "target_id": started["visitor_id"], "reason": " "})
        assert short.status_code == 422
        assert "reason" in short.text
        placed = await http.post("/app/retention/holds", headers=SELF,
                                 data={"target_type": "conversation", "target_id": started["conversation_id"],
                                       "reason": "case 2026-9"})
        assert placed.status_code == 303
        page = await http.get("/app/retention")
        assert "case 2026-9" in page.text
        hold_id = page.text.split('data-hold="')[1].split('"')[0]
        lifted = await http.post(f"/app/retention/holds/{hold_id}/lift", headers=SELF, data={"reason": "settled"})
        assert lifted.status_code == 303
        again = await http.post(f"/app/retention/holds/{hold_id}/lift", headers=SELF, data={"reason": "settled"})
        assert again.status_code == 422
        assert "lifted already" in again.text
        missing = await http.post("/app/retention/holds/no-such-hold/lift", headers=SELF, data={"reason": "x y z"})
        assert missing.status_code == 404
    assert await count(rt, "legal_holds") == 1


async def test_record_of_processing_page_and_downloads(app: Any, rt: Runtime, world: World) -> None:
    async with logged_in(app, world.admin_email) as http:
        page = await http.get("/app/privacy/ropa")
        md = await http.get("/app/privacy/ropa/download/md")
        csv_file = await http.get("/app/privacy/ropa/download/csv")
        pdf = await http.get("/app/privacy/ropa/download/pdf")
        other = await http.get("/app/privacy/ropa/download/exe")
    assert page.status_code == 200
    assert "Record of processing activities" in page.text
    assert "/app/privacy/ropa/download/md" in page.text
    assert md.status_code == 200
    assert md.headers["content-type"].startswith("text/markdown")
    assert "attachment" in md.headers["content-disposition"]
    assert md.text.startswith("# Record of processing activities - Shop Ltd")
    assert csv_file.status_code == 200
    rows = list(csv.reader(io.StringIO(csv_file.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["section", "table", "column"]
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert "Record of processing activities - Shop Ltd" in pdf_text(pdf.content)
    assert other.status_code == 404
