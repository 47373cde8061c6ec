"""Operator login and logout (cookie session)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from confide.users import service as users
from confide.users.schemas import LoginIn
from confide.web.api.deps import ReadUnit, StateDep, WriteUnit
from confide.web.api.docs import errors
from confide.web.client_address import client_address
from confide.web.login_flow import LoginClient, password_login
from confide.web.security import clear_session_cookie, set_session_cookie

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post("/login", responses=errors(400, 401, 403, 422, 429))
async def login(body: LoginIn, request: Request, response: Response, state: StateDep) -> dict[str, Any]:
    rt = state.rt
    client = LoginClient(address=client_address(request))
    result = await password_login(rt, email=body.email, password=body.password, client=client)
    async with rt.db.unit_of_work(readonly=True) as uow:
        op = await users.get_operator(uow, result.operator_id)
        assert op is not None  # the session was just opened for it
        view = await users.operator_view(uow, op)
    set_session_cookie(response, result.token, ttl_s=rt.settings.session_ttl_s, secure=rt.settings.cookie_secure)
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
