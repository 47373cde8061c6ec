"""The server-rendered pages: log-in, redirects, settings forms (admins only), filtered lists."""

from __future__ import annotations

import httpx

from confide.core.runtime import Runtime
from confide.users import service as users
from confide.workspaces import service as workspaces
from tests.conftest import World
from tests.factories import PASSWORD

SAME_ORIGIN = {"Origin": "http://testserver"}


async def _log_in(client: httpx.AsyncClient, email: str) -> None:
    response = await client.post("/login", data={"email": email, "password": PASSWORD}, headers=SAME_ORIGIN)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/app"


async def test_pages_need_a_session_and_login_redirects_only_to_local_paths(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.get("/app/chats")
    assert response.status_code in (302, 303, 307)
    assert response.headers["location"].startswith("/login?next=")
    wrong = await client.post("/login", data={"email": world.operator_email, "password": "not it at all"},
                              headers=SAME_ORIGIN)
    assert wrong.status_code == 401
    assert "wrong e-mail or password" in wrong.text.lower()
    evil = await client.post("/login?next=//evil.example/x", data={"email": world.operator_email,
                                                                   "password": PASSWORD}, headers=SAME_ORIGIN)
    assert evil.status_code == 303
    assert evil.headers["location"] == "/app"


async def test_settings_are_for_administrators(client: httpx.AsyncClient, world: World) -> None:
    await _log_in(client, world.operator_email)
    page = await client.get("/app/settings")
    assert page.status_code == 403
    refused = await client.post("/app/settings/departments", headers=SAME_ORIGIN,
                                data={"site_id": world.site_id, "name": "Sneaky", "strategy": "manual",
                                      "offer_timeout_s": "30"})
    assert refused.status_code == 403


async def test_admin_creates_a_department_and_bad_input_is_shown_again(
    client: httpx.AsyncClient, rt: Runtime, world: World
) -> None:
    await _log_in(client, world.admin_email)
    page = await client.get("/app/settings")
    assert page.status_code == 200
    assert world.site_key in page.text  # the embed snippet
    created = await client.post("/app/settings/departments", headers=SAME_ORIGIN,
                                data={"site_id": world.site_id, "name": "Billing", "strategy": "least_busy",
                                      "offer_timeout_s": "45"})
    assert created.status_code == 303
    bad = await client.post("/app/settings/departments", headers=SAME_ORIGIN,
                            data={"site_id": world.site_id, "name": "Too fast", "strategy": "least_busy",
                                  "offer_timeout_s": "1"})
    assert bad.status_code == 422
    assert "Too fast" in bad.text  # what was typed is kept
    async with rt.db.unit_of_work(readonly=True) as uow:
        admin = await users.actor_for(uow, world.admin_id)
        names = {d.name: d for d in await workspaces.list_departments(uow, admin)}
    assert names["Billing"].strategy == "least_busy"
    assert names["Billing"].offer_timeout_s == 45
    assert "Too fast" not in names


async def test_filtered_lists_render_and_reject_bad_filters(client: httpx.AsyncClient, world: World) -> None:
    await _log_in(client, world.operator_email)
    assert (await client.get("/app/chats", params={"text": "refund", "date_from": "2026-01-01"})).status_code == 200
    bad = await client.get("/app/chats", params={"rating": "9"})
    assert bad.status_code == 422
    one_letter = await client.get("/app/chats", params={"text": "a"})
    assert one_letter.status_code == 422
    assert (await client.get("/app/offline", params={"state": "all"})).status_code == 200
    assert (await client.get("/app/offline", params={"state": "bogus"})).status_code == 422
    assert (await client.get("/app/chats/not-a-real-id")).status_code == 404
