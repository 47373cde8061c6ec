"""Chat statistics that survive erasure and retention (issue 8 point 5).

Before conversations are deleted (a person's erasure, a bulk erasure, the retention sweep), call
``fold_conversations(uow, ids)`` **in the same transaction, just before the delete**: each chat is
added to its bucket of ``chat_stats`` (UTC day of its start, site, department, operator) as
counts, rating sum and histogram, first-response time and duration sums. Nothing personal goes in:
no visitor, no text, no conversation id. A conversation must be folded once only (it is deleted
right after), so the function is not idempotent by itself; the delete that follows is what makes
a second fold impossible.

- first response: the first operator message's time minus the chat's start;
- duration: ``closed_at`` minus the chat's start (closed chats only).

Reads the two tables generically from the metadata (a registry walk like the erasure itself, not
another domain's models), then one upsert per bucket (``INSERT … ON CONFLICT DO UPDATE`` on both
SQLite and PostgreSQL, so that two folds into one bucket at once both count).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from confide.core.db import Base, UnitOfWork
from confide.erasure.models import ChatStat

_BATCH = 500
_SUMS = (
    "chats", "rated", "rating_sum", "rating_1", "rating_2", "rating_3", "rating_4", "rating_5",
    "first_response_s_sum", "first_response_count", "duration_s_sum", "duration_count",
)


@dataclass
class _Bucket:
    values: dict[str, float] = field(default_factory=lambda: dict.fromkeys(_SUMS, 0))


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def fold_conversations(uow: UnitOfWork, conversation_ids: Sequence[str]) -> int:
    """Add these conversations to the surviving statistics; returns how many were folded."""
    conversations = Base.metadata.tables["conversations"]
    messages = Base.metadata.tables["messages"]
    ids = sorted(set(conversation_ids))
    buckets: dict[tuple[str, str, str, str, str], _Bucket] = {}
    folded = 0
    for start in range(0, len(ids), _BATCH):
        chunk = ids[start : start + _BATCH]
        first_reply = {
            cid: at
            for cid, at in (
                await uow.session.execute(
                    select(messages.c.conversation_id, func.min(messages.c.created_at))
                    .where(messages.c.conversation_id.in_(chunk), messages.c.sender == "operator")
                    .group_by(messages.c.conversation_id)
                )
            ).all()
        }
        rows = (
            await uow.session.execute(
                select(
                    conversations.c.id, conversations.c.workspace_id, conversations.c.site_id,
                    conversations.c.department_id, conversations.c.operator_id, conversations.c.created_at,
                    conversations.c.closed_at, conversations.c.rating,
                ).where(conversations.c.id.in_(chunk))
            )
        ).all()
        for cid, ws, site, dept, operator, created, closed, rating in rows:
            started = _aware(created)
            key = (ws, started.astimezone(UTC).date().isoformat(), site, dept, operator or "")
            b = buckets.setdefault(key, _Bucket()).values
            b["chats"] += 1
            if isinstance(rating, int) and 1 <= rating <= 5:
                b["rated"] += 1
                b["rating_sum"] += rating
                b[f"rating_{rating}"] += 1
            reply = first_reply.get(cid)
            if reply is not None:
                b["first_response_s_sum"] += max(0.0, (_aware(reply) - started).total_seconds())
                b["first_response_count"] += 1
            if closed is not None:
                b["duration_s_sum"] += max(0.0, (_aware(closed) - started).total_seconds())
                b["duration_count"] += 1
            folded += 1
    for (ws, day, site, dept, op), bucket in sorted(buckets.items()):
        await _upsert(uow, {"workspace_id": ws, "day": day, "site_id": site, "department_id": dept,
                            "operator_key": op, **bucket.values})
    return folded


async def _upsert(uow: UnitOfWork, values: dict[str, Any]) -> None:
    table = Base.metadata.tables[ChatStat.__tablename__]
    stmt: Any = (pg_insert if uow.session.get_bind().dialect.name == "postgresql" else sqlite_insert)(table)
    stmt = stmt.values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["workspace_id", "day", "site_id", "department_id", "operator_key"],
        set_={name: table.c[name] + stmt.excluded[name] for name in _SUMS},
    )
    await uow.session.execute(stmt)


async def totals(uow: UnitOfWork, workspace_id: str, *, site_id: str | None = None) -> dict[str, float]:
    """The surviving statistics of a workspace (or one site) summed over every bucket."""
    table = Base.metadata.tables[ChatStat.__tablename__]
    stmt = select(*[func.coalesce(func.sum(table.c[name]), 0) for name in _SUMS]).where(
        table.c.workspace_id == workspace_id
    )
    if site_id is not None:
        stmt = stmt.where(table.c.site_id == site_id)
    row = (await uow.session.execute(stmt)).one()
    return {name: float(value) for name, value in zip(_SUMS, row, strict=True)}
