"""Log-in throttling (issue 6, point 4): per typed e-mail and per client address, growing delays
that never lock anyone out for good, the same answers for unknown and known accounts, every
failure audited (without the e-mail typed), counts shared by every node."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from confide.auth import throttle
from confide.auth.models import LoginThrottle
from confide.core import clock, crypto
from confide.core.runtime import Runtime
from tests.conftest import World
from tests.helpers_api import PASSWORD, SELF, logged_in

WRONG = {"detail": "wrong e-mail or password", "code": "unauthorized"}


@pytest.fixture(autouse=True)
def _frozen_clock() -> None:
    """Delays are measured from each attempt's start: a frozen clock keeps a slow machine from
    letting a 1-second block run out between two attempts."""
    clock.freeze()


async def attempt(client: httpx.AsyncClient, email: str, password: str, address: str = "192.0.2.10") -> httpx.Response:
    """A log-in from ``address`` (the ASGI transport's client address is per client, so a
    client of its own per address)."""
    transport = httpx.ASGITransport(app=client._transport.app, client=(address, 40000))  # type: ignore[attr-defined]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        return await http.post("/api/v1/auth/login", json={"email": email, "password": password}, headers=SELF)


def _shape(response: httpx.Response) -> tuple[int, Any]:
    return response.status_code, response.json()


def test_delays_double_from_the_third_failure_and_are_capped() -> None:
    rule = throttle.Rule(free=2, base_s=1.0, max_s=900.0, forget_s=86400.0)
    assert [rule.delay_s(n) for n in range(1, 8)] == [0, 0, 1, 2, 4, 8, 16]
    assert rule.delay_s(14) == 900  # 2048 s, capped
    assert rule.delay_s(10_000) == 900


async def test_growing_delays_then_the_owner_gets_in(client: httpx.AsyncClient, rt: Runtime, world: World) -> None:
    free = rt.settings.login_free_failures
    for _ in range(free):
        assert _shape(await attempt(client, world.operator_email, "wrong password!")) == (401, WRONG)
    assert _shape(await attempt(client, world.operator_email, "wrong password!")) == (401, WRONG)  # 1 s delay now
    throttled = await attempt(client, world.operator_email, PASSWORD)  # even the right password waits
    assert _shape(throttled) == (429, {"detail": "too many failed log-ins; try again in 1 seconds",
                                       "code": "rate_limited"})
    clock.advance(timedelta(seconds=1))
    assert (await attempt(client, world.operator_email, "wrong password!")).status_code == 401  # 2 s now
    clock.advance(timedelta(seconds=1))
    assert (await attempt(client, world.operator_email, PASSWORD)).json()["detail"].endswith("in 1 seconds")
    # However many failures, the wait never exceeds the cap: the owner is never locked out for good.
    for _ in range(15):
        clock.advance(timedelta(seconds=rt.settings.login_delay_max_s))
        assert (await attempt(client, world.operator_email, "wrong password!")).status_code == 401
    waiting = await attempt(client, world.operator_email, PASSWORD)
    cap = int(rt.settings.login_delay_max_s)
    assert waiting.json()["detail"] == f"too many failed log-ins; try again in {cap} seconds"
    clock.advance(timedelta(seconds=rt.settings.login_delay_max_s))
    assert (await attempt(client, world.operator_email, PASSWORD)).status_code == 200
    # A success starts the account again from zero (this address has its own count, still high).
    for _ in range(free):
        assert (await attempt(client, world.operator_email, "wrong password!", "192.0.2.11")).status_code == 401
    assert (await attempt(client, world.operator_email, PASSWORD, "192.0.2.11")).status_code == 200
    assert (await attempt(client, world.operator_email, "wrong password!")).status_code == 401
    assert (await attempt(client, world.operator_email, PASSWORD)).status_code == 429  # the address's count


async def test_unknown_and_known_accounts_get_the_same_answers(client: httpx.AsyncClient, rt: Runtime,
                                                               world: World) -> None:
    """The throttle is keyed by the typed e-mail, whether or not an account has it: the sequence
    of answers (statuses, bodies, waits) tells nothing about which exists."""

    async def sequence(email: str, address: str) -> list[tuple[int, Any]]:
        out = []
        for step in range(rt.settings.login_free_failures + 4):
            out.append(_shape(await attempt(client, email, "wrong password!", address)))
            if step == rt.settings.login_free_failures + 1:
                clock.advance(timedelta(seconds=1))
        return out

    known = await sequence(world.operator_email, "192.0.2.1")
    clock.reset()
    clock.freeze()
    unknown = await sequence("nobody@shop.example", "192.0.2.2")
    assert known == unknown
    assert {status for status, _ in known} == {401, 429}
    malformed = await sequence("not an e-mail", "192.0.2.3")
    assert [s for s, _ in malformed] == [s for s, _ in known]


async def test_unknown_accounts_spend_a_password_check(client: httpx.AsyncClient, rt: Runtime, world: World,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Timing: a wrong password and an unknown account both cost exactly one argon2 check (the
    unknown one against a dummy hash); a throttled attempt costs none, for both."""
    checks: list[str] = []
    real_verify = crypto.Passwords.verify

    def counting(self: crypto.Passwords, password_hash: str, password: str) -> bool:
        checks.append("check")
        return real_verify(self, password_hash, password)

    monkeypatch.setattr(crypto.Passwords, "verify", counting)
    for email in (world.operator_email, "nobody@shop.example"):
        checks.clear()
        assert (await attempt(client, email, "wrong password!", "192.0.2.50")).status_code == 401
        assert checks == ["check"], email
    for _ in range(4):
        await attempt(client, "nobody@shop.example", "wrong password!", "192.0.2.51")
        await attempt(client, world.operator_email, "wrong password!", "192.0.2.52")
    checks.clear()
    assert (await attempt(client, "nobody@shop.example", "x", "192.0.2.51")).status_code == 429
    assert (await attempt(client, world.operator_email, "x", "192.0.2.52")).status_code == 429
    assert checks == []


async def test_one_address_trying_many_accounts_is_throttled(client: httpx.AsyncClient, rt: Runtime,
                                                             world: World) -> None:
    free = rt.settings.login_address_free_failures
    for n in range(free + 1):  # a different (unknown) account each time: no per-account delay
        assert (await attempt(client, f"guess{n}@shop.example", "wrong password!", "198.51.100.7")).status_code == 401
    blocked = await attempt(client, world.operator_email, PASSWORD, "198.51.100.7")
    assert blocked.status_code == 429
    # Another address is not affected, and the account itself is fine.
    assert (await attempt(client, world.operator_email, PASSWORD, "198.51.100.8")).status_code == 200
    clock.advance(timedelta(seconds=2))
    assert (await attempt(client, world.operator_email, PASSWORD, "198.51.100.7")).status_code == 200


async def test_colleagues_behind_one_address_do_not_throttle_each_other(client: httpx.AsyncClient, rt: Runtime,
                                                                         world: World) -> None:
    for _ in range(rt.settings.login_address_free_failures * 3):  # successes undo their own count
        assert (await attempt(client, world.operator_email, PASSWORD, "203.0.113.5")).status_code == 200
        assert (await attempt(client, world.admin_email, PASSWORD, "203.0.113.5")).status_code == 200


async def test_every_failure_is_audited_without_the_email(app: Any, client: httpx.AsyncClient, rt: Runtime,
                                                          world: World) -> None:
    async with logged_in(app, world.admin_email) as admin:
        await admin.patch(f"/api/v1/operators/{world.admin_id}", json={}, headers=SELF)
        disabled = await admin.patch(f"/api/v1/operators/{world.operator_id}", json={"disabled": True},
                                     headers=SELF)
        assert disabled.status_code == 200
        assert (await admin.post("/api/v1/auth/logout", headers=SELF)).status_code == 204
    await attempt(client, world.operator_email, PASSWORD, "192.0.2.90")  # disabled
    await attempt(client, "nobody@shop.example", PASSWORD, "192.0.2.91")  # unknown
    for _ in range(rt.settings.login_free_failures + 2):
        await attempt(client, world.admin_email, "wrong password!", "192.0.2.92")  # wrong, then throttled
    async with rt.db.unit_of_work(readonly=True) as uow:
        rows = [dict(r._mapping) for r in await uow.session.execute(text(
            "select actor_type, actor_id, action, outcome, detail, target_type from audit_events "
            "where action in ('auth.login', 'auth.logout') order by seq"))]
        dump = json.dumps([dict(r._mapping) for r in await uow.session.execute(text("select * from audit_events"))],
                          default=str)
    assert rows[0] == {"actor_type": "operator", "actor_id": world.admin_id, "action": "auth.login",
                       "outcome": "ok", "detail": '{"method":"password"}', "target_type": "session"}
    assert rows[1]["action"] == "auth.logout"
    assert rows[1]["actor_id"] == world.admin_id
    failures = [(r["actor_type"], r["actor_id"], json.loads(r["detail"])["reason"]) for r in rows[2:]]
    free = rt.settings.login_free_failures
    assert failures == [("operator", world.operator_id, "disabled"), ("anonymous", None, "unknown")] + [
        ("operator", world.admin_id, "wrong_password")] * (free + 1) + [("operator", world.admin_id, "throttled")]
    assert all(json.loads(r["detail"])["method"] == "password" for r in rows[2:])
    for secret in ("nobody@shop.example", world.operator_email, world.admin_email, "192.0.2.9", PASSWORD):
        assert secret not in dump


async def test_throttle_rows_hold_no_email_or_address(client: httpx.AsyncClient, rt: Runtime, world: World) -> None:
    await attempt(client, world.operator_email, "wrong password!", "192.0.2.77")
    async with rt.db.unit_of_work(readonly=True) as uow:
        rows = (await uow.session.scalars(select(LoginThrottle))).all()
    assert sorted(r.key[:2] for r in rows) == ["a:", "n:"]
    for row in rows:
        assert "mia" not in row.key
        assert "192.0.2" not in row.key
        assert len(row.key) == 34


async def test_forgotten_after_a_quiet_day(client: httpx.AsyncClient, rt: Runtime, world: World) -> None:
    for _ in range(rt.settings.login_free_failures + 1):
        await attempt(client, world.operator_email, "wrong password!")
    clock.advance(timedelta(seconds=rt.settings.login_forget_s + 1))
    for _ in range(rt.settings.login_free_failures):  # starts again from zero: no delay yet
        assert (await attempt(client, world.operator_email, "wrong password!")).status_code == 401
    assert (await attempt(client, world.operator_email, PASSWORD)).status_code == 200
    async with rt.db.unit_of_work() as uow:
        assert await throttle.purge(uow, clock.now() + timedelta(days=2)) >= 1
