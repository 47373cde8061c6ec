"""Login limits during the session, at the edge (ADR 0016).

A session keeps to its operator's login limits for as long as it is used, with the address of
each request and of each socket (``web/client_address.py``, after trusted proxies):

- ``check_request``: every page and API request that resolves a session (``web/api/deps.py``);
  outside the limits the request is refused (401, with the reason) and the session revoked;
- ``refuse_socket``: before a console socket is accepted (nothing is sent to it when refused);
- ``watch``: a task per open console socket that re-checks every ``login_limits_check_s``
  (20 s by default), so a window that ends or a session used from elsewhere ends it within
  that time: the session is revoked (its sockets on every node are told through the ``revoke``
  event) and this socket is closed at once with 4403, even if that event were lost.

Revocation writes in a unit of its own. A request's check runs inside the request's unit, which
on SQLite may hold the single write lock, so there the revocation runs just after, in a task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from starlette.requests import HTTPConnection

from confide.auth.actors import OperatorActor
from confide.core import clock
from confide.core.db import UnitOfWork
from confide.core.errors import Unauthorized
from confide.core.runtime import Runtime
from confide.login_limits import service as login_limits
from confide.login_limits.rules import MESSAGES
from confide.realtime.connections import OperatorConnection
from confide.web.client_address import client_address

log = structlog.get_logger(__name__)
_ending: set[asyncio.Task[None]] = set()
_ending_sessions: set[str | None] = set()


async def end_session(rt: Runtime, actor: OperatorActor, reason: str) -> None:
    try:
        async with rt.db.unit_of_work() as uow:
            await login_limits.end_session(rt, uow, actor, reason)
    except Exception:  # the session is refused anyway at its next use; never break the caller
        log.exception("login_limits_revoke_failed", operator_id=actor.operator_id)
    else:
        log.info("session_revoked", operator_id=actor.operator_id, reason="login_limits", limit=reason)


def _end_soon(rt: Runtime, actor: OperatorActor, reason: str) -> None:
    if actor.session_id in _ending_sessions:
        return  # already being revoked (requests in flight together)
    session_id = actor.session_id
    _ending_sessions.add(session_id)

    def done(task: asyncio.Task[None]) -> None:
        _ending.discard(task)
        _ending_sessions.discard(session_id)

    task = asyncio.get_running_loop().create_task(end_session(rt, actor, reason))
    _ending.add(task)
    task.add_done_callback(done)


async def check_request(conn: HTTPConnection, uow: UnitOfWork, actor: OperatorActor) -> None:
    """Raise ``Unauthorized`` (and revoke the session) when this request is outside the limits."""
    reason = await login_limits.session_denial(uow, actor, client_address(conn), clock.now())
    if reason is not None:
        _end_soon(conn.app.state.confide.rt, actor, reason)
        raise Unauthorized(MESSAGES[reason])


async def refuse_socket(rt: Runtime, actor: OperatorActor, address: str | None) -> bool:
    """Whether a console socket must be refused (the session is then revoked)."""
    async with rt.db.unit_of_work(readonly=True) as uow:
        reason = await login_limits.session_denial(uow, actor, address, clock.now())
    if reason is None:
        return False
    await end_session(rt, actor, reason)
    return True


async def _watch(
    rt: Runtime, conn: OperatorConnection, address: str | None, close: Callable[[], Awaitable[None]]
) -> None:
    interval = rt.settings.login_limits_check_s
    while True:
        await asyncio.sleep(interval)
        actor = conn.actor  # current: reloaded when the role changes
        try:
            async with rt.db.unit_of_work(readonly=True) as uow:
                reason = await login_limits.session_denial(uow, actor, address, clock.now())
        except Exception:  # a database hiccup: try again next time
            log.warning("login_limits_check_failed", operator_id=actor.operator_id)
            continue
        if reason is not None:
            await end_session(rt, actor, reason)
            await close()
            return


def watch(
    rt: Runtime, conn: OperatorConnection, address: str | None, close: Callable[[], Awaitable[None]]
) -> asyncio.Task[None]:
    """Start the periodic check of an open console socket; cancel the task when the socket ends."""
    return asyncio.get_running_loop().create_task(_watch(rt, conn, address, close), name="login-limits")
