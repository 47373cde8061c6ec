"""Passwords of local accounts: changing one's own (in steps around the off-loop checks), the history a
new one may not repeat, and the shell's reset.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select

from confide.audit import service as audit
from confide.auth import throttle
from confide.auth.actors import OperatorActor
from confide.core import clock, crypto
from confide.core.db import UnitOfWork
from confide.core.errors import (
    CommitAndRaise,
    Conflict,
    Invalid,
    NotFound,
    RateLimited,
    Unauthorized,
)
from confide.core.runtime import Runtime
from confide.realtime import events
from confide.realtime.events import Revoke
from confide.users.account_rules import account_rules, check_password_policy
from confide.users.login import account_throttle_key, throttle_rule
from confide.users.models import Operator, PasswordHistory
from confide.users.operators import lock_operator
from confide.users.schemas import check_email
from confide.users.sessions import publish_revoked, revoke_sessions


async def reset_password(rt: Runtime, uow: UnitOfWork, *, email: str, password: str, password_hash: str) -> Operator:
    """Shell recovery (``confide reset-password``): a new password (``password_hash``, made off the
    loop beforehand, of ``password``, checked here against the policy), to be changed at the next
    log-in; every session ends (open consoles are told at once, and re-check within seconds); the
    account's throttle counts are forgotten."""
    try:
        email = check_email(email)
    except ValueError:
        raise NotFound("no account has this e-mail address") from None
    op = await uow.session.scalar(select(Operator).where(Operator.email == email).with_for_update())
    if op is None:
        raise NotFound("no account has this e-mail address")
    check_password_policy(await account_rules(rt, uow, op.workspace_id), password, email=op.email)
    await store_password(rt, uow, op, password_hash, must_change=True)
    await revoke_sessions(uow, op.id, reason="reset")
    account_key = account_throttle_key(rt, email)
    await throttle.succeeded(uow, forget=[account_key])
    events.publish(rt, uow, Revoke(op.id))
    await audit.record(
        rt,
        uow,
        "users.password_reset",
        actor_type="system",
        workspace_id=op.workspace_id,
        target_type="operator",
        target_id=op.id,
        detail={"via": "cli", "sessions_ended": True},
    )
    await uow.session.flush()
    return op


async def store_password(rt: Runtime, uow: UnitOfWork, op: Operator, new_hash: str, *, must_change: bool) -> None:
    """Keep the old hash in the history (the newest ``password_history`` kept), set the new one."""
    keep = rt.settings.password_history
    if keep > 0 and op.password_hash:
        uow.session.add(
            PasswordHistory(
                id=crypto.new_id(), operator_id=op.id, password_hash=op.password_hash, created_at=clock.now()
            )
        )
        await uow.session.flush()
        old = await uow.session.scalars(
            select(PasswordHistory.id)
            .where(PasswordHistory.operator_id == op.id)
            .order_by(PasswordHistory.created_at.desc(), PasswordHistory.id)
            .offset(keep)
        )
        stale = list(old.all())
        if stale:
            await uow.session.execute(delete(PasswordHistory).where(PasswordHistory.id.in_(stale)))
    op.password_hash = new_hash
    op.password_changed_at = clock.now()
    op.must_change_password = must_change
    await uow.session.flush()


async def password_history(uow: UnitOfWork, operator_id: str) -> list[str]:
    """The hashes a new password may not match: the current one and the kept earlier ones."""
    op = await uow.session.get(Operator, operator_id)
    rows = await uow.session.scalars(
        select(PasswordHistory.password_hash).where(PasswordHistory.operator_id == operator_id)
    )
    return ([op.password_hash] if op is not None else []) + list(rows.all())


async def password_history_of_email(uow: UnitOfWork, email: str) -> list[str]:
    """``password_history`` of the account with this e-mail ([] when none has it)."""
    try:
        email = check_email(email)
    except ValueError:
        return []
    operator_id = await uow.session.scalar(select(Operator.id).where(Operator.email == email))
    return await password_history(uow, operator_id) if operator_id else []


@dataclass(frozen=True, slots=True)
class PasswordChange:
    """Step 1 of a password change: what the off-loop checks need."""

    operator_id: str
    current_hash: str
    history: list[str]
    throttle_key: str


async def begin_password_change(
    rt: Runtime, uow: UnitOfWork, actor: OperatorActor, *, new_password: str
) -> PasswordChange:
    """In a short write unit: the policy (length, common list, not the e-mail), then the attempt is
    counted under the account's throttle key, like a log-in (429 while it must wait)."""
    op = await uow.session.get(Operator, actor.operator_id)
    if op is None or op.disabled:
        raise Unauthorized("not logged in")
    check_password_policy(await account_rules(rt, uow, op.workspace_id), new_password, email=op.email)
    now = clock.now()
    key = account_throttle_key(rt, op.email)
    blocked = await throttle.blocked_until(uow, [key], now)
    if blocked is not None or await throttle.count_attempt(uow, key, throttle_rule(rt, address=False), now) is None:
        wait = throttle.retry_after_s(blocked or now + timedelta(seconds=1), now)
        raise RateLimited(f"too many failed attempts; try again in {wait} seconds")
    history = await password_history(uow, op.id)
    return PasswordChange(op.id, op.password_hash, history[: 1 + rt.settings.password_history], key)


async def change_password(
    rt: Runtime,
    uow: UnitOfWork,
    actor: OperatorActor,
    plan: PasswordChange,
    *,
    current_ok: bool,
    reused: bool,
    new_hash: str,
) -> None:
    """Step 3 (write unit), after the checks ran off the loop: the current password was right and
    the new one is none of the last ones. Ends every other session of the operator."""
    op = await lock_operator(uow, actor.operator_id)
    if op is None or op.disabled:
        raise Unauthorized("not logged in")
    if not current_ok:
        await audit.record(
            rt,
            uow,
            "auth.password_change",
            actor=actor,
            target_type="operator",
            target_id=op.id,
            outcome="failed",
            detail={"reason": "wrong_password"},
        )
        raise CommitAndRaise(Invalid("the current password is not right"))
    if reused:
        await throttle.succeeded(uow, forget=[plan.throttle_key])  # the current password was right
        raise CommitAndRaise(
            Invalid(f"choose a password you have not used before (the last {rt.settings.password_history} count)")
        )
    if op.password_hash != plan.current_hash:
        raise Conflict("the password was changed meanwhile; try again")
    await store_password(rt, uow, op, new_hash, must_change=False)
    await throttle.succeeded(uow, forget=[plan.throttle_key])
    publish_revoked(
        rt, uow, op.id, await revoke_sessions(uow, op.id, except_session_id=actor.session_id, reason="password")
    )
    await audit.record(rt, uow, "auth.password_change", actor=actor, target_type="operator", target_id=op.id)
