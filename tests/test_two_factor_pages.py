"""The two-factor pages over HTTP (in process, SQLite and PostgreSQL): the log-in's second step and
its ticket cookie, the JSON API's refusal, enrolment at log-in, the account page, the settings page,
and hostile input (cross-site posts, forged tickets, junk JSON): 4xx with a message, never a 500."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pyotp
from sqlalchemy import text

from confide.core import clock
from confide.core.runtime import Runtime
from confide.two_factor import service as two_factor
from tests.conftest import World
from tests.helpers_api import PASSWORD, SELF, actor
from tests.test_two_factor import enrol_totp

T0 = datetime(2026, 3, 1, 9, 0, 5, tzinfo=UTC)
EVIL = {"Origin": "https://evil.example"}


def cookie_header(response: httpx.Response, name: str) -> str | None:
    found = [c for c in response.headers.get_list("set-cookie") if c.startswith(f"{name}=")]
    return found[0] if found else None


async def password_step(client: httpx.AsyncClient, email: str, next_path: str = "/app/chats") -> httpx.Response:
    return await client.post(
        "/login", data={"email": email, "password": PASSWORD, "next": next_path}, headers=SELF
    )


async def sessions(rt: Runtime) -> int:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return int((await uow.session.execute(text("select count(*) from operator_sessions"
                                                   " where revoked_at is null"))).scalar_one())


async def test_the_password_alone_gives_a_ticket_not_a_session(
    client: httpx.AsyncClient, rt: Runtime, world: World
) -> None:
    clock.freeze(T0)
    secret, _ = await enrol_totp(rt, world.operator_id)
    response = await password_step(client, world.operator_email)
    assert response.status_code == 303
    assert response.headers["location"] == "/login/two-factor?next=%2Fapp%2Fchats"
    assert cookie_header(response, "confide_session") is None
    ticket = cookie_header(response, "confide_2fa")
    assert ticket is not None
    attributes = [p.strip().lower() for p in ticket.split(";")]
    assert {"httponly", "samesite=strict", "path=/login/two-factor", f"max-age={two_factor.TICKET_TTL_S}"} <= set(
        attributes
    )
    assert await sessions(rt) == 0
    # The console stays closed.
    assert (await client.get("/app")).status_code == 303

    page = await client.get("/login/two-factor?next=/app/chats")
    assert page.status_code == 200
    assert 'autocomplete="one-time-code"' in page.text
    assert "Use a passkey" not in page.text  # no passkey registered

    wrong = await client.post("/login/two-factor", data={"code": "000000", "next": "/app/chats"}, headers=SELF)
    assert wrong.status_code == 401
    assert "Wrong or already used code" in wrong.text
    assert "4 attempts left" in wrong.text

    right = await client.post(
        "/login/two-factor", data={"code": pyotp.TOTP(secret).at(clock.now()), "next": "/app/chats"}, headers=SELF
    )
    assert right.status_code == 303
    assert right.headers["location"] == "/app/chats"
    assert cookie_header(right, "confide_session") is not None
    cleared = cookie_header(right, "confide_2fa")
    assert cleared is not None
    assert 'confide_2fa="";' in cleared or "max-age=0" in cleared.lower()
    assert (await client.get("/app/chats")).status_code == 200


async def test_the_api_login_refuses_without_the_second_factor(
    client: httpx.AsyncClient, rt: Runtime, world: World
) -> None:
    clock.freeze(T0)
    await enrol_totp(rt, world.operator_id)
    response = await client.post(
        "/api/v1/auth/login", json={"email": world.operator_email, "password": PASSWORD}, headers=SELF
    )
    assert response.status_code == 401
    body = response.json()
    assert (body["code"], body["expires_in"]) == ("second_factor_required", two_factor.TICKET_TTL_S)
    assert len(body["ticket"]) > 30  # spent at POST /api/v1/auth/login/second-factor (test_api_second_factor)
    assert cookie_header(response, "confide_session") is None
    assert await sessions(rt) == 0
    # A wrong password still says only that.
    wrong = await client.post("/api/v1/auth/login", json={"email": world.operator_email, "password": "nope" * 4},
                              headers=SELF)
    assert wrong.json()["code"] == "unauthorized"


async def test_second_step_hostile_input(client: httpx.AsyncClient, rt: Runtime, world: World) -> None:
    clock.freeze(T0)
    await enrol_totp(rt, world.operator_id)
    # No ticket, or a forged one: back to the log-in page, with a reason.
    for cookies in ({}, {"confide_2fa": "forged"}, {"confide_2fa": "x" * 5000}):
        client.cookies.clear()
        for name, value in cookies.items():
            client.cookies.set(name, value, path="/login/two-factor")
        page = await client.get("/login/two-factor")
        assert page.status_code == 401
        assert "expired or was already used" in page.text
        post = await client.post("/login/two-factor", data={"code": "123456"}, headers=SELF)
        assert post.status_code == 401
    client.cookies.clear()
    await password_step(client, world.operator_email)
    refused = await client.post("/login/two-factor", data={"code": "123456"}, headers=EVIL)
    assert refused.status_code == 403
    # The JSON steps: cross-site, junk, no passkey registered. JSON answers with a reason.
    assert (await client.post("/login/two-factor/passkey/options", json={}, headers=EVIL)).status_code == 422
    junk = await client.post("/login/two-factor/passkey", content=b"{not json", headers=SELF)
    assert junk.status_code == 422
    assert junk.json()["code"] == "invalid"
    none = await client.post("/login/two-factor/passkey/options", json={}, headers=SELF)
    assert none.status_code == 422
    assert "no passkey" in none.json()["detail"].lower()
    big = await client.post("/login/two-factor/passkey", content=b"[" * 100_000, headers=SELF)
    assert big.status_code == 422
    odd = await client.post("/login/two-factor/passkey", json={"credential": {"id": "x", "response": {}}},
                            headers={**SELF, "Host": "testserver"})
    assert odd.status_code == 401
    assert await sessions(rt) == 0
    # A next= that leaves the site is replaced by the console.
    assert "//evil" not in (await client.get("/login/two-factor?next=//evil.example")).text


async def test_enforced_enrolment_at_login(client: httpx.AsyncClient, rt: Runtime, world: World) -> None:
    clock.freeze(T0)
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        await two_factor.set_policy(rt, uow, admin, require_all=False, roles=["operator"])
    response = await password_step(client, world.operator_email, "/app")
    assert response.status_code == 303
    assert response.headers["location"] == "/login/two-factor/enrol?next=%2Fapp"
    # The verify page sends an enrolment ticket on to enrolment.
    assert (await client.get("/login/two-factor?next=/app")).headers["location"].startswith("/login/two-factor/enrol")
    page = await client.get("/login/two-factor/enrol?next=/app")
    assert page.status_code == 200
    assert 'src="data:image/svg+xml' in page.text  # the QR code, rendered by the server
    match = re.search(r'data-secret="([A-Z2-7]+)"', page.text)
    assert match
    secret = match.group(1)
    wrong = await client.post("/login/two-factor/enrol", data={"code": "000000", "next": "/app"}, headers=SELF)
    assert wrong.status_code == 401
    assert await sessions(rt) == 0
    done = await client.post(
        "/login/two-factor/enrol", data={"code": pyotp.TOTP(secret).at(clock.now()), "next": "/app"}, headers=SELF
    )
    assert done.status_code == 200
    assert done.headers["cache-control"] == "no-store"
    assert done.text.count('data-testid="recovery-code"') == 10
    assert cookie_header(done, "confide_session") is not None
    assert await sessions(rt) == 1


async def test_account_page_enrols_and_removes_totp(client: httpx.AsyncClient, rt: Runtime, world: World) -> None:
    clock.freeze(T0)
    other = httpx.AsyncClient(transport=client._transport, base_url="http://testserver")  # another browser
    async with other:
        assert (await password_step(other, world.operator_email)).status_code == 303
        assert (await password_step(client, world.operator_email)).status_code == 303
        page = await client.get("/app/account/two-factor")
        assert page.status_code == 200
        assert 'data-testid="totp-start"' in page.text
        started = await client.post("/app/account/two-factor/totp/start", headers=SELF)
        assert started.status_code == 303
        page = await client.get("/app/account/two-factor")
        match = re.search(r'data-secret="([A-Z2-7]+)"', page.text)
        assert match
        bad = await client.post("/app/account/two-factor/totp/confirm", data={"code": "123"}, headers=SELF)
        assert bad.status_code == 422
        assert "does not match" in bad.text
        confirmed = await client.post(
            "/app/account/two-factor/totp/confirm", data={"code": pyotp.TOTP(match.group(1)).at(clock.now())},
            headers=SELF,
        )
        assert confirmed.status_code == 200
        assert confirmed.text.count('data-testid="recovery-code"') == 10
        # This browser got a new session; the other one's ended.
        assert (await client.get("/app/account/two-factor")).status_code == 200
        assert (await other.get("/app")).status_code == 303
        assert await sessions(rt) == 1
        regenerated = await client.post("/app/account/two-factor/recovery", headers=SELF)
        assert regenerated.text.count('data-testid="recovery-code"') == 10
        removed = await client.post("/app/account/two-factor/totp/remove", headers=SELF)
        assert removed.status_code == 303
        assert removed.headers["location"] == "/app/account/two-factor?saved=totp-removed"
        assert "Authenticator app removed" in (await client.get(removed.headers["location"])).text
    # Somebody else's passkey id, or none: not found, nothing changes.
    missing = await client.post("/app/account/two-factor/passkeys/nope/remove", headers=SELF)
    assert missing.status_code == 404
    cross = await client.post("/app/account/two-factor/passkeys/options", json={}, headers=EVIL)
    assert cross.status_code == 403  # the session cookie's CSRF rule (middleware)


async def test_settings_page_sets_the_requirement(client: httpx.AsyncClient, rt: Runtime, world: World) -> None:
    assert (await password_step(client, world.operator_email)).status_code == 303
    assert (await client.get("/app/settings/security/two-factor")).status_code == 403
    forbidden = await client.post("/app/settings/security/two-factor", data={"mode": "all"}, headers=SELF)
    assert forbidden.status_code == 403
    await client.post("/logout", headers=SELF)
    assert (await password_step(client, world.admin_email)).status_code == 303
    page = await client.get("/app/settings/security/two-factor")
    assert page.status_code == 200
    assert 'value="privacy_officer"' in page.text
    for data in ({"mode": "evil"}, {"mode": "roles"}, {"mode": "roles", "roles": ["operator", "<script>x</script>"]}):
        bad = await client.post("/app/settings/security/two-factor", data=data, headers=SELF)
        assert bad.status_code == 422, data
        assert "<script>x" not in bad.text
    saved = await client.post("/app/settings/security/two-factor", data={"mode": "roles", "roles": ["operator"]},
                              headers=SELF)
    assert saved.status_code == 303
    page = await client.get(saved.headers["location"])
    assert "Two-factor requirement saved." in page.text
    assert re.search(r'value="operator" checked', page.text)
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert await two_factor.get_policy(uow, world.workspace_id) == two_factor.PolicyView(False, ["operator"])
    clock.advance(timedelta(seconds=1))
