"""``confide reset-two-factor EMAIL``: the way back in for someone who lost every second factor."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from confide.audit.models import AuditEvent
from confide.config import Settings
from confide.core import clock
from confide.core.errors import Unauthorized
from confide.core.runtime import Runtime
from confide.two_factor import service as two_factor
from confide.users import sessions as user_sessions
from tests.cli_helpers import run_cli
from tests.conftest import World
from tests.test_two_factor import T0, add_passkey, enrol_totp, first_factor


async def test_reset_two_factor_removes_every_factor_and_ends_sessions(
    rt: Runtime, settings: Settings, world: World
) -> None:
    clock.freeze(T0)
    await enrol_totp(rt, world.operator_id)
    await add_passkey(rt, world.operator_id)
    async with rt.db.unit_of_work() as uow:
        token = await user_sessions.open_session(rt, uow, world.operator_id, method="password")
    assert (await first_factor(rt, world.operator_email)).second_factor is not None
    clock.reset()  # the command runs with the real clock
    result = await run_cli(settings, "reset-two-factor", world.operator_email)
    assert result.exit_code == 0, result.output
    assert world.operator_id in result.output
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert await two_factor.two_factor_state(uow, world.operator_id) == "none"
        assert (await two_factor.factors(uow, world.operator_id)).recovery_total == 0
        with pytest.raises(Unauthorized):
            await user_sessions.resolve_session(uow, token)
        [row] = (await uow.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "auth.two_factor_removed"))).all()
    assert (row.actor_type, row.target_id) == ("system", world.operator_id)
    assert '"factor":"all"' in row.detail
    assert (await first_factor(rt, world.operator_email)).second_factor is None
    unknown = await run_cli(settings, "reset-two-factor", "nobody@shop.example")
    assert unknown.exit_code == 1
    assert "no enabled account" in unknown.output
