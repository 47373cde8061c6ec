"""Dependencies shared by the JSON routers: the process state, the calling operator, and the unit
of work of the request, opened here (never by hand in a router) together with its actor.

``ReadUnit`` / ``WriteUnit`` give ``(uow, actor)``: one transaction per request that also resolves
the session, committed (write) or closed (read) *before* the response is sent (``scope="function"``),
rolled back when the handler raises. ``AnonymousRead`` / ``AnonymousWrite``: the same without an actor.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, NamedTuple

from fastapi import Depends, Request

from confide.auth.actors import OperatorActor
from confide.core.db import UnitOfWork
from confide.core.errors import Unauthorized
from confide.users import sessions as user_sessions
from confide.web import login_guard
from confide.web.security import session_token
from confide.web.state import State


class Unit(NamedTuple):
    uow: UnitOfWork
    actor: OperatorActor


def get_state(request: Request) -> State:
    state: State = request.app.state.confide
    return state


# Where an operator who must change their password may still go (everything else: 403 / redirect).
PASSWORD_CHANGE_PATHS = frozenset({"/app/account/password", "/logout", "/api/v1/auth/password", "/api/v1/auth/logout"})


def _token(request: Request) -> str | None:
    return session_token(request.cookies, secure=get_state(request).rt.settings.cookie_secure)


async def _actor(request: Request, uow: UnitOfWork) -> OperatorActor:
    cached = getattr(request.state, "operator", None)
    if isinstance(cached, OperatorActor):
        return cached
    token = _token(request)
    if not token:
        raise Unauthorized("not logged in")
    rt = get_state(request).rt
    info = await user_sessions.resolve_session_info(
        rt, uow, token, password_change=request.url.path in PASSWORD_CHANGE_PATHS
    )
    actor = info.actor
    await login_guard.check_request(request, uow, actor)  # login limits: address and time (ADR 0016)
    request.state.operator = actor  # the access log names the operator by id
    if info.touch_due and actor.session_id is not None:
        session_id = actor.session_id

        async def touch() -> None:  # after this unit: at most one small write per session a minute
            async with rt.db.unit_of_work() as touch_uow:
                await user_sessions.touch_sessions(rt, touch_uow, [session_id])

        uow.after_commit(touch)
    return actor


async def current_operator(request: Request) -> OperatorActor:
    """The logged-in operator (its own read unit; cached on the request)."""
    cached = getattr(request.state, "operator", None)
    if isinstance(cached, OperatorActor):
        return cached
    if not _token(request):
        raise Unauthorized("not logged in")
    async with get_state(request).rt.db.unit_of_work(readonly=True) as uow:
        return await _actor(request, uow)


@contextlib.asynccontextmanager
async def operator_unit(request: Request, *, write: bool) -> AsyncIterator[Unit]:
    """The request's unit with its actor, for handlers that must catch a failure *after* the
    rollback (dashboard forms re-render what was typed)."""
    async with get_state(request).rt.db.unit_of_work(readonly=not write) as uow:
        yield Unit(uow, await _actor(request, uow))


async def _read_unit(request: Request) -> AsyncIterator[Unit]:
    async with operator_unit(request, write=False) as unit:
        yield unit


async def _write_unit(request: Request) -> AsyncIterator[Unit]:
    async with operator_unit(request, write=True) as unit:
        yield unit


async def _anonymous_read(request: Request) -> AsyncIterator[UnitOfWork]:
    async with get_state(request).rt.db.unit_of_work(readonly=True) as uow:
        yield uow


async def _anonymous_write(request: Request) -> AsyncIterator[UnitOfWork]:
    async with get_state(request).rt.db.unit_of_work() as uow:
        yield uow


StateDep = Annotated[State, Depends(get_state)]
OperatorDep = Annotated[OperatorActor, Depends(current_operator)]
ReadUnit = Annotated[Unit, Depends(_read_unit, scope="function")]
WriteUnit = Annotated[Unit, Depends(_write_unit, scope="function")]
AnonymousRead = Annotated[UnitOfWork, Depends(_anonymous_read, scope="function")]
AnonymousWrite = Annotated[UnitOfWork, Depends(_anonymous_write, scope="function")]
