"""Dependencies shared by the JSON routers: the process state and the calling operator."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from confide.auth.actors import OperatorActor
from confide.core.errors import Unauthorized
from confide.users import service as users
from confide.web.state import State

SESSION_COOKIE = "confide_session"


def get_state(request: Request) -> State:
    state: State = request.app.state.confide
    return state


async def current_operator(request: Request) -> OperatorActor:
    state = get_state(request)
    cached = getattr(request.state, "operator", None)
    if isinstance(cached, OperatorActor):
        return cached
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise Unauthorized("not logged in")
    async with state.rt.db.unit_of_work(readonly=True) as uow:
        actor = await users.resolve_session(uow, token)
    request.state.operator = actor
    return actor


StateDep = Annotated[State, Depends(get_state)]
OperatorDep = Annotated[OperatorActor, Depends(current_operator)]
