"""Operator login, the session cookie, logout, and the CSRF Origin check on cookie writes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from confide.core import clock
from confide.core.runtime import Runtime
from tests.conftest import World
from tests.helpers_api import SELF, count, logged_in, login

WRONG = {"detail": "wrong e-mail or password", "code": "unauthorized"}


def session_cookie(response: httpx.Response) -> str:
    [cookie] = [c for c in response.headers.get_list("set-cookie") if c.startswith("confide_session=")]
    return cookie


def token_of(response: httpx.Response) -> str:
    return session_cookie(response).split(";", 1)[0].split("=", 1)[1]


async def with_token(app: Any, method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
    """A request from a client that only has this session token (no cookie jar of its own)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        headers = {"Cookie": f"confide_session={token}", **kwargs.pop("headers", {})}
        return await http.request(method, path, headers=headers, **kwargs)


# ---------------------------------------------------------------- login
async def test_login_sets_a_strict_http_only_cookie(client: httpx.AsyncClient, rt: Runtime, world: World) -> None:
    response = await login(client, world.operator_email)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == world.operator_id
    assert body["email"] == world.operator_email
    assert body["role"] == "operator"
    assert body["department_ids"] == [world.department_id]
    assert "password" not in str(body)
    cookie = session_cookie(response)
    attributes = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in attributes
    assert "samesite=strict" in attributes
    assert "path=/" in attributes
    assert f"max-age={rt.settings.session_ttl_s}" in attributes
    assert "secure" not in attributes  # cookie_secure is off in tests (plain http)
    token = token_of(response)
    assert len(token) >= 40
    # The database keeps only a digest of the token.
    async with rt.db.unit_of_work(readonly=True) as uow:
        from sqlalchemy import text
        rows = (await uow.session.execute(text("select token_digest from operator_sessions"))).all()
    assert len(rows) == 1
    assert token not in rows[0][0]
    # The cookie authenticates.
    me = await client.get("/api/v1/auth/me")
    assert me.status_code == 200
    assert me.json()["id"] == world.operator_id


async def test_login_email_is_case_insensitive(client: httpx.AsyncClient, world: World) -> None:
    response = await login(client, "  MIA@Shop.Example ".strip())
    assert response.status_code == 200
    assert response.json()["id"] == world.operator_id


async def test_failed_login_says_nothing_about_which_part(client: httpx.AsyncClient, world: World) -> None:
    for email, password in (("mia@shop.example", "wrong password!"),  # wrong password
                            ("nobody@shop.example", "correct horse battery staple"),  # unknown e-mail
                            ("not an e-mail", "correct horse battery staple"),
                            ("MIA@shop.example", "Correct horse battery staple")):  # passwords are exact
        response = await login(client, email, password)
        assert response.status_code == 401, email
        assert response.json() == WRONG
        assert not response.headers.get_list("set-cookie")
        assert (await client.get("/api/v1/auth/me")).status_code == 401


async def test_malformed_login_is_422(client: httpx.AsyncClient, world: World) -> None:
    for body in ({"email": "mia@shop.example"}, {"email": "mia@shop.example", "password": ""},
                 {"email": "mia@shop.example", "password": "x", "remember": True}):
        assert (await client.post("/api/v1/auth/login", json=body)).status_code == 422


async def test_failures_reset_after_a_successful_login(client: httpx.AsyncClient, rt: Runtime,
                                                       world: World) -> None:
    free = rt.settings.login_free_failures
    for _ in range(free):
        assert (await login(client, world.operator_email, "wrong password!")).status_code == 401
    assert (await login(client, world.operator_email)).status_code == 200
    for _ in range(free):
        assert (await login(client, world.operator_email, "wrong password!")).status_code == 401
    assert (await login(client, world.operator_email)).status_code == 200


async def test_disabled_operator_cannot_log_in_and_loses_the_session(app: Any, client: httpx.AsyncClient,
                                                                     world: World) -> None:
    token = token_of(await login(client, world.operator_email))
    async with logged_in(app, world.admin_email) as admin:
        response = await admin.patch(f"/api/v1/operators/{world.operator_id}", json={"disabled": True},
                                     headers=SELF)
        assert response.status_code == 200
        assert response.json()["disabled"] is True
    assert (await with_token(app, "GET", "/api/v1/auth/me", token)).status_code == 401
    response = await login(client, world.operator_email)
    assert response.status_code == 401
    assert response.json() == WRONG
    # Enabled again: may log in (the old session stays revoked).
    async with logged_in(app, world.admin_email) as admin:
        response = await admin.patch(f"/api/v1/operators/{world.operator_id}", json={"disabled": False},
                                     headers=SELF)
        assert response.status_code == 200
    assert (await with_token(app, "GET", "/api/v1/auth/me", token)).status_code == 401
    assert (await login(client, world.operator_email)).status_code == 200


async def test_password_change_takes_effect(app: Any, client: httpx.AsyncClient, world: World) -> None:
    async with logged_in(app, world.admin_email) as admin:
        response = await admin.patch(f"/api/v1/operators/{world.operator_id}",
                                     json={"password": "a brand new passphrase"}, headers=SELF)
        assert response.status_code == 200
    assert (await login(client, world.operator_email)).status_code == 401
    assert (await login(client, world.operator_email, "a brand new passphrase")).status_code == 200


# ---------------------------------------------------------------- session
async def test_me(app: Any, client: httpx.AsyncClient, world: World) -> None:
    assert (await client.get("/api/v1/auth/me")).json() == {"detail": "not logged in", "code": "unauthorized"}
    assert (await with_token(app, "GET", "/api/v1/auth/me", "forged-token")).status_code == 401
    assert (await with_token(app, "GET", "/api/v1/auth/me", "x" * 500)).status_code == 401
    await login(client, world.admin_email)
    me = (await client.get("/api/v1/auth/me")).json()
    assert me == {"id": world.admin_id, "email": world.admin_email, "name": "Ada Admin", "role": "administrator",
                  "status": "offline", "max_chats": 5, "disabled": False, "department_ids": [world.department_id]}


async def test_session_expires(app: Any, client: httpx.AsyncClient, rt: Runtime, world: World) -> None:
    """The absolute timeout holds however busy the session is (the idle one: test_accounts_sessions)."""
    token = token_of(await login(client, world.operator_email))
    step = timedelta(seconds=rt.settings.session_idle_timeout_s // 2)
    elapsed = timedelta(0)
    while elapsed + step < timedelta(seconds=rt.settings.session_ttl_s - 60):
        clock.advance(step)
        elapsed += step
        assert (await with_token(app, "GET", "/api/v1/auth/me", token)).status_code == 200
    clock.advance(timedelta(seconds=rt.settings.session_ttl_s - 60) - elapsed)
    assert (await with_token(app, "GET", "/api/v1/auth/me", token)).status_code == 200
    clock.advance(timedelta(seconds=120))
    assert (await with_token(app, "GET", "/api/v1/auth/me", token)).status_code == 401


async def test_logout_revokes_the_session(app: Any, client: httpx.AsyncClient, world: World) -> None:
    first = token_of(await login(client, world.operator_email))
    async with logged_in(app, world.operator_email) as other_tab:  # a second session of the same operator
        response = await client.post("/api/v1/auth/logout", headers=SELF)
        assert response.status_code == 204
        deleted = session_cookie(response).lower()
        assert 'confide_session=""' in deleted or "max-age=0" in deleted
        assert (await client.get("/api/v1/auth/me")).status_code == 401
        # The token itself is dead, not only forgotten by the browser.
        assert (await with_token(app, "GET", "/api/v1/auth/me", first)).status_code == 401
        assert (await with_token(app, "GET", "/api/v1/conversations", first)).status_code == 401
        # Only that session ended.
        assert (await other_tab.get("/api/v1/auth/me")).status_code == 200
    assert (await client.post("/api/v1/auth/logout", headers=SELF)).status_code == 401


# ---------------------------------------------------------------- CSRF
CROSS_SITE: list[dict[str, str]] = [
    {"Origin": "https://evil.example"},
    {"Origin": "http://testserver.evil.example"},
    {"Origin": "https://testserver:8443"},
    {"Origin": "null"},
    {"Referer": "https://evil.example/page"},
    {},  # neither Origin nor Referer
]


async def test_cross_site_cookie_writes_are_refused(app: Any, rt: Runtime, world: World) -> None:
    async with logged_in(app, world.admin_email) as admin:
        sites = await count(rt, "sites")
        reply = (await admin.post("/api/v1/canned-replies", json={"shortcut": "hi", "title": "Hi", "text": "Hi"},
                                  headers=SELF)).json()
        for headers in CROSS_SITE:
            attempts = [("POST", "/api/v1/sites", {"name": "Evil"}),
                        ("PATCH", f"/api/v1/operators/{world.operator_id}", {"name": "Hacked", "role": "admin"}),
                        ("DELETE", f"/api/v1/canned-replies/{reply['id']}", None),
                        ("POST", "/api/v1/auth/logout", None)]
            for method, path, body in attempts:
                response = await admin.request(method, path, json=body, headers=headers)
                assert response.status_code == 403, (headers, method, path)
                assert response.json()["detail"] == "cross-site request refused"
        # Nothing changed, and the session is still alive.
        assert await count(rt, "sites") == sites
        assert await count(rt, "canned_replies") == 1
        operators = {op["id"]: op for op in (await admin.get("/api/v1/operators",
                                                             headers=CROSS_SITE[0])).json()}
        assert operators[world.operator_id]["name"] == "Mia"
        assert operators[world.operator_id]["role"] == "operator"
        assert (await admin.get("/api/v1/auth/me")).status_code == 200


async def test_same_origin_cookie_writes_are_allowed(app: Any, rt: Runtime, world: World) -> None:
    async with logged_in(app, world.admin_email) as admin:
        response = await admin.post("/api/v1/sites", json={"name": "Blog"}, headers=SELF)
        assert response.status_code == 201, response.text
        response = await admin.post("/api/v1/sites", json={"name": "Wiki"},
                                    headers={"Referer": "http://testserver/console/settings"})
        assert response.status_code == 201, response.text
        assert await count(rt, "sites") == 3
