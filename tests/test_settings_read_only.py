"""Settings read-only for those who may read but not change them (the Auditor): Sites, Departments
and Canned replies show what is set with no form or submit for it; an administrator's pages have
them; and the refused POST still changes nothing."""

from __future__ import annotations

import re

import httpx

from confide.core.runtime import Runtime
from confide.workspaces import service as workspaces
from confide.workspaces.schemas import CannedReplyIn
from tests import factories
from tests.conftest import World
from tests.helpers_api import SELF, actor, count, login

AUDITOR = "aud@shop.example"
PAGES = {
    "/app/settings": ("/app/settings/sites",),
    "/app/settings/departments": ("/app/settings/departments",),
    "/app/settings/canned": ("/app/settings/canned",),
}


def _settings_forms(html: str, prefixes: tuple[str, ...]) -> list[str]:
    """The forms of the page that post to one of these settings paths."""
    actions = re.findall(r'<form[^>]*action="([^"]+)"', html)
    return [a for a in actions if a.startswith(prefixes)]


async def _world_with_content(rt: Runtime, world: World) -> None:
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        await workspaces.create_canned_reply(uow, admin, CannedReplyIn(shortcut="hi", title="Hello", text="Hi there"))
        await factories.operator(rt, uow, workspace_id=world.workspace_id, email=AUDITOR, name="Audrey",
                                 role="auditor")


async def test_an_auditor_sees_settings_read_only(rt: Runtime, world: World, client: httpx.AsyncClient) -> None:
    await _world_with_content(rt, world)
    assert (await login(client, AUDITOR)).status_code == 200
    for path, prefixes in PAGES.items():
        page = await client.get(path)
        assert page.status_code == 200, path
        assert _settings_forms(page.text, prefixes) == [], path
        assert 'type="submit"' not in page.text.split('<nav class="tabs"', 1)[1], path
        assert 'data-testid="read-only"' in page.text, path
    sites = await client.get("/app/settings")
    assert 'data-testid="site-view"' in sites.text
    assert "https://shop.example" in sites.text  # what is set is shown
    depts = await client.get("/app/settings/departments")
    assert "Support" in depts.text
    assert "Round robin" in depts.text
    canned = await client.get("/app/settings/canned")
    assert "Hello" in canned.text
    assert 'data-testid="canned-delete"' not in canned.text
    # The POST is refused as before, and changes nothing.
    before = await count(rt, "canned_replies")
    refused = await client.post("/app/settings/canned", headers=SELF,
                                data={"shortcut": "x", "title": "X", "text": "x"})
    assert refused.status_code == 403
    assert await count(rt, "canned_replies") == before


async def test_an_administrator_has_the_forms(rt: Runtime, world: World, client: httpx.AsyncClient) -> None:
    await _world_with_content(rt, world)
    assert (await login(client, world.admin_email)).status_code == 200
    expected = {
        "/app/settings": {"/app/settings/sites", f"/app/settings/sites/{world.site_id}"},
        "/app/settings/departments": {"/app/settings/departments", f"/app/settings/departments/{world.department_id}"},
    }
    for path, prefixes in PAGES.items():
        page = await client.get(path)
        assert page.status_code == 200, path
        forms = set(_settings_forms(page.text, prefixes))
        assert forms >= expected.get(path, {"/app/settings/canned"}), (path, forms)
        assert 'data-testid="read-only"' not in page.text
    canned = await client.get("/app/settings/canned")
    assert 'data-testid="canned-delete"' in canned.text
