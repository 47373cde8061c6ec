"""Passwords (issue 6, point 3): the policy everywhere a password is set, the common-password list,
the history, the change in the console, the forced change of one-time and reset passwords, the
optional maximum age and the rehash when argon2's parameters change."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, text

from confide.auth import passwords
from confide.auth.passwords import PasswordPolicy
from confide.core import clock, crypto
from confide.core.runtime import Runtime
from confide.users.models import Operator, PasswordHistory
from tests.conftest import World
from tests.helpers_api import PASSWORD, SELF, logged_in, login

NEW = "a long and fresh passphrase"


# ---------------------------------------------------------------- the policy (pure)
def test_the_bundled_list_is_real_and_checked_case_insensitively() -> None:
    words = passwords.common_passwords()
    assert len(words) >= 10_000
    assert {"123456", "password", "qwerty", "iloveyou", "password1234"} <= words
    policy = PasswordPolicy()
    for common in ("Password1234", "PASSWORD1234", "qwertyuiop123", " password1234 "):
        assert any("common or breached" in p for p in passwords.problems(common, policy)), common
    assert passwords.problems("correct horse battery staple", policy) == []


def test_length_whitespace_and_the_email_are_refused() -> None:
    policy = PasswordPolicy(min_length=14)
    assert passwords.problems("thirteen chars", policy) == []  # 14 characters
    assert passwords.problems("only 13 chars", policy) == ["The password must have at least 14 characters."]
    assert "The password may not be only spaces." in passwords.problems(" " * 20, policy)
    assert passwords.problems("x" * 1025, policy) == ["The password may have at most 1024 characters."]
    assert passwords.problems("Mia.Long@Shop.example", policy, email="mia.long@shop.example") == [
        "The password may not be your e-mail address."
    ]
    assert passwords.problems("mia.longname.x", policy, email="mia.longname.x@shop.example") == [
        "The password may not be your e-mail address."
    ]


def test_maximum_age_is_off_by_default() -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    old = now - timedelta(days=3650)
    assert not passwords.expired(old, PasswordPolicy(), now)
    assert passwords.expired(now - timedelta(days=31), PasswordPolicy(max_age_days=30), now)
    assert not passwords.expired(now - timedelta(days=29), PasswordPolicy(max_age_days=30), now)
    assert not passwords.expired(None, PasswordPolicy(max_age_days=30), now)


# ---------------------------------------------------------------- everywhere a password is set
async def test_creating_an_operator_applies_the_policy(app: Any, rt: Runtime, world: World) -> None:
    async with logged_in(app, world.admin_email) as admin:
        for password, message in (("Password1234", "common or breached"), ("short", "")):
            response = await admin.post("/api/v1/operators", headers=SELF, json={
                "email": "new@shop.example", "name": "New", "password": password})
            assert response.status_code == 422, response.text
            assert message in str(response.json())
        response = await admin.post("/api/v1/operators", headers=SELF, json={
            "email": "new@shop.example", "name": "New", "password": "new@shop.example"})
        assert response.status_code == 422
        assert response.json()["detail"] == "The password may not be your e-mail address."
        async with rt.db.unit_of_work(readonly=True) as uow:
            assert await uow.session.scalar(select(Operator).where(Operator.email == "new@shop.example")) is None
        # A workspace may raise its minimum (Settings -> Security -> Passwords).
        page = await admin.post("/app/settings/security/passwords", headers=SELF, data={
            "password_min_length": "30", "password_max_age_days": "0", "session_idle_timeout_min": "30",
            "session_max_per_operator": "0"})
        assert page.status_code == 303
        response = await admin.post("/api/v1/operators", headers=SELF, json={
            "email": "new@shop.example", "name": "New", "password": NEW})
        assert response.status_code == 422
        assert response.json()["detail"] == "The password must have at least 30 characters."


async def test_an_administrator_sets_a_one_time_password(app: Any, client: httpx.AsyncClient, rt: Runtime,
                                                        world: World) -> None:
    async with logged_in(app, world.admin_email) as admin:
        created = await admin.post("/api/v1/operators", headers=SELF, json={
            "email": "new@shop.example", "name": "New", "password": "one time password 1"})
        assert created.status_code == 201, created.text
    assert (await login(client, "new@shop.example", "one time password 1")).status_code == 200
    # Every page and call but the password change (and log-out) is refused until it is changed.
    me = await client.get("/api/v1/auth/me")
    assert (me.status_code, me.json()["detail"]) == (403, "you must change your password before you go on")
    assert (await client.get("/api/v1/conversations")).status_code == 403
    for page in ("/app", "/app/chats", "/app/account/sessions", "/app/settings"):
        response = await client.get(page)
        assert (response.status_code, response.headers.get("location")) == (303, "/app/account/password"), page
    form = await client.get("/app/account/password")
    assert form.status_code == 200
    assert 'data-testid="password-required"' in form.text
    # The same password again is no change; then a new one works everywhere.
    same = await client.post("/app/account/password", headers=SELF, data={
        "current_password": "one time password 1", "new_password": "one time password 1",
        "confirm_password": "one time password 1"})
    assert same.status_code == 422
    assert "not used before" in same.text
    done = await client.post("/app/account/password", headers=SELF, data={
        "current_password": "one time password 1", "new_password": NEW, "confirm_password": NEW})
    assert done.status_code == 303, done.text
    assert (await client.get("/api/v1/auth/me")).status_code == 200
    assert (await client.get("/app")).status_code == 200


async def test_the_demo_password_is_one_time(rt: Runtime) -> None:
    from confide.onboarding import create_demo

    async with rt.db.unit_of_work() as uow:
        result = await create_demo(rt, uow, admin_email="boss@demo.test", admin_password=None,
                                   base_url="http://x")
    assert result.admin_password
    async with rt.db.unit_of_work(readonly=True) as uow:
        op = await uow.session.scalar(select(Operator).where(Operator.email == "boss@demo.test"))
        assert op is not None
        assert op.must_change_password


# ---------------------------------------------------------------- the change in the console
async def test_changing_ones_password(app: Any, client: httpx.AsyncClient, rt: Runtime, world: World) -> None:
    assert (await login(client, world.operator_email)).status_code == 200
    async with logged_in(app, world.operator_email) as other_device:
        page = await client.get("/app/account/password")
        assert page.status_code == 200
        assert "At least 12 characters" in page.text

        async def change(current: str, new: str, confirm: str | None = None) -> httpx.Response:
            return await client.post("/app/account/password", headers=SELF, data={
                "current_password": current, "new_password": new, "confirm_password": new if confirm is None
                else confirm})

        wrong = await change("not my password", NEW)
        assert wrong.status_code == 422
        assert "The current password is not right." in wrong.text
        assert "The new password and its confirmation differ." in (await change(PASSWORD, NEW, "other")).text
        assert "common or breached" in (await change(PASSWORD, "Password1234")).text
        done = await change(PASSWORD, NEW)
        assert (done.status_code, done.headers["location"]) == (303, "/app/account/sessions?saved=password")
        # This session goes on; the other device's ended.
        assert (await client.get("/api/v1/auth/me")).status_code == 200
        assert (await other_device.get("/api/v1/auth/me")).status_code == 401
    assert (await login(client, world.operator_email, PASSWORD)).status_code == 401
    assert (await login(client, world.operator_email, NEW)).status_code == 200
    actions = await _audit(rt, "auth.password_change")
    assert [(a["outcome"], a["detail"]) for a in actions] == [("failed", '{"reason":"wrong_password"}'),
                                                               ("ok", "{}")]


async def test_none_of_the_last_five_may_be_reused(client: httpx.AsyncClient, rt: Runtime, world: World) -> None:
    assert (await login(client, world.operator_email)).status_code == 200
    chain = [PASSWORD] + [f"passphrase number {n} here" for n in range(1, 7)]
    for current, new in itertools.pairwise(chain):
        response = await client.post("/api/v1/auth/password", headers=SELF,
                                     json={"current_password": current, "new_password": new})
        assert response.status_code == 204, response.text
    current = chain[-1]
    async with rt.db.unit_of_work(readonly=True) as uow:
        kept = (await uow.session.scalars(select(PasswordHistory))).all()
    assert len(kept) == rt.settings.password_history  # older hashes are dropped
    for reused in chain[-6:]:  # the current one and the last five
        response = await client.post("/api/v1/auth/password", headers=SELF,
                                     json={"current_password": current, "new_password": reused})
        assert response.status_code == 422, reused
        assert "not used before" in response.json()["detail"]
    response = await client.post("/api/v1/auth/password", headers=SELF,
                                 json={"current_password": current, "new_password": chain[0]})  # 6 ago
    assert response.status_code == 204, response.text


async def test_hostile_password_change_input(client: httpx.AsyncClient, rt: Runtime, world: World) -> None:
    assert (await login(client, world.operator_email)).status_code == 200
    for body in ({}, {"current_password": PASSWORD}, {"current_password": PASSWORD, "new_password": "x" * 1025},
                 {"current_password": "", "new_password": NEW},
                 {"current_password": PASSWORD, "new_password": NEW, "extra": 1}):
        assert (await client.post("/api/v1/auth/password", headers=SELF, json=body)).status_code == 422, body
    page = await client.post("/app/account/password", headers=SELF, data={"new_password": "\x00" * 5})
    assert page.status_code == 422
    assert (await login(client, world.operator_email)).status_code == 200  # nothing changed
    anonymous = httpx.AsyncClient(transport=client._transport, base_url="http://testserver")
    async with anonymous:
        response = await anonymous.post("/api/v1/auth/password", headers=SELF,
                                         json={"current_password": PASSWORD, "new_password": NEW})
        assert response.status_code == 401


async def test_guessing_the_current_password_is_throttled(client: httpx.AsyncClient, rt: Runtime,
                                                          world: World) -> None:
    assert (await login(client, world.operator_email)).status_code == 200
    statuses = []
    for n in range(rt.settings.login_free_failures + 2):
        response = await client.post("/api/v1/auth/password", headers=SELF,
                                     json={"current_password": f"guess {n} at it", "new_password": NEW})
        statuses.append(response.status_code)
    assert statuses == [422] * (rt.settings.login_free_failures + 1) + [429]


# ---------------------------------------------------------------- maximum age, rehash
async def test_an_expired_password_must_be_changed(app: Any, client: httpx.AsyncClient, rt: Runtime,
                                                   world: World) -> None:
    async with logged_in(app, world.admin_email) as admin:
        saved = await admin.post("/app/settings/security/passwords", headers=SELF, data={
            "password_min_length": "12", "password_max_age_days": "90", "session_idle_timeout_min": "30",
            "session_max_per_operator": "0"})
        assert saved.status_code == 303
    clock.advance(timedelta(days=89))
    assert (await login(client, world.operator_email)).status_code == 200
    assert (await client.get("/api/v1/auth/me")).status_code == 200
    clock.advance(timedelta(days=2))
    assert (await login(client, world.operator_email)).status_code == 200
    assert (await client.get("/api/v1/auth/me")).status_code == 403
    response = await client.post("/api/v1/auth/password", headers=SELF,
                                 json={"current_password": PASSWORD, "new_password": NEW})
    assert response.status_code == 204
    assert (await client.get("/api/v1/auth/me")).status_code == 200


async def test_a_hash_with_old_parameters_is_replaced_at_log_in(client: httpx.AsyncClient, rt: Runtime,
                                                                world: World) -> None:
    async with rt.db.unit_of_work(readonly=True) as uow:
        before = (await uow.session.get(Operator, world.operator_id)).password_hash  # type: ignore[union-attr]
    assert "m=8,t=1" in before
    rt.passwords = crypto.Passwords(time_cost=2, memory_kib=16)  # the operator raised the cost
    assert (await login(client, world.operator_email)).status_code == 200
    async with rt.db.unit_of_work(readonly=True) as uow:
        after = (await uow.session.get(Operator, world.operator_id)).password_hash  # type: ignore[union-attr]
    assert "m=16,t=2" in after
    assert rt.passwords.verify(after, PASSWORD)
    assert (await login(client, world.operator_email)).status_code == 200
    async with rt.db.unit_of_work(readonly=True) as uow:
        again = (await uow.session.get(Operator, world.operator_id)).password_hash  # type: ignore[union-attr]
    assert again == after  # not rehashed twice
    rt.passwords.close()


async def test_the_policy_page_refuses_hostile_input(app: Any, rt: Runtime, world: World) -> None:
    async with logged_in(app, world.admin_email) as admin:
        for bad in ({"password_min_length": "8"}, {"password_min_length": "abc"},
                    {"session_idle_timeout_min": "-1"}, {"session_max_per_operator": "1e999"},
                    {"password_max_age_days": "<script>"}):
            response = await admin.post("/app/settings/security/passwords", headers=SELF, data=bad)
            assert response.status_code == 422, bad
            assert 'data-testid="form-errors"' in response.text
        page = await admin.get("/app/settings/security/passwords")
        assert 'value="12"' in page.text
    async with logged_in(app, world.operator_email) as operator:  # not an administrator
        response = await operator.post("/app/settings/security/passwords", headers=SELF,
                                       data={"password_min_length": "40"})
        assert response.status_code == 403
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert await uow.session.scalar(text("select count(*) from account_policies")) == 0


async def _audit(rt: Runtime, action: str) -> list[dict[str, Any]]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        rows = await uow.session.execute(
            text("select actor_type, actor_id, outcome, detail from audit_events where action = :a order by seq"),
            {"a": action})
        return [dict(r._mapping) for r in rows]
