"""Operator login and logout (cookie session)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from confide.core.runtime import Runtime
from confide.users import service as users
from confide.users.models import Operator
from confide.users.schemas import LoginIn
from confide.web.api.deps import SESSION_COOKIE, OperatorDep, StateDep

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


def set_session_cookie(response: Response, token: str, *, ttl_s: int, secure: bool) -> None:
    response.set_cookie(SESSION_COOKIE, token, max_age=ttl_s, httponly=True, samesite="strict", secure=secure, path="/")


async def password_login(rt: Runtime, *, email: str, password: str) -> tuple[str, Operator]:
    """A log-in in three steps so that argon2 (~0.3 s) never runs on the event loop nor inside a
    transaction: a read unit loads the hash, the check runs in the hashing threads with no unit
    open, then a short write unit records the outcome (failed-login counter, or a new session)."""
    async with rt.db.unit_of_work(readonly=True) as uow:
        attempt = await users.login_attempt(uow, email=email)
    ok = await users.check_password(rt, attempt, password)
    async with rt.db.unit_of_work() as uow:
        return await users.record_login(rt, uow, attempt, ok=ok)


@router.post("/login")
async def login(body: LoginIn, response: Response, state: StateDep) -> dict[str, Any]:
    rt = state.rt
    token, op = await password_login(rt, email=body.email, password=body.password)
    async with rt.db.unit_of_work(readonly=True) as uow:
        view = await users.operator_view(uow, op)
    set_session_cookie(response, token, ttl_s=rt.settings.session_ttl_s, secure=rt.settings.cookie_secure)
    return view


@router.post("/logout", status_code=204)
async def logout(actor: OperatorDep, response: Response, state: StateDep) -> None:
    async with state.rt.db.unit_of_work() as uow:
        await users.logout(state.rt, uow, actor)
    response.delete_cookie(SESSION_COOKIE, path="/")


@router.get("/me")
async def me(actor: OperatorDep, state: StateDep) -> dict[str, Any]:
    async with state.rt.db.unit_of_work(readonly=True) as uow:
        op = await users.get_operator(uow, actor.operator_id)
        assert op is not None
        return await users.operator_view(uow, op)
