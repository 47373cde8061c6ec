"""The first factor of a log-in, as the database sees it (ADR 0012, 0024): counting each attempt
against the throttle (``auth.throttle``) whatever the first factor, the password attempt's steps
around the off-loop argon2 check, and the one audit shape of every failed log-in
(``record_login_failure``, docs/audit.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy import select, update

from confide.audit import service as audit
from confide.auth import passwords, throttle
from confide.core import clock
from confide.core.db import UnitOfWork
from confide.core.errors import (
    CommitAndRaise,
    RateLimited,
    Unauthorized,
)
from confide.core.runtime import Runtime
from confide.users.account_rules import account_rules
from confide.users.models import Operator
from confide.users.schemas import check_email

log = structlog.get_logger(__name__)


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


def throttle_rule(rt: Runtime, *, address: bool) -> throttle.Rule:
    s = rt.settings
    free = s.login_address_free_failures if address else s.login_free_failures
    return throttle.Rule(free, s.login_delay_base_s, s.login_delay_max_s, s.login_forget_s)


def account_throttle_key(rt: Runtime, email: str) -> str:
    return "a:" + rt.bidx.term(_THROTTLE_SPACE, "email", email.strip().casefold()[:320])


def _throttle_keys(rt: Runtime, email: str | None, address: str | None) -> tuple[str | None, str | None]:
    account = account_throttle_key(rt, email) if email is not None else None
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
        rules = ((account_key, throttle_rule(rt, address=False)), (address_key, throttle_rule(rt, address=True)))
        for key, rule in rules:
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
