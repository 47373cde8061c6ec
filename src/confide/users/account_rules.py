"""A workspace's password and session rules (Settings -> Security -> Passwords, ADR 0012): its row, or
the configuration's defaults; the password policy check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from confide.audit import service as audit
from confide.auth import passwords
from confide.auth.actors import OperatorActor
from confide.auth.passwords import PasswordPolicy
from confide.core import clock
from confide.core.db import UnitOfWork
from confide.core.errors import (
    Invalid,
)
from confide.core.runtime import Runtime
from confide.permissions import policy
from confide.users.account_schemas import AccountRulesIn
from confide.users.models import AccountPolicy


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
