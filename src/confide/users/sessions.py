"""Operator sessions (ADR 0012): opening one (the last step of every log-in), resolving a token to its
actor, listing, ending and revoking them; open consoles are told through the ``revoke`` event.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, or_, select, update

from confide.audit import service as audit
from confide.auth.actors import OperatorActor
from confide.auth.sessions import alive, describe_client
from confide.core import clock, crypto
from confide.core.db import UnitOfWork
from confide.core.errors import (
    DomainError,
    Forbidden,
    NotFound,
    Unauthorized,
)
from confide.core.runtime import Runtime
from confide.permissions import policy
from confide.permissions.access import access_operator_by_id
from confide.realtime import events
from confide.realtime.events import Revoke
from confide.users import roles
from confide.users.account_rules import account_rules
from confide.users.login import WRONG
from confide.users.models import Operator, OperatorSession
from confide.users.operators import department_ids_of, lock_operator


# ---------------------------------------------------------------- sessions (ADR 0012)
class PasswordChangeRequired(Forbidden):
    """A one-time, reset or expired password: only the password change (and log-out) may go on."""

    def __init__(self) -> None:
        super().__init__("you must change your password before you go on")


@dataclass(frozen=True, slots=True)
class SessionInfo:
    actor: OperatorActor
    must_change_password: bool
    touch_due: bool  # last_seen_at is older than settings.session_touch_s: write it (once)


async def open_session(
    rt: Runtime, uow: UnitOfWork, operator_id: str, *, method: str, user_agent: str | None = None
) -> str:
    """The last step of every log-in (whatever its first factor): a new session, a new token. The
    operator's row is locked, so that two log-ins at once cannot both slip under the session cap
    (the oldest sessions end when it is exceeded). Audited as the successful log-in."""
    op = await lock_operator(uow, operator_id)
    if op is None or op.disabled:
        raise Unauthorized(WRONG)
    rules = await account_rules(rt, uow, op.workspace_id)
    now = clock.now()
    if rules.max_sessions > 0:
        live = [s for s in await _sessions_of(uow, op.id) if _alive(s, now)]
        for old in live[: max(0, len(live) - rules.max_sessions + 1)]:
            old.revoked_at, old.end_reason = now, "cap"
            events.publish(rt, uow, Revoke(op.id, old.id))
    op.last_login_at, op.last_login_method = now, method[:20]  # the account review's "last login"
    token = crypto.random_token()
    session_id = crypto.new_id()
    uow.session.add(
        OperatorSession(
            id=session_id,
            token_digest=crypto.token_digest(token),
            operator_id=op.id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(seconds=rt.settings.session_ttl_s),
            idle_timeout_s=rules.idle_timeout_s,
            method=method[:16],
            client=describe_client(user_agent),
        )
    )
    await uow.session.flush()
    await audit.record(
        rt,
        uow,
        "auth.login",
        actor_type="operator",
        actor_id=op.id,
        workspace_id=op.workspace_id,
        target_type="session",
        target_id=session_id,
        detail={"method": method[:16]},
    )
    return token


def _alive(sess: OperatorSession, now: datetime) -> bool:
    return alive(
        revoked_at=sess.revoked_at,
        expires_at=sess.expires_at,
        last_seen_at=sess.last_seen_at,
        created_at=sess.created_at,
        idle_timeout_s=sess.idle_timeout_s,
        now=now,
    )


async def _sessions_of(uow: UnitOfWork, operator_id: str) -> list[OperatorSession]:
    rows = await uow.session.scalars(
        select(OperatorSession)
        .where(OperatorSession.operator_id == operator_id, OperatorSession.revoked_at.is_(None))
        .order_by(OperatorSession.created_at, OperatorSession.id)
    )
    return list(rows.all())


async def resolve_session_info(
    rt: Runtime | None, uow: UnitOfWork, token: str | None, *, password_change: bool = False
) -> SessionInfo:
    """The session's operator. ``password_change``: the caller is the password change itself
    (or log-out), which an operator who must change their password may still reach."""
    if not token or len(token) > 200:
        raise Unauthorized("not logged in")
    row = await uow.session.scalar(
        select(OperatorSession).where(OperatorSession.token_digest == crypto.token_digest(token))
    )
    now = clock.now()
    if row is None or not _alive(row, now):
        raise Unauthorized("not logged in")
    op = await uow.session.get(Operator, row.operator_id)
    if op is None or op.disabled:
        raise Unauthorized("not logged in")
    if op.must_change_password and not password_change:
        raise PasswordChangeRequired()
    actor = await _actor(uow, op, row)
    touch_s = rt.settings.session_touch_s if rt is not None else 60.0
    due = row.last_seen_at is None or row.last_seen_at + timedelta(seconds=touch_s) <= now
    return SessionInfo(actor, op.must_change_password, due)


async def resolve_session(uow: UnitOfWork, token: str | None) -> OperatorActor:
    return (await resolve_session_info(None, uow, token)).actor


async def actor_for(uow: UnitOfWork, operator_id: str, *, session_id: str | None = None) -> OperatorActor:
    op = await uow.session.get(Operator, operator_id)
    if op is None or op.disabled:
        raise Unauthorized("not logged in")
    sess = None
    if session_id is not None:
        sess = await uow.session.get(OperatorSession, session_id)
        if sess is None or sess.operator_id != op.id or not _alive(sess, clock.now()):
            raise Unauthorized("not logged in")
    return await _actor(uow, op, sess)


async def _actor(uow: UnitOfWork, op: Operator, sess: OperatorSession | None) -> OperatorActor:
    role = await roles.role_definition(uow, op.workspace_id, op.role)  # None: a role that is gone grants nothing
    return OperatorActor(
        operator_id=op.id,
        workspace_id=op.workspace_id,
        role=role.key if role is not None else op.role,
        department_ids=frozenset(await department_ids_of(uow, op.id)),
        name=op.name,
        permissions=frozenset(p.value for p in role.permissions) if role is not None else frozenset(),
        scope=role.scope.value if role is not None else policy.Scope.OWN.value,
        session_id=sess.id if sess is not None else None,
        session_expires_at=sess.expires_at if sess is not None else None,
    )


async def touch_sessions(rt: Runtime, uow: UnitOfWork, session_ids: Iterable[str]) -> None:
    """Seen now: one UPDATE for them all, skipping those written within ``session_touch_s``."""
    ids = list(session_ids)
    if not ids:
        return
    now = clock.now()
    recent = now - timedelta(seconds=rt.settings.session_touch_s)
    await uow.session.execute(
        update(OperatorSession)
        .where(
            OperatorSession.id.in_(ids),
            OperatorSession.revoked_at.is_(None),
            or_(OperatorSession.last_seen_at.is_(None), OperatorSession.last_seen_at <= recent),
        )
        .values(last_seen_at=now)
        .execution_options(synchronize_session=False)
    )


async def live_sessions(uow: UnitOfWork, session_ids: Iterable[str]) -> set[str]:
    """Of these sessions, those still alive (not ended, not expired, not idle, operator enabled)."""
    ids = list(session_ids)
    if not ids:
        return set()
    now = clock.now()
    rows = await uow.session.execute(
        select(
            OperatorSession.id,
            OperatorSession.revoked_at,
            OperatorSession.expires_at,
            OperatorSession.last_seen_at,
            OperatorSession.created_at,
            OperatorSession.idle_timeout_s,
        )
        .join(Operator, Operator.id == OperatorSession.operator_id)
        .where(OperatorSession.id.in_(ids), OperatorSession.revoked_at.is_(None), Operator.disabled.is_(False))
    )
    return {
        r.id
        for r in rows
        if alive(
            revoked_at=r.revoked_at,
            expires_at=r.expires_at,
            last_seen_at=r.last_seen_at,
            created_at=r.created_at,
            idle_timeout_s=r.idle_timeout_s,
            now=now,
        )
    }


def _session_view(sess: OperatorSession, current: str | None) -> dict[str, Any]:
    return {
        "id": sess.id,
        "created_at": sess.created_at,
        "last_seen_at": sess.last_seen_at or sess.created_at,
        "expires_at": sess.expires_at,
        "method": sess.method,
        "client": sess.client or "Unknown",
        "current": sess.id == current,
    }


async def list_sessions(uow: UnitOfWork, actor: OperatorActor, operator_id: str | None = None) -> list[dict[str, Any]]:
    """The live sessions of the caller, or (``Permission.USERS_MANAGE``) of an operator of the
    workspace; newest first."""
    target = await _session_owner(uow, actor, operator_id)
    now = clock.now()
    live = [s for s in await _sessions_of(uow, target) if _alive(s, now)]
    return [_session_view(s, actor.session_id) for s in reversed(live)]


async def _session_owner(uow: UnitOfWork, actor: OperatorActor, operator_id: str | None) -> str:
    if operator_id is None or operator_id == actor.operator_id:
        return actor.operator_id
    policy.require(actor, policy.Permission.USERS_MANAGE)
    return (await access_operator_by_id(uow.session, actor, operator_id)).id


async def end_session(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, session_id: object) -> str:
    """End one session: one's own, or (``Permission.USERS_MANAGE``) any of the workspace's. Its
    open consoles close at once (the event) or within ``session_check_s`` (the re-check)."""
    sess = (
        await uow.session.get(OperatorSession, session_id, with_for_update=True)
        if isinstance(session_id, str)
        else None
    )
    if sess is None or sess.revoked_at is not None:
        raise NotFound("session not found")
    if sess.operator_id != actor.operator_id:
        try:
            await _session_owner(uow, actor, sess.operator_id)
        except DomainError:
            raise NotFound("session not found") from None
    sess.revoked_at, sess.end_reason = clock.now(), "ended"
    await uow.session.flush()
    events.publish(rt, uow, Revoke(sess.operator_id, sess.id))
    await audit.record(
        rt,
        uow,
        "auth.session_end",
        actor=actor,
        target_type="session",
        target_id=sess.id,
        detail={"operator_id": sess.operator_id, "own": sess.operator_id == actor.operator_id},
    )
    return sess.operator_id


async def end_other_sessions(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, operator_id: str | None = None) -> int:
    """End every session of the caller but the current one, or (``USERS_MANAGE``) all of an operator's."""
    target = await _session_owner(uow, actor, operator_id)
    keep = actor.session_id if target == actor.operator_id else None
    ended = await revoke_sessions(uow, target, except_session_id=keep, reason="ended")
    publish_revoked(rt, uow, target, ended)
    await audit.record(
        rt,
        uow,
        "auth.session_end",
        actor=actor,
        target_type="operator",
        target_id=target,
        detail={"count": len(ended), "own": target == actor.operator_id},
    )
    return len(ended)


async def logout(rt: Runtime, uow: UnitOfWork, actor: OperatorActor) -> None:
    if actor.session_id:
        await uow.session.execute(
            update(OperatorSession)
            .where(OperatorSession.id == actor.session_id, OperatorSession.revoked_at.is_(None))
            .values(revoked_at=clock.now(), end_reason="logout")
        )
        events.publish(rt, uow, Revoke(actor.operator_id, actor.session_id))
    await audit.record(rt, uow, "auth.logout", actor=actor, target_type="session", target_id=actor.session_id)


async def revoke_sessions(
    uow: UnitOfWork,
    operator_id: str,
    *,
    except_session_id: str | None = None,
    reason: str = "revoked",
    method: str | None = None,
) -> list[str]:
    """End the operator's sessions (all, or all but ``except_session_id``): on a password, role,
    two-factor or permission change, and when the account is disabled. Open consoles on every node
    notice within ``session_check_s`` even without an event; callers also publish ``revoke`` for
    at once (``publish_revoked``). ``method``: only the sessions opened by that first factor
    (``ldap``, ``oidc``: a directory turned off or deleted). Returns the ids of those that ended."""
    query = select(OperatorSession.id).where(
        OperatorSession.operator_id == operator_id, OperatorSession.revoked_at.is_(None)
    )
    if method is not None:
        query = query.where(OperatorSession.method == method)
    if except_session_id is not None:
        query = query.where(OperatorSession.id != except_session_id)
    ids = list((await uow.session.scalars(query.with_for_update())).all())
    if ids:
        await uow.session.execute(
            update(OperatorSession)
            .where(OperatorSession.id.in_(ids), OperatorSession.revoked_at.is_(None))
            .values(revoked_at=clock.now(), end_reason=reason[:16])
            .execution_options(synchronize_session=False)
        )
    return ids


def publish_revoked(rt: Runtime, uow: UnitOfWork, operator_id: str, session_ids: Iterable[str]) -> None:
    """Tell open consoles of these sessions, on every node, once committed."""
    for session_id in session_ids:
        events.publish(rt, uow, Revoke(operator_id, session_id))


def has_open_session(operator_id: Any) -> Any:
    """A clause: the operator (an id or an id column) has a session neither revoked nor expired."""
    return exists().where(
        OperatorSession.operator_id == operator_id,
        OperatorSession.revoked_at.is_(None),
        OperatorSession.expires_at > clock.now(),
    )
