"""A log-in, step by step, for the dashboard and the JSON API alike.

Each first factor (the password here; the directory and single sign-on providers too) ends in
``complete_login``, the one place that decides what else a log-in needs before it gets a session:
the login limits (address ranges, time windows), the second factor, and then the session itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from confide.core.runtime import Runtime
from confide.login_limits import service as login_limits
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
    loop nor inside a transaction: a read unit loads the hash, the check runs in the hashing threads
    with no unit open, then a short write unit records the outcome."""
    async with rt.db.unit_of_work(readonly=True) as uow:
        attempt = await users.login_attempt(uow, email=email)
    ok = await users.check_password(rt, attempt, password)
    async with rt.db.unit_of_work() as uow:
        op = await users.record_login(rt, uow, attempt, ok=ok)
    return await complete_login(rt, operator_id=op.id, method="password", client=client)


async def complete_login(rt: Runtime, *, operator_id: str, method: str, client: LoginClient) -> LoginResult:
    """Every first factor that passed ends here: the remaining checks, then the session."""
    async with rt.db.unit_of_work() as uow:  # login limits: address ranges, time windows (ADR 0016)
        await login_limits.check_login(rt, uow, operator_id=operator_id, address=client.address, method=method)
    async with rt.db.unit_of_work() as uow:
        token = await users.open_session(rt, uow, operator_id, method=method)
    return LoginResult(operator_id=operator_id, token=token)
