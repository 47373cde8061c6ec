"""Operator rows as other domains and the rest of users/ read them: by id or e-mail, names,
departments, views, and the row locks that make counting-then-taking safe on every node.

Other domains hold operators (``Operator`` is re-exported here), never query their table.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select

from confide.auth.actors import OperatorActor
from confide.core.db import UnitOfWork
from confide.users.models import Operator as Operator  # re-exported: other domains hold operators
from confide.users.models import OperatorDepartment
from confide.users.schemas import check_email


async def list_operators(uow: UnitOfWork, actor: OperatorActor) -> list[Operator]:
    stmt = select(Operator).where(Operator.workspace_id == actor.workspace_id).order_by(Operator.created_at)
    return list((await uow.session.scalars(stmt)).all())


async def department_ids_of(uow: UnitOfWork, operator_id: str) -> list[str]:
    rows = await uow.session.scalars(
        select(OperatorDepartment.department_id).where(OperatorDepartment.operator_id == operator_id)
    )
    return list(rows.all())


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


async def enabled_operator_id_by_email(uow: UnitOfWork, email: str) -> str | None:
    """The id of the enabled account with this e-mail address (shell commands), or None."""
    try:
        email = check_email(email)
    except ValueError:
        return None
    return await uow.session.scalar(select(Operator.id).where(Operator.email == email, Operator.disabled.is_(False)))


# -- for directory log-ins (identity.service)
async def operator_by_email(uow: UnitOfWork, email: str) -> Operator | None:
    """The account with this (normalised) e-mail address, if any."""
    return await uow.session.scalar(select(Operator).where(Operator.email == email))

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


async def enabled_operators(uow: UnitOfWork, workspace_id: str) -> list[tuple[str, str]]:
    """(id, e-mail) of the workspace's enabled accounts (data-subject request reminders, ADR 0029)."""
    rows = await uow.session.execute(
        select(Operator.id, Operator.email)
        .where(Operator.workspace_id == workspace_id, Operator.disabled.is_(False))
        .order_by(Operator.created_at)
    )
    return [(row.id, row.email) for row in rows]
