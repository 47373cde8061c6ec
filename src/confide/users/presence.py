"""Chosen status, availability for routing, and presence heartbeats of live sockets across nodes (ADR
0005).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, func, select
from sqlalchemy.dialects import postgresql, sqlite

from confide.core import clock
from confide.core.db import UnitOfWork
from confide.core.errors import (
    Invalid,
    NotFound,
)
from confide.users.models import Operator, OperatorDepartment, Presence
from confide.users.operators import lock_operator

# ---------------------------------------------------------------- chosen status and availability
STATUSES = ("online", "away", "offline")
OPERATOR, VISITOR = "operator", "visitor"  # presence kinds


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
