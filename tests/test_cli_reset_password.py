"""``confide reset-password EMAIL``: a new password, every session ended, the lockout cleared."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select

from confide.config import Settings
from confide.core import clock
from confide.core.runtime import Runtime
from confide.users.models import Operator, OperatorSession
from tests.cli_helpers import run_cli
from tests.conftest import World
from tests.helpers_api import login

NEW = "a brand new password 42"


async def test_reset_password_from_the_environment_ends_sessions_and_clears_the_lock(
    rt: Runtime, settings: Settings, world: World, client: httpx.AsyncClient
) -> None:
    assert (await login(client, world.admin_email)).status_code == 200
    async with rt.db.unit_of_work() as uow:
        op = await uow.session.get(Operator, world.admin_id)
        assert op is not None
        op.locked_until = clock.now() + timedelta(hours=1)
        op.failed_logins = 3
    result = await run_cli(settings, "reset-password", world.admin_email, CONFIDE_ADMIN_PASSWORD=NEW)
    assert result.exit_code == 0, result.output
    assert world.admin_id in result.output
    assert NEW not in result.output  # a password it was given is never echoed
    async with rt.db.unit_of_work(readonly=True) as uow:
        op = await uow.session.get(Operator, world.admin_id)
        assert op is not None
        assert (op.failed_logins, op.locked_until) == (0, None)
        sessions = list((await uow.session.scalars(
            select(OperatorSession).where(OperatorSession.operator_id == world.admin_id))).all())
    assert sessions
    assert all(s.revoked_at is not None for s in sessions)
    assert (await client.get("/api/v1/auth/me")).status_code == 401  # the old cookie is dead
    assert (await login(client, world.admin_email)).status_code == 401  # so is the old password
    assert (await login(client, world.admin_email, NEW)).status_code == 200


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
