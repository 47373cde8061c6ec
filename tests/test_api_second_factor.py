"""The JSON API log-in runs the console's log-in pipeline (SQLite and PostgreSQL): the second factor
(401 ``second_factor_required`` with a ticket, then the ticket and a code, never a session without
it), enrolment required (401, no ticket), login limits, a directory (LDAP) account, and hostile
second-step bodies (422, nothing spent)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from sqlalchemy import text

from confide.core import clock
from confide.core.runtime import Runtime
from confide.login_limits.schemas import LoginLimitsIn
from confide.two_factor import service as two_factor
from confide.users import operators as user_operators
from tests.conftest import World
from tests.helpers_api import PASSWORD, SELF, actor
from tests.ldap_server import Slapd
from tests.test_directory_ldap import ALICE_PW, configure, directory_with_users
from tests.test_two_factor import enrol_totp

T0 = datetime(2026, 3, 1, 9, 0, 5, tzinfo=UTC)
STEP = "/api/v1/auth/login/second-factor"


@pytest.fixture
def slapd(tmp_path: Path) -> Iterator[Slapd]:
    yield from directory_with_users(tmp_path)


async def api_login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/api/v1/auth/login", json={"email": email, "password": password}, headers=SELF)


async def live_sessions(rt: Runtime) -> int:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return int((await uow.session.execute(text("select count(*) from operator_sessions"
                                                   " where revoked_at is null"))).scalar_one())


async def test_a_second_factor_account_gets_a_ticket_then_a_session_with_the_code(
    client: httpx.AsyncClient, rt: Runtime, world: World
) -> None:
    clock.freeze(T0)
    secret, _ = await enrol_totp(rt, world.operator_id)
    first = await api_login(client, world.operator_email)
    assert first.status_code == 401
    assert first.headers["cache-control"] == "no-store"
    body = first.json()
    assert body["code"] == "second_factor_required"
    assert "confide_session" not in client.cookies
    assert await live_sessions(rt) == 0
    assert (await client.get("/api/v1/auth/me")).status_code == 401
    wrong = await client.post(STEP, json={"ticket": body["ticket"], "code": "000000"}, headers=SELF)
    assert wrong.status_code == 401
    assert await live_sessions(rt) == 0
    right = await client.post(STEP, json={"ticket": body["ticket"], "code": pyotp.TOTP(secret).at(clock.now())},
                              headers=SELF)
    assert right.status_code == 200, right.text
    assert right.json()["id"] == world.operator_id
    assert (await client.get("/api/v1/auth/me")).json()["id"] == world.operator_id
    assert await live_sessions(rt) == 1
    # The ticket is spent: once only.
    again = await client.post(STEP, json={"ticket": body["ticket"], "code": pyotp.TOTP(secret).at(clock.now())},
                              headers=SELF)
    assert (again.status_code, again.json()["code"]) == (401, "two_factor_expired")
    assert await live_sessions(rt) == 1


async def test_an_account_that_must_enrol_gets_no_ticket_and_no_session(
    client: httpx.AsyncClient, rt: Runtime, world: World
) -> None:
    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        await two_factor.set_policy(rt, uow, admin, require_all=False, roles=["operator"])
    response = await api_login(client, world.operator_email)
    assert response.status_code == 401
    assert response.json() == {"detail": "set up a second factor first: log in through the console",
                               "code": "second_factor_enrolment_required"}
    assert await live_sessions(rt) == 0


@pytest.mark.parametrize("body", [
    {}, {"ticket": "x"}, {"ticket": "x" * 201, "code": "123456"}, {"ticket": "t", "code": "1" * 65},
    {"ticket": 5, "code": "123456"}, {"ticket": "t", "code": "123456", "extra": 1}, [],
])
async def test_hostile_second_step_bodies_are_refused(
    client: httpx.AsyncClient, rt: Runtime, world: World, body: Any
) -> None:
    response = await client.post(STEP, json=body, headers=SELF)
    assert response.status_code == 422
    forged = await client.post(STEP, json={"ticket": "forged", "code": "123456"}, headers=SELF)
    assert (forged.status_code, forged.json()["code"]) == (401, "two_factor_expired")
    assert await live_sessions(rt) == 0


async def test_the_api_login_honours_login_limits(app: Any, rt: Runtime, world: World) -> None:
    from confide.login_limits import service as login_limits

    admin = await actor(rt, world.admin_id)
    async with rt.db.unit_of_work() as uow:
        await login_limits.set_limits(rt, uow, admin, "operator", world.operator_id,
                                      LoginLimitsIn(ranges=["192.0.2.0/24"]), address=None)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        assert (await api_login(http, world.operator_email)).status_code == 403
    assert await live_sessions(rt) == 0


async def test_a_directory_account_logs_in_through_the_api(
    client: httpx.AsyncClient, rt: Runtime, world: World, slapd: Slapd
) -> None:
    await configure(rt, world, slapd)
    response = await api_login(client, "alice@corp.example", ALICE_PW)
    assert response.status_code == 200, response.text
    async with rt.db.unit_of_work(readonly=True) as uow:
        op = await user_operators.operator_by_email(uow, "alice@corp.example")
    assert op is not None
    assert op.last_login_method == "ldap"
    assert (await api_login(client, "alice@corp.example", "wrong")).status_code == 401
