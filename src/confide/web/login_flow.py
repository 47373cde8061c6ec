"""A log-in, step by step, for the dashboard and the JSON API alike.

Each first factor (the password here; the directory and single sign-on providers too) ends in
``complete_login``, the one place that decides what else a log-in needs before it gets a session:
the login limits (address ranges, time windows), the second factor, and then the session itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from confide.auth.actors import OperatorActor
from confide.core.db import UnitOfWork
from confide.core.runtime import Runtime
from confide.login_limits import service as login_limits
from confide.two_factor import service as two_factor
from confide.users import login as user_login
from confide.users import passwords as user_passwords
from confide.users import sessions as user_sessions


@dataclass(frozen=True)
class LoginResult:
    operator_id: str
    token: str  # the new session's token (set as the session cookie); "" while a second factor is pending
    # Set instead of a session when the operator has a second factor or must enrol one: the ticket
    # (for a short-lived HttpOnly cookie) that the second-step pages spend (see two_factor/, ADR 0014).
    second_factor: two_factor.Ticket | None = None


@dataclass(frozen=True)
class LoginClient:
    """Who is logging in, as far as the edge can tell (the address after trusted proxies)."""

    address: str | None
    user_agent: str | None = None


async def password_login(rt: Runtime, *, email: str, password: str, client: LoginClient) -> LoginResult:
    """The password as first factor, in three steps so that argon2 (~0.3 s) never runs on the event
    loop nor inside a transaction: a short write unit counts the attempt against the throttle
    (``auth.throttle``: 429 when it must wait) and loads the hash, the check runs in the hashing
    threads with no unit open, then a short write unit records the outcome (audited either way).
    A hash made with older argon2 parameters is replaced once the password is known to be right."""
    async with rt.db.unit_of_work() as uow:
        attempt = await user_login.login_attempt(rt, uow, email=email, address=client.address)
    ok = await user_login.check_password(rt, attempt, password)
    async with rt.db.unit_of_work() as uow:
        op = await user_login.record_login(rt, uow, attempt, ok=ok)
    if attempt.password_hash is not None and rt.passwords.needs_rehash(attempt.password_hash):
        new_hash = await rt.passwords.hash_async(password)
        async with rt.db.unit_of_work() as uow:
            await user_login.rehash_password(uow, op.id, old_hash=attempt.password_hash, new_hash=new_hash)
    return await complete_login(rt, operator_id=op.id, method="password", client=client)


async def complete_login(rt: Runtime, *, operator_id: str, method: str, client: LoginClient) -> LoginResult:
    """Every first factor that passed ends here: the remaining checks, then the session."""
    async with rt.db.unit_of_work() as uow:  # login limits: address ranges, time windows (ADR 0016)
        await login_limits.check_login(rt, uow, operator_id=operator_id, address=client.address, method=method)
    async with rt.db.unit_of_work() as uow:
        # The second factor: an operator with one enrolled (or who must enrol) gets a ticket, no session.
        stage = await two_factor.second_step(uow, operator_id)
        if stage is not None:
            ticket = await two_factor.issue_ticket(uow, operator_id=operator_id, method=method, stage=stage)
            return LoginResult(operator_id=operator_id, token="", second_factor=ticket)
        token = await user_sessions.open_session(rt, uow, operator_id, method=method, user_agent=client.user_agent)
    return LoginResult(operator_id=operator_id, token=token)


async def change_own_password(rt: Runtime, actor: OperatorActor, *, current: str, new: str) -> None:
    """An operator changes their own password, in the same three steps as a log-in (argon2 off the
    loop, outside any transaction): a short unit checks the policy and counts the attempt against
    the account's throttle (a stolen session must not become a way to guess the password), the
    current password and the history are checked in the hashing threads, then a short unit stores
    the new hash and ends the operator's other sessions."""
    async with rt.db.unit_of_work() as uow:
        plan = await user_passwords.begin_password_change(rt, uow, actor, new_password=new)
    current_ok = await rt.passwords.verify_async(plan.current_hash, current)
    reused = current_ok and await rt.passwords.matches_any_async(plan.history, new)
    new_hash = await rt.passwords.hash_async(new) if current_ok and not reused else ""
    async with rt.db.unit_of_work() as uow:
        await user_passwords.change_password(
            rt, uow, actor, plan, current_ok=current_ok, reused=reused, new_hash=new_hash
        )


@dataclass(frozen=True)
class SecondFactorResult:
    operator_id: str
    token: str  # the new session's token
    recovery_codes: list[str] | None  # codes made by an enrolment at log-in, to show once


async def complete_second_factor(
    rt: Runtime, step: Callable[[UnitOfWork], Awaitable[two_factor.Passed]]
) -> SecondFactorResult:
    """The second step spent its ticket (``step``: one of ``two_factor``'s verify or enrol-at-log-in
    calls): the session opens in the same unit of work, so a ticket gives at most one session."""
    async with rt.db.unit_of_work() as uow:
        passed = await step(uow)
        token = await user_sessions.open_session(rt, uow, passed.operator_id, method=passed.method)
    return SecondFactorResult(passed.operator_id, token, passed.recovery_codes)
