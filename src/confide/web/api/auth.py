"""Operator login and logout (cookie session)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from confide.core.runtime import Runtime
from confide.two_factor import service as two_factor
from confide.users import operators as user_operators
from confide.users import sessions as user_sessions
from confide.users.account_schemas import PasswordChangeIn
from confide.users.schemas import LoginIn, SecondFactorIn
from confide.web.api.deps import ReadUnit, StateDep, WriteUnit, current_operator
from confide.web.api.docs import errors
from confide.web.client_address import client_address
from confide.web.directory_login import directory_login
from confide.web.login_flow import LoginClient, change_own_password, complete_second_factor, password_login
from confide.web.permits import authenticated, public
from confide.web.security import clear_session_cookie, set_session_cookie

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post("/login", responses=errors(400, 401, 403, 422, 429), dependencies=[public()])
async def login(body: LoginIn, request: Request, response: Response, state: StateDep) -> dict[str, Any]:
    """The same log-in as the console's form (``web.login_flow``): the directory's password when the
    e-mail is a directory account's, else the local one; the throttle, the login limits, then the
    second factor. An account with a second factor gets no session here: 401 with code
    ``second_factor_required``, a ``ticket`` and ``expires_in`` (seconds); send the ticket and a
    code to ``POST /api/v1/auth/login/second-factor``. One that must first set a second factor up:
    401 ``second_factor_enrolment_required`` (the console does that)."""
    rt = state.rt
    client = LoginClient(address=client_address(request), user_agent=request.headers.get("user-agent"))
    result = await directory_login(
        rt, email=body.email, password=body.password, client=client
    ) or await password_login(rt, email=body.email, password=body.password, client=client)
    if result.second_factor is not None:  # no session without the second factor
        if result.second_factor.stage == two_factor.ENROL:
            raise two_factor.SecondFactorEnrolmentRequired("set up a second factor first: log in through the console")
        raise two_factor.SecondFactorRequired("a second factor is needed", result.second_factor.token)
    return await _session_answer(rt, response, result.operator_id, result.token)


@router.post("/login/second-factor", responses=errors(400, 401, 422, 429), dependencies=[public()])
async def login_second_factor(body: SecondFactorIn, response: Response, state: StateDep) -> dict[str, Any]:
    """The second step of an API log-in: the ticket from ``second_factor_required`` and a TOTP or
    recovery code. A wrong code is 401 (the ticket allows a few); an expired or spent ticket is 401
    ``two_factor_expired`` (log in again). The session opens with the ticket spent, once."""
    rt = state.rt
    done = await complete_second_factor(rt, lambda uow: two_factor.verify_code(rt, uow, body.ticket, body.code))
    return await _session_answer(rt, response, done.operator_id, done.token)


async def _session_answer(rt: Runtime, response: Response, operator_id: str, token: str) -> dict[str, Any]:
    async with rt.db.unit_of_work(readonly=True) as uow:
        op = await user_operators.get_operator(uow, operator_id)
        assert op is not None  # the session was just opened for it
        view = await user_operators.operator_view(uow, op)
    set_session_cookie(response, token, ttl_s=rt.settings.session_ttl_s, secure=rt.settings.cookie_secure)
    return view


@router.post("/logout", status_code=204, responses=errors(401, 403), dependencies=[authenticated()])
async def logout(response: Response, state: StateDep, unit: WriteUnit) -> None:
    await user_sessions.logout(state.rt, unit.uow, unit.actor)
    clear_session_cookie(response, secure=state.rt.settings.cookie_secure)


@router.get("/me", responses=errors(401, 403), dependencies=[authenticated()])
async def me(unit: ReadUnit) -> dict[str, Any]:
    op = await user_operators.get_operator(unit.uow, unit.actor.operator_id)
    assert op is not None
    return await user_operators.operator_view(unit.uow, op)


@router.post(
    "/password", status_code=204, responses=errors(400, 401, 403, 409, 422, 429), dependencies=[authenticated()]
)
async def change_password(body: PasswordChangeIn, state: StateDep, request: Request) -> None:
    """Change one's own password (also when a change is required): the current one, then the new
    one, which must pass the workspace's policy and not be one of the last ones. Every other
    session of the operator ends."""
    actor = await current_operator(request)
    await change_own_password(state.rt, actor, current=body.current_password, new=body.new_password)


@router.get("/sessions", responses=errors(401, 403), dependencies=[authenticated()])
async def sessions(unit: ReadUnit) -> list[dict[str, Any]]:
    """The caller's live sessions, newest first (no addresses are kept)."""
    return await user_sessions.list_sessions(unit.uow, unit.actor)


@router.delete(
    "/sessions/{session_id}", status_code=204, responses=errors(400, 401, 403, 404), dependencies=[authenticated()]
)
async def end_session(session_id: str, state: StateDep, unit: WriteUnit) -> None:
    """End one of one's own sessions (or, with ``users.manage``, anyone's in the workspace)."""
    await user_sessions.end_session(state.rt, unit.uow, unit.actor, session_id)
