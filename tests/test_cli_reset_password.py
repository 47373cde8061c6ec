"""``confide reset-password EMAIL``: a new password (to be changed at the next log-in), every session
ended, the log-in throttle cleared."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from confide.config import Settings
from confide.core.runtime import Runtime
from confide.users.models import Operator, OperatorSession
from tests.cli_helpers import run_cli
from tests.conftest import World
from tests.helpers_api import PASSWORD, SELF, login

NEW = "a brand new password 42"


async def test_reset_password_from_the_environment_ends_sessions_and_clears_the_throttle(
    rt: Runtime, settings: Settings, world: World, client: httpx.AsyncClient
) -> None:
    assert (await login(client, world.admin_email)).status_code == 200
    for _ in range(rt.settings.login_free_failures + 1):  # the account now has to wait before its next try
        assert (await login(client, world.admin_email, "wrong password!")).status_code == 401
    assert (await login(client, world.admin_email)).status_code == 429
    result = await run_cli(settings, "reset-password", world.admin_email, CONFIDE_ADMIN_PASSWORD=NEW)
    assert result.exit_code == 0, result.output
    assert world.admin_id in result.output
    assert NEW not in result.output  # a password it was given is never echoed
    assert "must choose a new password" in result.output
    async with rt.db.unit_of_work(readonly=True) as uow:
        op = await uow.session.get(Operator, world.admin_id)
        assert op is not None
        assert op.must_change_password is True
        sessions = list((await uow.session.scalars(
            select(OperatorSession).where(OperatorSession.operator_id == world.admin_id))).all())
    assert sessions
    assert all(s.revoked_at is not None for s in sessions)
    assert (await client.get("/api/v1/auth/me")).status_code == 401  # the old cookie is dead
    assert (await login(client, world.admin_email)).status_code == 401  # so is the old password
    assert (await login(client, world.admin_email, NEW)).status_code == 200  # the throttle was cleared
    # ... and the reset password only opens the password change.
    me = await client.get("/api/v1/auth/me")
    assert me.status_code == 403
    assert me.json() == {"detail": "you must change your password before you go on", "code": "forbidden"}
    changed = await client.post("/api/v1/auth/password", headers=SELF,
                                json={"current_password": NEW, "new_password": "my very own passphrase"})
    assert changed.status_code == 204, changed.text
    assert (await client.get("/api/v1/auth/me")).status_code == 200


async def test_reset_password_applies_the_policy(settings: Settings, world: World, client: httpx.AsyncClient) -> None:
    common = await run_cli(settings, "reset-password", world.operator_email, CONFIDE_ADMIN_PASSWORD="Password1234")
    assert common.exit_code == 1
    assert "common or breached" in common.output
    same = await run_cli(settings, "reset-password", world.operator_email, CONFIDE_ADMIN_PASSWORD=PASSWORD)
    assert same.exit_code == 1
    assert "used recently" in same.output
    assert (await login(client, world.operator_email)).status_code == 200  # nothing changed


async def test_reset_password_generated_is_printed_once_and_works(
    settings: Settings, world: World, client: httpx.AsyncClient
) -> None:
    result = await run_cli(settings, "reset-password", world.operator_email, "--generate")
    assert result.exit_code == 0, result.output
    [line] = [line for line in result.output.splitlines() if line.startswith("new password: ")]
    password = line.removeprefix("new password: ").split()[0]
    assert len(password) >= 12
    assert (await login(client, world.operator_email, password)).status_code == 200


async def test_reset_password_from_stdin(settings: Settings, world: World, client: httpx.AsyncClient) -> None:
    result = await run_cli(settings, "reset-password", world.operator_email, stdin=NEW + "\n")
    assert result.exit_code == 0, result.output
    assert (await login(client, world.operator_email, NEW)).status_code == 200


async def test_reset_password_refuses_an_unknown_email_or_a_short_password(
    settings: Settings, world: World, client: httpx.AsyncClient
) -> None:
    unknown = await run_cli(settings, "reset-password", "nobody@shop.example", CONFIDE_ADMIN_PASSWORD=NEW)
    assert unknown.exit_code == 1
    assert "error: no account has this e-mail address" in unknown.output
    short = await run_cli(settings, "reset-password", world.operator_email, stdin="short\n")
    assert short.exit_code == 2
    assert "at least" in short.output or "12 to 1024" in short.output
    assert (await login(client, world.operator_email)).status_code == 200  # nothing changed
