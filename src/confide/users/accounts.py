"""Operator accounts: creating and changing them (role, departments, a password set by someone else,
disabling), the role checks that keep anyone from granting more than they hold, and the colleague
views.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from confide.audit import service as audit
from confide.auth.actors import OperatorActor
from confide.core import clock, crypto
from confide.core.db import UnitOfWork
from confide.core.errors import (
    Conflict,
    Forbidden,
    Invalid,
)
from confide.core.runtime import Runtime
from confide.permissions import policy
from confide.permissions.access import access_department_by_id, access_operator_by_id, colleagues_emails_visible
from confide.permissions.policy import Permission, require
from confide.realtime import events
from confide.realtime.events import Refresh, Revoke
from confide.users import roles
from confide.users.account_rules import account_rules, check_password_policy
from confide.users.models import Operator, OperatorDepartment
from confide.users.operators import is_member, list_operators, operator_view
from confide.users.passwords import store_password
from confide.users.schemas import OperatorIn, OperatorPatch
from confide.users.sessions import publish_revoked, revoke_sessions


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
        await store_password(rt, uow, op, password_hash or rt.passwords.hash(new_password), must_change=not own)
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
