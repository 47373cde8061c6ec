"""Directory and single sign-on log-ins go through the log-in throttle (SQLite and PostgreSQL): an
LDAP log-in is counted per typed e-mail and per client address like a password one, with the same
answers and the same floor on timing for unknown and known accounts, and every failure audited in
the one failed-log-in shape (``users.record_login_failure``); OpenID Connect callbacks are counted
per client address. A real slapd on loopback."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from confide.audit.models import AuditEvent
from confide.config import Settings
from confide.core import clock
from confide.core.runtime import Runtime
from tests.conftest import World
from tests.helpers_api import PASSWORD, SELF
from tests.ldap_server import Slapd
from tests.test_directory_ldap import ALICE_PW, configure, directory_with_users, operator_by_email

FLOOR_S = 0.25



@pytest.fixture
def slapd(tmp_path: Path) -> Iterator[Slapd]:
    yield from directory_with_users(tmp_path)


@pytest.fixture
async def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"login_address_free_failures": 4, "directory_login_floor_s": FLOOR_S})


@pytest.fixture(autouse=True)
def _frozen_clock() -> None:
    clock.freeze()  # a block of 1 s must not run out between two attempts on a slow machine


async def form_login(app: Any, email: str, password: str, address: str = "192.0.2.10") -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        return await http.post("/login", data={"email": email, "password": password, "next": "/app"}, headers=SELF)


async def failures(rt: Runtime) -> list[AuditEvent]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return list((await uow.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "auth.login", AuditEvent.outcome != "ok")
            .order_by(AuditEvent.seq))).all())


async def test_ldap_log_ins_are_throttled_alike_for_unknown_and_known_accounts(
    app: Any, rt: Runtime, world: World, slapd: Slapd
) -> None:
    await configure(rt, world, slapd)
    answers: dict[str, list[tuple[int, bool]]] = {}
    timings: dict[str, list[float]] = {}
    for who, address in (("alice@corp.example", "192.0.2.10"), ("nobody@corp.example", "192.0.2.11")):
        answers[who], timings[who] = [], []
        for _ in range(4):
            started = time.monotonic()
            response = await form_login(app, who, "not the password", address)
            timings[who].append(time.monotonic() - started)
            answers[who].append((response.status_code, "wrong e-mail or password" in response.text.lower()))
    # Two free failures, then a one-second block: the same answers for a real and a made-up login.
    assert answers["alice@corp.example"] == answers["nobody@corp.example"] == [
        (401, True), (401, True), (401, True), (429, False)]
    # Every refusal the directory was asked about took at least the floor, known or unknown.
    assert min(timings["alice@corp.example"][:3] + timings["nobody@corp.example"][:3]) >= FLOOR_S
    # While blocked, even the right password is not tried (nor is the directory asked).
    assert (await form_login(app, "alice@corp.example", ALICE_PW, "192.0.2.10")).status_code == 429
    assert await operator_by_email(rt, "alice@corp.example") is None
    rows = await failures(rt)
    reasons = [json.loads(r.detail)["reason"] for r in rows]
    assert reasons.count("throttled") == 3
    assert {json.loads(r.detail)["method"] for r in rows} == {"ldap"}
    assert all(set(json.loads(r.detail)) == {"method", "reason"} for r in rows)
    # The block runs out: the right password gets in, and the account's count starts again from zero.
    clock.advance(timedelta(seconds=5))
    assert (await form_login(app, "alice@corp.example", ALICE_PW, "192.0.2.10")).status_code == 303
    for _ in range(2):
        assert (await form_login(app, "alice@corp.example", "wrong again", "192.0.2.10")).status_code == 401


async def test_one_address_trying_many_directory_logins_is_throttled(
    app: Any, rt: Runtime, world: World, slapd: Slapd
) -> None:
    await configure(rt, world, slapd)
    codes = [(await form_login(app, f"user{i}@corp.example", "guess", "198.51.100.9")).status_code for i in range(7)]
    # Four free failures for an address (the fixture); the fifth is tried and sets the block.
    assert codes == [401, 401, 401, 401, 401, 429, 429]
    # Another address is not affected.
    assert (await form_login(app, "carol@corp.example", "carol-directory-pw", "198.51.100.10")).status_code == 303


async def test_password_and_directory_failures_share_one_audit_shape(
    app: Any, rt: Runtime, world: World, slapd: Slapd
) -> None:
    await configure(rt, world, slapd, login_domains=["corp.example"])
    assert (await form_login(app, world.operator_email, "wrong")).status_code == 401  # local account
    assert (await form_login(app, "nobody@nowhere.example", "wrong")).status_code == 401  # unknown, local path
    assert (await form_login(app, "carol@corp.example", "carol-directory-pw")).status_code == 303
    carol = await operator_by_email(rt, "carol@corp.example")
    assert carol is not None
    assert (await form_login(app, "carol@corp.example", "wrong", "192.0.2.20")).status_code == 401  # known, ldap
    rows = await failures(rt)
    shape = [(r.actor_type, r.actor_id, r.target_type, r.target_id, r.outcome, json.loads(r.detail)) for r in rows]
    assert shape == [
        ("operator", world.operator_id, "operator", world.operator_id, "failed",
         {"method": "password", "reason": "wrong_password"}),
        ("anonymous", None, None, None, "failed", {"method": "password", "reason": "unknown"}),
        ("operator", carol.id, "operator", carol.id, "failed", {"method": "ldap", "reason": "bad_credentials"}),
    ]


async def test_oidc_callbacks_are_audited_and_throttled_per_address(app: Any, rt: Runtime, world: World) -> None:
    async def callback(address: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            return await http.get("/login/sso/nosuchprovider/callback", params={"code": "x", "state": "y"})

    codes = [(await callback("203.0.113.50")).status_code for _ in range(7)]
    assert codes == [401, 401, 401, 401, 401, 429, 429]
    assert (await callback("203.0.113.51")).status_code == 401  # another address
    rows = await failures(rt)
    assert [json.loads(r.detail) for r in rows] == [{"method": "oidc", "reason": "provider_off"}] * 5 + [
        {"method": "oidc", "reason": "throttled"}] * 2 + [{"method": "oidc", "reason": "provider_off"}]
    # The password log-in of someone else from the throttled address is refused too (one address count).
    transport = httpx.ASGITransport(app=app, client=("203.0.113.50", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        blocked = await http.post("/api/v1/auth/login", json={"email": world.admin_email, "password": PASSWORD},
                                  headers=SELF)
    assert blocked.status_code == 429
