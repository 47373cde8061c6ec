"""A log-in, step by step, for the dashboard and the JSON API alike.

Each first factor (the password here; the directory and single sign-on providers too) ends in
``complete_login``, the one place that decides what else a log-in needs before it gets a session:
the login limits (address ranges, time windows), the second factor, and then the session itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from confide.auth.actors import OperatorActor
from confide.core.runtime import Runtime
from confide.users import service as users


@dataclass(frozen=True)
class LoginResult:
    operator_id: str
    token: str  # the new session's token (set as the session cookie)


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
        attempt = await users.login_attempt(rt, uow, email=email, address=client.address)
    ok = await users.check_password(rt, attempt, password)
    async with rt.db.unit_of_work() as uow:
        op = await users.record_login(rt, uow, attempt, ok=ok)
    if attempt.password_hash is not None and rt.passwords.needs_rehash(attempt.password_hash):
        new_hash = await rt.passwords.hash_async(password)
        async with rt.db.unit_of_work() as uow:
            await users.rehash_password(uow, op.id, old_hash=attempt.password_hash, new_hash=new_hash)
    return await complete_login(rt, operator_id=op.id, method="password", client=client)


async def complete_login(rt: Runtime, *, operator_id: str, method: str, client: LoginClient) -> LoginResult:
    """Every first factor that passed ends here: the remaining checks, then the session."""
    async with rt.db.unit_of_work() as uow:
        token = await users.open_session(rt, uow, operator_id, method=method, user_agent=client.user_agent)
    return LoginResult(operator_id=operator_id, token=token)


async def change_own_password(rt: Runtime, actor: OperatorActor, *, current: str, new: str) -> None:
    """An operator changes their own password, in the same three steps as a log-in (argon2 off the
    loop, outside any transaction): a short unit checks the policy and counts the attempt against
    the account's throttle (a stolen session must not become a way to guess the password), the
    current password and the history are checked in the hashing threads, then a short unit stores
    the new hash and ends the operator's other sessions."""
    async with rt.db.unit_of_work() as uow:
        plan = await users.begin_password_change(rt, uow, actor, new_password=new)
    current_ok = await rt.passwords.verify_async(plan.current_hash, current)
    reused = current_ok and await rt.passwords.matches_any_async(plan.history, new)
    new_hash = await rt.passwords.hash_async(new) if current_ok and not reused else ""
    async with rt.db.unit_of_work() as uow:
        await users.change_password(rt, uow, actor, plan, current_ok=current_ok, reused=reused, new_hash=new_hash)
