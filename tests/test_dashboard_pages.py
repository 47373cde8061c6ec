"""The server-rendered pages: log-in, redirects, settings forms (admins only), filtered lists."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx

from confide.core import clock
from confide.core.runtime import Runtime
from confide.users import sessions as user_sessions
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
        admin = await user_sessions.actor_for(uow, world.admin_id)
        names = {d.name: d for d in await workspaces.list_departments(uow, admin)}
    assert names["Billing"].strategy == "least_busy"
    assert names["Billing"].offer_timeout_s == 45
    assert "Too fast" not in names


async def _search(client: httpx.AsyncClient, path: str, data: dict[str, str]) -> httpx.Response:
    """Submit a filter form as the page does (POST, then the redirect to the list)."""
    posted = await client.post(path, data=data, headers=SAME_ORIGIN)
    assert posted.status_code == 303, posted.text
    return await client.get(posted.headers["location"])


async def test_filtered_lists_render_and_reject_bad_filters(client: httpx.AsyncClient, world: World) -> None:
    await _log_in(client, world.operator_email)
    assert (await _search(client, "/app/chats", {"text": "refund", "date_from": "2026-01-01"})).status_code == 200
    bad = await client.get("/app/chats", params={"rating": "9"})
    assert bad.status_code == 422
    one_letter = await _search(client, "/app/chats", {"text": "a"})
    assert one_letter.status_code == 422
    assert (await client.get("/app/offline", params={"state": "all"})).status_code == 200
    assert (await client.get("/app/offline", params={"state": "bogus"})).status_code == 422
    assert (await client.get("/app/chats/not-a-real-id")).status_code == 404


async def test_personal_filters_never_travel_in_urls(client: httpx.AsyncClient, world: World) -> None:
    """Visitor names, e-mails and words are POSTed and kept server-side; URLs carry an opaque id."""
    await _log_in(client, world.operator_email)
    posted = await client.post("/app/chats", data={"text": "zebrafish refund", "visitor": "ana@example.com",
                                                   "rating": "5"}, headers=SAME_ORIGIN)
    assert posted.status_code == 303
    location = posted.headers["location"]
    assert "zebrafish" not in location
    assert "ana" not in location
    assert "rating=5" in location
    assert "q=" in location
    page = await client.get(location)
    assert page.status_code == 200
    assert 'value="zebrafish refund"' in page.text  # the form is refilled from the server-side store
    for href in re.findall(r'href="([^"]+)"', page.text):
        assert "zebrafish" not in href
        assert "example.com" not in href or href.startswith("mailto:")
    # An old link with the words in its query is rewritten the same way.
    old = await client.get("/app/offline", params={"visitor": "ana@example.com", "state": "all"})
    assert old.status_code == 303
    assert "ana" not in old.headers["location"]
    assert "state=all" in old.headers["location"]
    # The id is the searching operator's only: another operator gets "expired", not the words.
    other = httpx.AsyncClient(transport=client._transport, base_url="http://testserver")
    async with other:
        await _log_in(other, world.admin_email)
        theirs = await other.get(location)
    assert theirs.status_code == 200
    assert "zebrafish" not in theirs.text
    assert "This search has expired" in theirs.text
    # The sealed value needs no memory of the node that made it (any node opens it) and expires.
    again = await client.get(location)
    assert 'value="zebrafish refund"' in again.text
    for _ in range(15):  # 5 hours of a console in use (the session's idle timeout is 30 minutes)
        clock.advance(timedelta(minutes=20))
        assert (await client.get("/app/chats")).status_code == 200
    stale = await client.get(location)
    assert "This search has expired" in stale.text
    assert "zebrafish" not in stale.text
