"""Operator accounts, sessions, chosen status and presence (live sockets across nodes, ADR 0005)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import delete, exists, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from confide.audit import service as audit
from confide.auth import passwords, throttle
from confide.auth.actors import OperatorActor
from confide.auth.passwords import PasswordPolicy
from confide.auth.sessions import alive, describe_client
from confide.core import clock, crypto
from confide.core.db import UnitOfWork
from confide.core.errors import (
    CommitAndRaise,
    Conflict,
    DomainError,
    Forbidden,
    Invalid,
    NotFound,
    RateLimited,
    Unauthorized,
)
from confide.core.runtime import Runtime
from confide.permissions import policy
from confide.permissions.access import access_department_by_id, access_operator_by_id, colleagues_emails_visible
from confide.permissions.policy import Permission, require
from confide.realtime import events
from confide.realtime.events import Refresh, Revoke
from confide.realtime.events import operator_topic as operator_topic  # kept for callers not yet moved (ADR 17)
from confide.users import roles
from confide.users.account_schemas import AccountRulesIn
from confide.users.models import AccountPolicy, OperatorDepartment, OperatorSession, PasswordHistory, Presence
from confide.users.models import Operator as Operator  # re-exported: other domains hold operators, never query them
from confide.users.schemas import OperatorIn, OperatorPatch, check_email

log = structlog.get_logger(__name__)


async def create_operator(
    rt: Runtime,
    uow: UnitOfWork,
    *,
    workspace_id: str,
    data: OperatorIn,
    password_hash: str | None = None,
    must_change_password: bool = False,
) -> Operator:
    """``password_hash``: ``data.password`` hashed beforehand, off the loop and outside the unit
    (``await rt.passwords.hash_async(...)``); without it the hash is computed here (shell only).
    ``must_change_password``: a one-time password (set by someone else), changed at first log-in."""
    session = uow.session
    if await session.scalar(select(Operator.id).where(Operator.email == data.email)) is not None:
        raise Conflict("an account with this e-mail exists already")
    check_password_policy(await account_rules(rt, uow, workspace_id), data.password, email=data.email)
    op = Operator(
        id=crypto.new_id(),
        workspace_id=workspace_id,
        email=data.email,
        name=data.name,
        password_hash=password_hash or rt.passwords.hash(data.password),
        role=policy.LEGACY_ROLE_KEYS.get(data.role, data.role),
        status="offline",
        max_chats=data.max_chats,
        disabled=False,
        must_change_password=must_change_password,
        password_changed_at=clock.now(),
        created_at=clock.now(),
    )
    session.add(op)
    await session.flush()
    await _set_departments(uow, op, data.department_ids)
    return op


async def admin_create_operator(
    rt: Runtime, uow: UnitOfWork, actor: OperatorActor, data: OperatorIn, *, password_hash: str | None = None
) -> Operator:
    require(actor, Permission.USERS_MANAGE)
    await _check_role(uow, actor, data.role)
    for dept_id in data.department_ids:
        await access_department_by_id(uow.session, actor, dept_id)
    op = await create_operator(rt, uow, workspace_id=actor.workspace_id, data=data, password_hash=password_hash,
                               must_change_password=True)
    await audit.record(rt, uow, "users.created", actor=actor, target_type="operator", target_id=op.id,
                       detail={"role": op.role, "departments": len(set(data.department_ids))})
    return op


async def update_operator(
    rt: Runtime,
    uow: UnitOfWork,
    actor: OperatorActor,
    operator_id: str,
    patch: OperatorPatch,
    *,
    password_hash: str | None = None,
) -> Operator:
    """``password_hash``: ``patch.password`` hashed beforehand, off the loop (see create_operator)."""
    require(actor, Permission.USERS_MANAGE)
    op = await access_operator_by_id(uow.session, actor, operator_id, for_update=True)
    changes = patch.model_dump(exclude_unset=True, exclude_none=True)
    role_before = op.role
    if "role" in changes:
        changes["role"] = policy.LEGACY_ROLE_KEYS.get(changes["role"], changes["role"])
    if op.id == actor.operator_id and (changes.get("disabled") or changes.get("role", op.role) != op.role):
        raise Invalid("you cannot disable yourself or change your own role")
    await _check_role(uow, actor, op.role, holder=True)  # nobody changes an account more powerful than theirs
    if "role" in changes:
        await _check_role(uow, actor, changes["role"])
    was_disabled = op.disabled
    if "department_ids" in changes:
        for dept_id in changes["department_ids"]:
            await access_department_by_id(uow.session, actor, dept_id)
        await _set_departments(uow, op, changes.pop("department_ids"))
    if "password" in changes:  # someone else's: a one-time password, changed at their next log-in
        new_password = changes.pop("password")
        own = op.id == actor.operator_id
        check_password_policy(await account_rules(rt, uow, op.workspace_id), new_password, email=op.email)
        await _store_password(rt, uow, op, password_hash or rt.passwords.hash(new_password), must_change=not own)
        if not changes.get("disabled"):
            keep = actor.session_id if own else None
            ended = await revoke_sessions(uow, op.id, except_session_id=keep, reason="password")
            publish_revoked(rt, uow, op.id, ended)
    for key, value in changes.items():
        setattr(op, key, value)
    if op.disabled:
        await revoke_sessions(uow, op.id, reason="disabled")
        op.status = "offline"
        events.publish(rt, uow, Revoke(op.id))
    elif op.role != role_before:
        # What they may do changed: every session ends, open consoles close (they log in again).
        await roles.end_sessions(rt, uow, op.id)
        granted = await roles.role_definition(uow, op.workspace_id, op.role)
        if granted is None or not policy.grants(granted, Permission.CHATS_PARTICIPATE):
            op.status = "offline"  # no more chats offered to them
    else:
        # Departments may have changed: open sockets reload who this operator is, at once.
        events.publish(rt, uow, Refresh(op.id))
    await uow.session.flush()
    action = {(False, True): "users.disabled", (True, False): "users.enabled"}.get((was_disabled, op.disabled))
    fields = {key: True for key in patch.model_dump(exclude_unset=True, exclude_none=True) if key != "disabled"}
    if fields or action is None:  # which fields, never their values (a role is a code: kept)
        await audit.record(rt, uow, "users.updated", actor=actor, target_type="operator", target_id=op.id,
                           detail=fields | ({"role_now": op.role} if "role" in fields else {}))
    if action is not None:
        await audit.record(rt, uow, action, actor=actor, target_type="operator", target_id=op.id,
                           detail={"sessions_ended": op.disabled})
    return op


async def check_role_grantable(uow: UnitOfWork, actor: OperatorActor, key: str) -> None:
    """Refuse a role the actor may not give (one that grants more than they hold, or none at all):
    creating, changing and inviting an operator all ask this."""
    await _check_role(uow, actor, key)


async def _check_role(uow: UnitOfWork, actor: OperatorActor, key: str, *, holder: bool = False) -> None:
    """``key`` must name a role of the actor's workspace that grants no more than the actor holds
    (``holder``: the role the operator being changed holds now)."""
    # Giving a role share-locks a custom role's row until the unit ends: it cannot be deleted meanwhile.
    granted = await roles.role_definition(uow, actor.workspace_id, key, lock=not holder)
    if granted is None:
        if holder:
            return  # a role that no longer exists grants nothing
        raise Invalid("choose one of the workspace's roles")
    if not policy.may_grant(actor, granted.permissions, granted.scope):
        raise Forbidden("you cannot give or change a role that grants more than you hold")


async def _set_departments(uow: UnitOfWork, op: Operator, department_ids: list[str]) -> None:
    await uow.session.execute(delete(OperatorDepartment).where(OperatorDepartment.operator_id == op.id))
    for dept_id in dict.fromkeys(department_ids):
        uow.session.add(OperatorDepartment(operator_id=op.id, department_id=dept_id))
    await uow.session.flush()


async def list_operators(uow: UnitOfWork, actor: OperatorActor) -> list[Operator]:
    stmt = select(Operator).where(Operator.workspace_id == actor.workspace_id).order_by(Operator.created_at)
    return list((await uow.session.scalars(stmt)).all())


async def department_ids_of(uow: UnitOfWork, operator_id: str) -> list[str]:
    rows = await uow.session.scalars(
        select(OperatorDepartment.department_id).where(OperatorDepartment.operator_id == operator_id)
    )
    return list(rows.all())


async def list_operator_views(uow: UnitOfWork, actor: OperatorActor) -> list[dict[str, Any]]:
    """Colleagues, as the caller may see them: e-mail addresses only for those with users.read."""
    views = []
    for op in await list_operators(uow, actor):
        view = await operator_view(uow, op)
        # Transfer targets: whether their role lets them chat, in any department or only in theirs.
        granted = await roles.role_definition(uow, op.workspace_id, op.role)
        perms = frozenset(p.value for p in granted.permissions) if granted is not None else frozenset()
        scope = granted.scope.value if granted is not None else policy.Scope.OWN.value
        view["takes_chats"] = policy.may_take_chats(perms, scope, member=True)
        view["takes_any_department"] = policy.may_take_chats(perms, scope, member=False)
        if not colleagues_emails_visible(actor):
            del view["email"]
        views.append(view)
    return views


async def operator_view(uow: UnitOfWork, op: Operator) -> dict[str, Any]:
    return {
        "id": op.id,
        "email": op.email,
        "name": op.name,
        "role": op.role,
        "status": op.status,
        "max_chats": op.max_chats,
        "disabled": op.disabled,
        "department_ids": await department_ids_of(uow, op.id),
    }


# ---------------------------------------------------------------- account rules (ADR 0012)
@dataclass(frozen=True, slots=True)
class AccountRules:
    """A workspace's password and session rules: its row in Settings, or the configuration's defaults."""

    password: PasswordPolicy
    idle_timeout_s: int
    max_sessions: int  # 0: no cap


async def account_rules(rt: Runtime, uow: UnitOfWork, workspace_id: str) -> AccountRules:
    s = rt.settings
    row = await uow.session.get(AccountPolicy, workspace_id)
    if row is None:
        return AccountRules(
            PasswordPolicy(s.password_min_length, s.password_history, s.password_max_age_days),
            s.session_idle_timeout_s,
            s.session_max_per_operator,
        )
    return AccountRules(
        PasswordPolicy(
            max(passwords.MIN_LENGTH, row.password_min_length), s.password_history, row.password_max_age_days
        ),
        row.session_idle_timeout_s,
        row.session_max_per_operator,
    )


def account_rules_view(rules: AccountRules) -> dict[str, Any]:
    return {
        "password_min_length": rules.password.min_length,
        "password_history": rules.password.history,
        "password_max_age_days": rules.password.max_age_days,
        "session_idle_timeout_min": rules.idle_timeout_s // 60,
        "session_max_per_operator": rules.max_sessions,
    }


async def get_account_rules(rt: Runtime, uow: UnitOfWork, actor: OperatorActor) -> dict[str, Any]:
    policy.require(actor, policy.Permission.SETTINGS_READ)
    return account_rules_view(await account_rules(rt, uow, actor.workspace_id))


async def set_account_rules(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, data: AccountRulesIn) -> dict[str, Any]:
    """Settings -> Security -> Passwords. Applies to passwords set and sessions opened from now on
    (an open session keeps the idle timeout it was opened with)."""
    policy.require(actor, policy.Permission.SETTINGS_MANAGE)
    row = await uow.session.get(AccountPolicy, actor.workspace_id, with_for_update=True)
    if row is None:
        row = AccountPolicy(workspace_id=actor.workspace_id)
        uow.session.add(row)
    row.password_min_length = data.password_min_length
    row.password_max_age_days = data.password_max_age_days
    row.session_idle_timeout_s = data.session_idle_timeout_min * 60
    row.session_max_per_operator = data.session_max_per_operator
    row.updated_at = clock.now()
    await uow.session.flush()
    await audit.record(
        rt,
        uow,
        "settings.update",
        actor=actor,
        target_type="workspace",
        target_id=actor.workspace_id,
        detail={"section": "passwords", **data.model_dump()},
    )
    return account_rules_view(await account_rules(rt, uow, actor.workspace_id))


def check_password_policy(rules: AccountRules, password: str, *, email: str | None) -> None:
    """Length, the common-password list, not the e-mail address (the history is checked apart)."""
    found = passwords.problems(password, rules.password, email=email)
    if found:
        raise Invalid(" ".join(found))


# ---------------------------------------------------------------- log-in (ADR 0012)
WRONG = "wrong e-mail or password"
_THROTTLE_SPACE = "login-throttle"  # the blind index's "workspace" for throttle keys


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """What a log-in needs from the database before the (slow, off-loop) password check.

    ``password_hash`` is None when the check must fail anyway (no such account, disabled): the
    caller still spends a dummy check, so that timing tells nothing apart. ``keys``: the throttle
    keys this attempt was counted under (the typed e-mail's, the address's)."""

    operator_id: str | None
    password_hash: str | None
    workspace_id: str | None = None
    reason: str | None = None  # why it must fail: unknown | disabled
    account_key: str = ""
    address_key: str | None = None


def _rule(rt: Runtime, *, address: bool) -> throttle.Rule:
    s = rt.settings
    free = s.login_address_free_failures if address else s.login_free_failures
    return throttle.Rule(free, s.login_delay_base_s, s.login_delay_max_s, s.login_forget_s)


def _account_key(rt: Runtime, email: str) -> str:
    return "a:" + rt.bidx.term(_THROTTLE_SPACE, "email", email.strip().casefold()[:320])


def _throttle_keys(rt: Runtime, email: str | None, address: str | None) -> tuple[str | None, str | None]:
    account = _account_key(rt, email) if email is not None else None
    return account, ("n:" + rt.bidx.term(_THROTTLE_SPACE, "address", address[:64]) if address else None)


@dataclass(frozen=True, slots=True)
class LoginGate:
    """The throttle keys one log-in attempt was counted under (``count_login_attempt``)."""

    account_key: str | None
    address_key: str | None


async def count_login_attempt(
    rt: Runtime,
    uow: UnitOfWork,
    *,
    email: str | None,
    address: str | None,
    method: str,
    operator_id: str | None = None,
    workspace_id: str | None = None,
) -> LoginGate:
    """Count one log-in attempt against the throttle (``auth.throttle``), before its first factor
    is checked, whatever that factor is (the local password, a directory's, a single sign-on
    callback): under the typed e-mail's key (``email``; None for single sign-on, which has none)
    and the client address's. A throttled attempt is audited (``record_login_failure``, reason
    ``throttled``) and refused with 429 (``CommitAndRaise``), the same for every typed e-mail, known
    or not, and with no check of the factor at all."""
    now = clock.now()
    account_key, address_key = _throttle_keys(rt, email, address)
    keys = [k for k in (account_key, address_key) if k]
    blocked = await throttle.blocked_until(uow, keys, now) if keys else None
    if blocked is None:
        for key, rule in ((account_key, _rule(rt, address=False)), (address_key, _rule(rt, address=True))):
            if key and await throttle.count_attempt(uow, key, rule, now) is None:
                blocked = await throttle.blocked_until(uow, [key], now) or now + timedelta(seconds=1)
                break
    if blocked is not None:
        await record_login_failure(
            rt, uow, method=method, reason="throttled", operator_id=operator_id, workspace_id=workspace_id
        )
        wait = throttle.retry_after_s(blocked, now)
        raise CommitAndRaise(RateLimited(f"too many failed log-ins; try again in {wait} seconds"))
    return LoginGate(account_key, address_key)


async def login_passed(uow: UnitOfWork, gate: LoginGate) -> None:
    """The first factor passed: the account's throttle count is forgotten, the address's loses this
    attempt (colleagues behind one address do not throttle each other)."""
    await throttle.succeeded(
        uow,
        forget=[gate.account_key] if gate.account_key else [],
        undo=[gate.address_key] if gate.address_key else [],
    )


async def login_attempt(rt: Runtime, uow: UnitOfWork, *, email: str, address: str | None) -> LoginAttempt:
    """Step 1 of a password log-in, in a short write unit: count the attempt
    (``count_login_attempt``: 429 when throttled), then load the hash to check."""
    try:
        email = check_email(email)
    except ValueError:
        email = email.strip().casefold()
    row = (
        await uow.session.execute(
            select(Operator.id, Operator.workspace_id, Operator.password_hash, Operator.disabled).where(
                Operator.email == email
            )
        )
    ).first()
    gate = await count_login_attempt(
        rt,
        uow,
        email=email,
        address=address,
        method="password",
        operator_id=row.id if row else None,
        workspace_id=row.workspace_id if row else None,
    )
    account_key, address_key = gate.account_key or "", gate.address_key
    if row is None:
        return LoginAttempt(None, None, None, "unknown", account_key, address_key)
    if row.disabled:
        return LoginAttempt(row.id, None, row.workspace_id, "disabled", account_key, address_key)
    return LoginAttempt(row.id, row.password_hash, row.workspace_id, None, account_key, address_key)


async def check_password(rt: Runtime, attempt: LoginAttempt, password: str) -> bool:
    """Step 2, with no transaction open: argon2 in the hashing threads, never on the event loop."""
    return await rt.passwords.verify_async(attempt.password_hash, password)


async def record_login_failure(
    rt: Runtime,
    uow: UnitOfWork,
    *,
    method: str,
    reason: str,
    operator_id: str | None,
    workspace_id: str | None,
    outcome: str = "failed",
) -> None:
    """The one audit row of a log-in that did not succeed, whatever its first factor (password,
    ldap, oidc) and whatever stopped it (docs/audit.md): action ``auth.login``, outcome ``failed``
    (``denied`` when the login limits refused a right first factor), actor and target the account
    when one is known (else an anonymous actor and no target), detail ``{"method", "reason"}`` (a
    reason code, never what was typed)."""
    method = method if method.isalnum() and len(method) <= 16 else "other"
    await audit.record(
        rt,
        uow,
        "auth.login",
        actor_type="operator" if operator_id else "anonymous",
        actor_id=operator_id,
        workspace_id=workspace_id,
        target_type="operator" if operator_id else None,
        target_id=operator_id,
        outcome=outcome,
        detail={"method": method, "reason": reason},
    )
    log.info("login_refused", method=method, reason=reason, operator_id=operator_id)


async def record_login(rt: Runtime, uow: UnitOfWork, attempt: LoginAttempt, *, ok: bool) -> Operator:
    """Step 3, in a short write unit. A failure is audited (the attempt was counted in step 1) and
    answered 401 alike for every reason. A success lifts its throttle counts and returns the
    operator (``open_session`` follows once every other step of the log-in has passed); it is one
    conditional UPDATE, so a password changed or an account disabled while it was checked wins."""
    if not ok or attempt.operator_id is None:
        reason = attempt.reason or "wrong_password"
        await record_login_failure(
            rt,
            uow,
            method="password",
            reason=reason,
            operator_id=attempt.operator_id,
            workspace_id=attempt.workspace_id,
        )
        raise CommitAndRaise(Unauthorized(WRONG))
    op = await uow.session.scalar(
        select(Operator)
        .where(
            Operator.id == attempt.operator_id,
            Operator.password_hash == attempt.password_hash,
            Operator.disabled.is_(False),
        )
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if op is None:  # the password changed, or the account was disabled, while it was checked
        await record_login_failure(
            rt,
            uow,
            method="password",
            reason="changed",
            operator_id=attempt.operator_id,
            workspace_id=attempt.workspace_id,
        )
        raise CommitAndRaise(Unauthorized(WRONG))
    await login_passed(uow, LoginGate(attempt.account_key, attempt.address_key))
    rules = await account_rules(rt, uow, op.workspace_id)
    if passwords.expired(op.password_changed_at, rules.password, clock.now()):
        op.must_change_password = True  # past the workspace's maximum age (when it has one)
        await uow.session.flush()
    return op


async def purge_login_throttle(rt: Runtime, uow: UnitOfWork) -> int:
    """Periodic: throttle keys quiet for longer than ``login_forget_s`` (they would restart from zero)."""
    return await throttle.purge(uow, clock.now() - timedelta(seconds=rt.settings.login_forget_s))


async def rehash_password(uow: UnitOfWork, operator_id: str, *, old_hash: str, new_hash: str) -> None:
    """A log-in found a hash made with older argon2 parameters: store the new one, unless the
    password changed meanwhile (one conditional UPDATE)."""
    await uow.session.execute(
        update(Operator)
        .where(Operator.id == operator_id, Operator.password_hash == old_hash)
        .values(password_hash=new_hash)
        .execution_options(synchronize_session=False)
    )


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
    await _store_password(rt, uow, op, password_hash, must_change=True)
    await revoke_sessions(uow, op.id, reason="reset")
    account_key = _account_key(rt, email)
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


async def _store_password(rt: Runtime, uow: UnitOfWork, op: Operator, new_hash: str, *, must_change: bool) -> None:
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


async def enabled_operator_id_by_email(uow: UnitOfWork, email: str) -> str | None:
    """The id of the enabled account with this e-mail address (shell commands), or None."""
    try:
        email = check_email(email)
    except ValueError:
        return None
    return await uow.session.scalar(select(Operator.id).where(Operator.email == email, Operator.disabled.is_(False)))


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
    key = _account_key(rt, op.email)
    blocked = await throttle.blocked_until(uow, [key], now)
    if blocked is not None or await throttle.count_attempt(uow, key, _rule(rt, address=False), now) is None:
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
    await _store_password(rt, uow, op, new_hash, must_change=False)
    await throttle.succeeded(uow, forget=[plan.throttle_key])
    publish_revoked(
        rt, uow, op.id, await revoke_sessions(uow, op.id, except_session_id=actor.session_id, reason="password")
    )
    await audit.record(rt, uow, "auth.password_change", actor=actor, target_type="operator", target_id=op.id)


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


# -- for directory log-ins (identity.service)
async def operator_by_email(uow: UnitOfWork, email: str) -> Operator | None:
    """The account with this (normalised) e-mail address, if any."""
    return await uow.session.scalar(select(Operator).where(Operator.email == email))


def has_open_session(operator_id: Any) -> Any:
    """A clause: the operator (an id or an id column) has a session neither revoked nor expired."""
    return exists().where(
        OperatorSession.operator_id == operator_id,
        OperatorSession.revoked_at.is_(None),
        OperatorSession.expires_at > clock.now(),
    )

async def get_operator(uow: UnitOfWork, operator_id: str) -> Operator | None:
    return await uow.session.get(Operator, operator_id)


async def operator_names(uow: UnitOfWork, operator_ids: Iterable[str]) -> dict[str, str]:
    ids = {i for i in operator_ids if i}
    if not ids:
        return {}
    rows = await uow.session.execute(select(Operator.id, Operator.name).where(Operator.id.in_(ids)))
    return {row.id: row.name for row in rows}


async def operator_name(uow: UnitOfWork, operator_id: str | None) -> str | None:
    return (await operator_names(uow, [operator_id] if operator_id else [])).get(operator_id or "")


async def is_member(uow: UnitOfWork, operator_id: str, department_id: str) -> bool:
    return await uow.session.get(OperatorDepartment, (operator_id, department_id)) is not None


async def may_be_given(uow: UnitOfWork, op: Operator, department_id: str) -> bool:
    """May this operator be handed a chat of this department (their role lets them chat, and they
    are a member of it or their role reaches every department)?"""
    granted = await roles.role_definition(uow, op.workspace_id, op.role)
    if granted is None:
        return False
    return policy.may_take_chats(
        frozenset(p.value for p in granted.permissions),
        granted.scope.value,
        member=await is_member(uow, op.id, department_id),
    )


# ---------------------------------------------------------------- chosen status and availability
STATUSES = ("online", "away", "offline")
OPERATOR, VISITOR = "operator", "visitor"  # presence kinds


async def lock_operator(uow: UnitOfWork, operator_id: str) -> Operator | None:
    """The operator's row, read fresh and locked until the unit ends (``FOR UPDATE`` on PostgreSQL):
    counting their slots and then taking one is then safe against another node doing the same."""
    return await uow.session.scalar(
        select(Operator).where(Operator.id == operator_id).with_for_update().execution_options(populate_existing=True)
    )


async def lock_operators(uow: UnitOfWork, operator_ids: Iterable[str]) -> dict[str, Operator]:
    """Those of these operators' rows that nobody else holds, locked (``SKIP LOCKED``): routing
    never waits for a lock, so it can never be one side of a deadlock; an operator being given a
    chat by another unit right now is simply not offered this one in this unit."""
    ids = sorted(set(operator_ids))
    if not ids:
        return {}
    rows = await uow.session.scalars(
        select(Operator)
        .where(Operator.id.in_(ids))
        .order_by(Operator.id)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return {op.id: op for op in rows}


def _live_operator() -> Any:
    """An operator with at least one console socket alive on some node (a heartbeat not expired)."""
    return exists().where(
        Presence.kind == OPERATOR, Presence.subject_id == Operator.id, Presence.expires_at > clock.now()
    )


def _available() -> Any:
    return (Operator.status == "online") & Operator.disabled.is_(False) & _live_operator()


async def available_operators(uow: UnitOfWork, department_id: str) -> list[Operator]:
    """Members of the department whose chosen status is online and who have a live console."""
    stmt = (
        select(Operator)
        .join(OperatorDepartment, OperatorDepartment.operator_id == Operator.id)
        .where(OperatorDepartment.department_id == department_id, _available())
        .order_by(Operator.id)
    )
    return list((await uow.session.scalars(stmt)).all())


async def count_available(uow: UnitOfWork, department_ids: Iterable[str]) -> int:
    ids = list(department_ids)
    if not ids:
        return 0
    stmt = (
        select(func.count(func.distinct(Operator.id)))
        .join(OperatorDepartment, OperatorDepartment.operator_id == Operator.id)
        .where(OperatorDepartment.department_id.in_(ids), _available())
    )
    return int(await uow.session.scalar(stmt) or 0)


async def is_available(uow: UnitOfWork, operator_id: str) -> bool:
    return bool(await uow.session.scalar(select(Operator.id).where(Operator.id == operator_id, _available())))


def mark_assigned(op: Operator, at: datetime) -> None:
    """When the operator was last offered or given a chat (least busy's tie-break)."""
    op.last_assigned_at = at


async def set_status(uow: UnitOfWork, operator_id: str, status: object) -> Operator:
    """The operator's chosen status, kept on their row across visits and reconnects."""
    if status not in STATUSES:
        raise Invalid("status must be online, away or offline")
    op = await lock_operator(uow, operator_id)
    if op is None:
        raise NotFound("operator not found")
    op.status = str(status)
    await uow.session.flush()
    return op


# ---------------------------------------------------------------- presence heartbeats (ADR 0005)
async def beat(
    uow: UnitOfWork, node_id: str, *, operators: Iterable[str] = (), visitors: Iterable[str] = (), ttl_s: float
) -> None:
    """This node's live sockets, in ONE statement: insert or push forward each row's expiry."""
    expires_at = clock.now() + timedelta(seconds=ttl_s)
    rows = [{"kind": OPERATOR, "subject_id": s, "node_id": node_id, "expires_at": expires_at} for s in operators]
    rows += [{"kind": VISITOR, "subject_id": s, "node_id": node_id, "expires_at": expires_at} for s in visitors]
    if not rows:
        return
    conn = await uow.session.connection()
    table: Any = Presence.__table__
    ins: Any = postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)
    await conn.execute(
        ins.on_conflict_do_update(
            index_elements=["kind", "subject_id", "node_id"], set_={"expires_at": ins.excluded.expires_at}
        ),
        rows,
    )


async def forget_node(uow: UnitOfWork, node_id: str) -> None:
    """A node shutting down cleanly: its sockets are gone now, not in a TTL."""
    await uow.session.execute(delete(Presence).where(Presence.node_id == node_id))


async def forget_presence(uow: UnitOfWork, node_id: str, kind: str, subject_id: str) -> None:
    await uow.session.execute(
        delete(Presence).where(Presence.node_id == node_id, Presence.kind == kind, Presence.subject_id == subject_id)
    )


async def purge_presence(uow: UnitOfWork, before: datetime) -> int:
    result: Any = await uow.session.execute(delete(Presence).where(Presence.expires_at < before))
    return int(result.rowcount or 0)


async def visitors_seen_since(uow: UnitOfWork, conversation_ids: Iterable[str], since: datetime) -> set[str]:
    """Of these conversations, those whose visitor had a live socket on some node after ``since``."""
    ids = list(conversation_ids)
    if not ids:
        return set()
    rows = await uow.session.scalars(
        select(Presence.subject_id).where(
            Presence.kind == VISITOR, Presence.subject_id.in_(ids), Presence.expires_at > since
        )
    )
    return set(rows.all())
