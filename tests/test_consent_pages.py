"""The back office's Consent view and Settings → Privacy purposes (ADR 0018)."""

from __future__ import annotations

from typing import Any

import httpx

from confide.consent import admin as consent_admin
from confide.consent import notices as consent_notices
from confide.consent.schemas import RecordFilters
from confide.core.runtime import Runtime
from tests.conftest import World
from tests.helpers_api import SELF, actor, counts, logged_in, other_workspace, set_status, start_chat


async def test_the_consent_view_lists_rows_and_shows_the_notice(client: httpx.AsyncClient, rt: Runtime,
                                                                 world: World, app: Any) -> None:
    await set_status(rt, world.operator_id)
    chat = await start_chat(client, world, consents={"marketing": True})
    async with logged_in(app, world.admin_email) as admin:
        page = await admin.get("/app/consent?state=granted&purpose=marketing&source=widget")
        assert page.status_code == 200, page.text
        assert page.text.count('data-testid="consent-row"') == 1
        assert chat["visitor_id"] in page.text
        assert (await admin.get("/app/consent?state=withdrawn")).text.count('data-testid="consent-row"') == 0
        assert (await admin.get("/app/consent?date_from=nonsense")).status_code == 422
        async with rt.db.unit_of_work(readonly=True) as uow:
            rows, _ = await consent_admin.search_records(uow, await actor(rt, world.admin_id), RecordFilters())
        detail = await admin.get(f"/app/consent/records/{rows[0].id}")
        assert detail.status_code == 200
        assert "News by e-mail" in detail.text
        assert str(rows[0].notice_hash) in detail.text
    async with logged_in(app, world.operator_email) as op:  # an operator holds neither permission
        assert (await op.get("/app/consent")).status_code == 403
        assert (await op.get(f"/app/consent/records/{rows[0].id}")).status_code == 403
    other = await other_workspace(rt)
    async with logged_in(app, other.admin_email) as foreign:
        assert (await foreign.get(f"/app/consent/records/{rows[0].id}")).status_code == 404


async def test_settings_create_purpose_and_publish_notices(rt: Runtime, world: World, app: Any) -> None:
    async with logged_in(app, world.admin_email) as admin:
        page = await admin.get("/app/settings/privacy")
        assert page.status_code == 200
        assert 'data-key="marketing_email"' in page.text
        response = await admin.post("/app/settings/privacy", headers=SELF, data={
            "key": "surveys", "name": "Surveys", "lawful_basis": "consent", "notice": "Ask me about my visit"})
        assert response.status_code == 303, response.text
        async with rt.db.unit_of_work(readonly=True) as uow:
            purpose = await consent_notices.get_purpose(uow, world.workspace_id, "surveys")
        assert purpose is not None
        before = await counts(rt, "consent_notices")
        for data in ({"text": ""}, {"text": "x" * 4001}, {"text": "ok", "language": "<script>"}):
            bad = await admin.post(f"/app/settings/privacy/{purpose.id}/notices", headers=SELF, data=data)
            assert bad.status_code == 422, data
        assert await counts(rt, "consent_notices") == before
        ok = await admin.post(f"/app/settings/privacy/{purpose.id}/notices", headers=SELF,
                              data={"text": "Ask me, by e-mail, about my visit", "material": "on"})
        assert ok.status_code == 303
        dup = await admin.post("/app/settings/privacy", headers=SELF, data={
            "key": "surveys", "name": "Again", "notice": "x"})
        assert dup.status_code == 409
    async with rt.db.unit_of_work(readonly=True) as uow:
        purpose = await consent_notices.get_purpose(uow, world.workspace_id, "surveys")
        assert purpose is not None
        assert (purpose.latest_version, purpose.material_version) == (2, 2)
        assert [n.version for n in await consent_notices.notices_of(uow, purpose)] == [2, 1]
    other = await other_workspace(rt)
    async with logged_in(app, other.admin_email) as foreign:
        response = await foreign.post(f"/app/settings/privacy/{purpose.id}/notices", headers=SELF,
                                      data={"text": "hijack"})
        assert response.status_code == 404
    async with logged_in(app, world.operator_email) as op:
        assert (await op.get("/app/settings/privacy")).status_code == 403
        response = await op.post(f"/app/settings/privacy/{purpose.id}/notices", headers=SELF, data={"text": "x"})
        assert response.status_code == 403
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert [n.version for n in await consent_notices.notices_of(uow, purpose)] == [2, 1]  # nothing more written
