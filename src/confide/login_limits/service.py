"""Login limits: stored per role and per operator, enforced at log-in and during the session.

- ``check_login``: the step of ``web.login_flow.complete_login`` before the session opens; a
  refusal is audited (``auth.login``, outcome ``denied``, reason ``login_limits_network`` or
  ``login_limits_time``) and committed, then raised (403 with a clear sentence).
- ``session_denial``: the same rules for a session in use (each page or API request, and every
  ``login_limits_check_s`` on an open console socket), with the address of that request or socket;
  ``end_session`` then revokes the session (audited ``auth.session_revoked``, reason
  ``login_limits``) and tells its sockets on every node (the ``revoke`` event).
- ``overview`` / ``set_limits``: Settings → Security → Login limits (audited ``login_limits.updated``
  and ``login_limits.cleared``).

A role's limits and an operator's own limits must both be satisfied (ADR 0016).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from confide.audit import service as audit
from confide.auth.actors import OperatorActor
from confide.core import clock, crypto
from confide.core.db import UnitOfWork
from confide.core.errors import CommitAndRaise, Forbidden, Invalid, NotFound
from confide.core.runtime import Runtime
from confide.login_limits.models import LoginLimit
from confide.login_limits.rules import MESSAGES, NETWORK, TIME, Rules, Window, evaluate, parse_range
from confide.login_limits.schemas import LoginLimitsIn
from confide.permissions.access import access_operator_by_id
from confide.permissions.policy import Permission, require
from confide.users import login as user_login
from confide.users import operators as user_operators
from confide.users import roles as user_roles
from confide.users import sessions as user_sessions

ROLE, OPERATOR = "role", "operator"
SUBJECT_TYPES = (ROLE, OPERATOR)


def role_key(stored: str) -> str:
    """The role key limits are stored under: a built-in role's key (operators made before roles
    say "admin") or a custom role's id."""
    return user_roles.canonical(stored)


def _rules(row: LoginLimit) -> Rules:
    windows = tuple(Window.build(w["days"], w["start"], w["end"], bool(w.get("overnight"))) for w in row.windows)
    return Rules(tuple(parse_range(r) for r in row.ranges), windows, row.timezone)


async def _rows_for(uow: UnitOfWork, *, workspace_id: str, role: str, operator_id: str) -> list[LoginLimit]:
    rows = await uow.session.scalars(
        select(LoginLimit).where(
            LoginLimit.workspace_id == workspace_id,
            or_(
                (LoginLimit.subject_type == ROLE) & (LoginLimit.subject_id == role_key(role)),
                (LoginLimit.subject_type == OPERATOR) & (LoginLimit.subject_id == operator_id),
            ),
        )
    )
    return list(rows)


async def rules_for(uow: UnitOfWork, *, workspace_id: str, role: str, operator_id: str) -> list[Rules]:
    """The rules an operator must satisfy: their role's and their own (either may be absent)."""
    return [_rules(row) for row in await _rows_for(uow, workspace_id=workspace_id, role=role, operator_id=operator_id)]


# ---------------------------------------------------------------- enforcement
async def check_login(rt: Runtime, uow: UnitOfWork, *, operator_id: str, address: str | None, method: str) -> None:
    """Refuse a log-in outside the operator's limits (audited, committed, then raised as 403)."""
    op = await user_operators.get_operator(uow, operator_id)
    if op is None:
        return  # open_session refuses it
    rules = await rules_for(uow, workspace_id=op.workspace_id, role=op.role, operator_id=op.id)
    reason = evaluate(rules, address, clock.now())
    if reason is None:
        return
    await user_login.record_login_failure(
        rt,
        uow,
        method=method,
        reason=f"login_limits_{reason}",
        operator_id=op.id,
        workspace_id=op.workspace_id,
        outcome="denied",
    )
    raise CommitAndRaise(Forbidden(MESSAGES[reason]))


async def session_denial(uow: UnitOfWork, actor: OperatorActor, address: str | None, at: datetime) -> str | None:
    """Why this session may not go on from ``address`` at ``at`` (``rules.NETWORK``/``TIME``), or None."""
    rules = await rules_for(uow, workspace_id=actor.workspace_id, role=actor.role, operator_id=actor.operator_id)
    return evaluate(rules, address, at) if rules else None


async def end_session(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, reason: str) -> None:
    """Revoke the session for leaving its limits; its sockets close on every node (``revoke``)."""
    await user_sessions.logout(rt, uow, actor)  # revokes this session and publishes its revoke event
    await audit.record(
        rt,
        uow,
        "auth.session_revoked",
        actor_type="system",
        workspace_id=actor.workspace_id,
        target_type="operator_session",
        target_id=actor.session_id,
        detail={"reason": "login_limits", "limit": reason, "operator_id": actor.operator_id},
    )


async def forget_role(uow: UnitOfWork, workspace_id: str, role_key: str) -> int:
    """A custom role is being deleted (nobody holds it): its limits go. Returns how many rows went."""
    result: Any = await uow.session.execute(
        delete(LoginLimit).where(
            LoginLimit.workspace_id == workspace_id, LoginLimit.subject_type == ROLE, LoginLimit.subject_id == role_key
        )
    )
    return int(result.rowcount or 0)


# ---------------------------------------------------------------- settings
@dataclass(frozen=True)
class Subject:
    type: str
    id: str
    name: str


def _view(row: LoginLimit | None) -> dict[str, Any]:
    if row is None:
        return {"ranges": [], "windows": [], "timezone": "UTC", "updated_at": None, "limited": False}
    return {
        "ranges": list(row.ranges),
        "windows": [dict(w) for w in row.windows],
        "timezone": row.timezone,
        "updated_at": clock.iso(row.updated_at),
        "limited": bool(row.ranges or row.windows),
    }


async def overview(uow: UnitOfWork, actor: OperatorActor) -> dict[str, list[dict[str, Any]]]:
    """Every role and every operator of the workspace with their limits (``settings.read``)."""
    require(actor, Permission.SETTINGS_READ)
    rows = await uow.session.scalars(select(LoginLimit).where(LoginLimit.workspace_id == actor.workspace_id))
    by_subject = {(r.subject_type, r.subject_id): r for r in rows}
    names = await user_roles.role_names(uow, actor.workspace_id)  # built-in, then custom roles
    roles = [
        {"type": ROLE, "id": key, "name": name, **_view(by_subject.get((ROLE, key)))} for key, name in names.items()
    ]
    operators = [
        {
            "type": OPERATOR,
            "id": op.id,
            "name": op.name,
            "role": role_key(op.role),
            "role_name": names.get(role_key(op.role), "No role"),
            **_view(by_subject.get((OPERATOR, op.id))),
        }
        for op in await user_operators.list_operators(uow, actor)
    ]
    return {"roles": roles, "operators": operators}


async def subject(uow: UnitOfWork, actor: OperatorActor, subject_type: str, subject_id: str) -> Subject:
    """A role of the workspace (built-in or custom; a custom role's row stays share-locked until
    the unit ends, so it cannot be deleted while its limits are stored) or an operator of the
    actor's workspace; anything else is not found."""
    if subject_type == ROLE:
        try:
            key = await user_roles.checked_key(uow, actor.workspace_id, subject_id)
        except Invalid:
            raise NotFound("no such role or operator") from None
        granted = await user_roles.role_definition(uow, actor.workspace_id, key)
        return Subject(ROLE, key, granted.name if granted is not None else key)
    if subject_type == OPERATOR:
        op = await access_operator_by_id(uow.session, actor, subject_id)
        return Subject(OPERATOR, op.id, op.name)
    raise NotFound("no such role or operator")


async def _not_locking_out(
    uow: UnitOfWork, actor: OperatorActor, who: Subject, new: Rules, address: str | None
) -> None:
    """Refuse limits that would end the session of the administrator saving them, right now."""
    mine = (who.type == ROLE and who.id == role_key(actor.role)) or (
        who.type == OPERATOR and who.id == actor.operator_id
    )
    if not mine:
        return
    rows = await _rows_for(uow, workspace_id=actor.workspace_id, role=actor.role, operator_id=actor.operator_id)
    others = [_rules(r) for r in rows if (r.subject_type, r.subject_id) != (who.type, who.id)]
    reason = evaluate([*others, new], address, clock.now())
    if reason == NETWORK:
        raise Invalid("these limits would end your own session: your current address is outside them")
    if reason == TIME:
        raise Invalid("these limits would end your own session: now is outside their time windows")


async def set_limits(
    rt: Runtime,
    uow: UnitOfWork,
    actor: OperatorActor,
    subject_type: str,
    subject_id: str,
    data: LoginLimitsIn,
    *,
    address: str | None,
) -> dict[str, Any]:
    """Replace one role's or one operator's limits (nothing in them: the row goes). One upsert, so
    two administrators saving at once cannot collide on the unique key. ``address``: the saving
    administrator's own (limits that would lock them out now are refused)."""
    require(actor, Permission.SETTINGS_MANAGE)
    who = await subject(uow, actor, subject_type, subject_id)
    stored = data.stored()
    await _not_locking_out(uow, actor, who, data.rules(), address)
    where = (
        LoginLimit.workspace_id == actor.workspace_id,
        LoginLimit.subject_type == who.type,
        LoginLimit.subject_id == who.id,
    )
    if not stored["ranges"] and not stored["windows"]:
        await uow.session.execute(delete(LoginLimit).where(*where))
        action = "login_limits.cleared"
    else:
        values = {
            "id": crypto.new_id(),
            "workspace_id": actor.workspace_id,
            "subject_type": who.type,
            "subject_id": who.id,
            **stored,
            "updated_at": clock.now(),
            "updated_by": actor.operator_id,
        }
        conn = await uow.session.connection()
        table: Any = LoginLimit.__table__
        ins: Any = postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)
        await conn.execute(
            ins.values(**values).on_conflict_do_update(
                index_elements=["workspace_id", "subject_type", "subject_id"],
                set_={k: ins.excluded[k] for k in ("ranges", "windows", "timezone", "updated_at", "updated_by")},
            )
        )
        action = "login_limits.updated"
    await audit.record(
        rt,
        uow,
        action,
        actor=actor,
        target_type=who.type,
        target_id=who.id,
        detail={"ranges": len(stored["ranges"]), "windows": len(stored["windows"]), "timezone": stored["timezone"]},
    )
    row = await uow.session.scalar(select(LoginLimit).where(*where).execution_options(populate_existing=True))
    return {"type": who.type, "id": who.id, "name": who.name, **_view(row)}
