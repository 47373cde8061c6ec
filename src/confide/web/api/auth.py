"""Operator login and logout (cookie session)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from confide.core.runtime import Runtime
from confide.users import service as users
from confide.users.models import Operator
from confide.users.schemas import LoginIn
from confide.web.api.deps import ReadUnit, StateDep, WriteUnit
from confide.web.api.docs import errors
from confide.web.security import clear_session_cookie, set_session_cookie

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


async def password_login(rt: Runtime, *, email: str, password: str) -> tuple[str, Operator]:
    """A log-in in three steps so that argon2 (~0.3 s) never runs on the event loop nor inside a
    transaction: a read unit loads the hash, the check runs in the hashing threads with no unit
    open, then a short write unit records the outcome (failed-login counter, or a new session)."""
    async with rt.db.unit_of_work(readonly=True) as uow:
        attempt = await users.login_attempt(uow, email=email)
    ok = await users.check_password(rt, attempt, password)
    async with rt.db.unit_of_work() as uow:
        return await users.record_login(rt, uow, attempt, ok=ok)


@router.post("/login", responses=errors(400, 401, 422, 429))
async def login(body: LoginIn, response: Response, state: StateDep) -> dict[str, Any]:
    rt = state.rt
    token, op = await password_login(rt, email=body.email, password=body.password)
    async with rt.db.unit_of_work(readonly=True) as uow:
        view = await users.operator_view(uow, op)
    set_session_cookie(response, token, ttl_s=rt.settings.session_ttl_s, secure=rt.settings.cookie_secure)
    return view


@router.post("/logout", status_code=204, responses=errors(401, 403))
async def logout(response: Response, state: StateDep, unit: WriteUnit) -> None:
    await users.logout(state.rt, unit.uow, unit.actor)
    clear_session_cookie(response)


@router.get("/me", responses=errors(401))
async def me(unit: ReadUnit) -> dict[str, Any]:
    op = await users.get_operator(unit.uow, unit.actor.operator_id)
    assert op is not None
    return await users.operator_view(unit.uow, op)
