"""Deleting a custom role while another request gives it to someone, on PostgreSQL (two units on
their own connections): whichever takes the role's row lock first wins, the other gets a clear
refusal (409 "operators hold this role" or 422 "choose one of the workspace's roles"), and no
operator, invitation, login limit, two-factor policy or directory mapping is left naming a role
that is gone. (SQLite has one writer at a time: nothing to race.)"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import select

from confide import role_use
from confide.core.db import UnitOfWork
from confide.core.errors import Conflict, DomainError, Invalid
from confide.core.runtime import Runtime
from confide.login_limits import service as login_limits
from confide.login_limits.models import LoginLimit
from confide.login_limits.schemas import LoginLimitsIn
from confide.two_factor import service as two_factor
from confide.users import accounts as user_accounts
from confide.users import roles
from confide.users.models import Operator, Role
from confide.users.schemas import OperatorPatch
from tests.conftest import World
from tests.helpers_api import actor
from tests.test_roles import make_role

pytestmark = pytest.mark.parametrize("db_kind", ["postgresql"])
HOLD_S = 0.4  # how long the first unit keeps its lock before it commits


async def in_unit(rt: Runtime, work: Callable[[UnitOfWork], Awaitable[Any]], *, hold: asyncio.Event | None = None,
                  after: asyncio.Event | None = None) -> Any:
    """One unit of work: wait for ``after``, do ``work``, then (``hold``) say so and keep the unit
    (and its locks) open a moment before committing."""
    if after is not None:
        await after.wait()
    async with rt.db.unit_of_work() as uow:
        result = await work(uow)
        if hold is not None:
            hold.set()
            await asyncio.sleep(HOLD_S)
    return result


async def role_of(rt: Runtime, operator_id: str) -> str:
    async with rt.db.unit_of_work(readonly=True) as uow:
        op = await uow.session.get(Operator, operator_id)
        assert op is not None
        return op.role


async def role_exists(rt: Runtime, role_id: str) -> bool:
    async with rt.db.unit_of_work(readonly=True) as uow:
        return await uow.session.get(Role, role_id) is not None


async def test_assignment_first_then_the_deletion_is_refused(rt: Runtime, world: World) -> None:
    role_id = await make_role(rt, world)
    admin = await actor(rt, world.admin_id)
    assigned = asyncio.Event()
    results = await asyncio.gather(
        in_unit(rt, lambda uow: user_accounts.update_operator(rt, uow, admin, world.operator_id,
                                                              OperatorPatch(role=role_id)), hold=assigned),
        in_unit(rt, lambda uow: role_use.delete_role(rt, uow, admin, role_id), after=assigned),
        return_exceptions=True,
    )
    assert isinstance(results[1], Conflict), results  # it waited for the assignment, then saw the holder
    assert await role_of(rt, world.operator_id) == role_id
    assert await role_exists(rt, role_id)


async def test_deletion_first_then_the_assignment_is_refused(rt: Runtime, world: World) -> None:
    role_id = await make_role(rt, world)
    admin = await actor(rt, world.admin_id)
    deleted = asyncio.Event()
    results = await asyncio.gather(
        in_unit(rt, lambda uow: role_use.delete_role(rt, uow, admin, role_id), hold=deleted),
        in_unit(rt, lambda uow: user_accounts.update_operator(rt, uow, admin, world.operator_id,
                                                              OperatorPatch(role=role_id)), after=deleted),
        return_exceptions=True,
    )
    assert results[0] is None
    assert isinstance(results[1], Invalid), results  # it waited for the deletion, then found no role
    assert await role_of(rt, world.operator_id) == "operator"
    assert not await role_exists(rt, role_id)


async def test_deletion_first_then_login_limits_and_the_policy_are_refused(rt: Runtime, world: World) -> None:
    role_id = await make_role(rt, world)
    admin = await actor(rt, world.admin_id)
    deleted = asyncio.Event()
    results = await asyncio.gather(
        in_unit(rt, lambda uow: role_use.delete_role(rt, uow, admin, role_id), hold=deleted),
        in_unit(rt, lambda uow: login_limits.set_limits(rt, uow, admin, "role", role_id,
                                                        LoginLimitsIn(ranges=["192.0.2.0/24"]), address=None),
                after=deleted),
        in_unit(rt, lambda uow: two_factor.set_policy(rt, uow, admin, require_all=False, roles=[role_id]),
                after=deleted),
        return_exceptions=True,
    )
    assert results[0] is None
    assert all(isinstance(r, DomainError) and 400 <= r.status < 500 for r in results[1:]), results
    async with rt.db.unit_of_work(readonly=True) as uow:
        assert (await uow.session.scalars(select(LoginLimit))).all() == []
        assert (await two_factor.get_policy(uow, world.workspace_id)).roles == []


async def test_many_rounds_at_once_leave_no_dangling_role(rt: Runtime, world: World) -> None:
    admin = await actor(rt, world.admin_id)
    outcomes: set[str] = set()
    for round_ in range(8):
        role_id = await make_role(rt, world, name=f"Shift {round_}")
        results = await asyncio.gather(
            in_unit(rt, lambda uow, r=role_id: user_accounts.update_operator(rt, uow, admin, world.operator_id,
                                                                     OperatorPatch(role=r))),
            in_unit(rt, lambda uow, r=role_id: role_use.delete_role(rt, uow, admin, r)),
            return_exceptions=True,
        )
        assert all(r is None or isinstance(r, Operator | Conflict | Invalid) for r in results), results
        held = await role_of(rt, world.operator_id)
        async with rt.db.unit_of_work(readonly=True) as uow:
            assert await roles.role_definition(uow, world.workspace_id, held) is not None, (round_, results)
        outcomes.add("assigned" if held == role_id else "deleted")
        if held == role_id:  # give the built-in role back, so that the next round starts alike
            async with rt.db.unit_of_work() as uow:
                await user_accounts.update_operator(rt, uow, admin, world.operator_id, OperatorPatch(role="operator"))
    assert outcomes  # either may win a round; every round ended consistent
