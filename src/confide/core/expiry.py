"""What a retention sweep asks a domain (ADR 0030): "which of your rows of this site are older than
``before``, leaving out those held", then "delete these". Each domain answers for its own tables
(``chats.service.expired_conversations`` ...) with the small helpers below, so that the retention
service never touches another domain's models and every domain selects its rows the same way.

``take`` locks the rows it returns (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite has one
writer), so two sweeps that overlap never pick the same row; ``count`` is the dry run's question,
with the very same condition.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, func, select
from sqlalchemy.orm import InstrumentedAttribute

from confide.core.db import UnitOfWork


@dataclass(frozen=True)
class Expired:
    """Rows of ``site_id`` whose age column is before ``before``; ``held_visitors`` and
    ``held_conversations`` are selects of ids whose rows must stay (legal holds), or None."""

    workspace_id: str
    site_id: str | None
    before: datetime
    held_visitors: Select[Any] | None = None
    held_conversations: Select[Any] | None = None


def not_held(column: Any, held: Select[Any] | None) -> ColumnElement[bool] | None:
    """``column NOT IN (held)``, keeping rows whose column is NULL; None when nothing is held."""
    if held is None:
        return None
    cond: ColumnElement[bool] = column.is_(None) | column.not_in(held)
    return cond


def _where(conditions: Sequence[ColumnElement[bool] | None]) -> list[ColumnElement[bool]]:
    return [c for c in conditions if c is not None]


async def take(
    uow: UnitOfWork,
    id_column: InstrumentedAttribute[str],
    conditions: Sequence[ColumnElement[bool] | None],
    order_by: Any,
    limit: int,
) -> list[str]:
    stmt = (
        select(id_column)
        .where(*_where(conditions))
        .order_by(order_by)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [str(v) for v in (await uow.session.scalars(stmt)).all()]


async def count(
    uow: UnitOfWork, id_column: InstrumentedAttribute[str], conditions: Sequence[ColumnElement[bool] | None]
) -> int:
    return int(await uow.session.scalar(select(func.count(id_column)).where(*_where(conditions))) or 0)


async def delete_ids(uow: UnitOfWork, id_column: InstrumentedAttribute[str], ids: Sequence[str]) -> int:
    """Delete the rows with these ids (their children go by ``ON DELETE CASCADE``)."""
    if not ids:
        return 0
    result: Any = await uow.session.execute(
        delete(id_column.class_).where(id_column.in_(list(ids))).execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)
