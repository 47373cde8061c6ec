"""The Audit Report's queries: the rows of the caller's workspace (plus the instance's own system
rows, such as retention checkpoints), filtered, newest first, paged or streamed in batches for the
CSV export. Read permission: ``Permission.AUDIT_READ``. Names are never stored here: the page
looks operators' names up in the users service when it renders."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Select, and_, func, or_, select

from confide.audit.models import AuditEvent
from confide.auth.actors import OperatorActor
from confide.core import clock
from confide.core.clock import UTCInput
from confide.core.db import Database, UnitOfWork

_Id = Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z0-9_.:/+\-]*$")]
EXPORT_MAX_ROWS = 100_000  # one export never holds more (a narrower filter gets the rest)
EXPORT_BATCH = 1000
LISTED = ".listed"  # the actions of list views (chats.listed, offline.listed)
CSV_COLUMNS = (
    "seq",
    "at",
    "workspace_id",
    "actor_type",
    "actor_id",
    "action",
    "outcome",
    "target_type",
    "target_id",
    "detail",
    "prev_hash",
    "hash",
)


class AuditFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    actor_id: _Id | None = None
    action: Annotated[str, Field(max_length=64, pattern=r"^[a-z0-9_.]*$")] | None = None  # exact, or "area." prefix
    target_type: _Id | None = None
    target_id: _Id | None = None
    outcome: Literal["ok", "failed", "denied"] | None = None
    date_from: UTCInput | None = None
    date_to: UTCInput | None = None
    page: Annotated[int, Field(ge=1, le=100_000)] = 1
    per_page: Annotated[int, Field(ge=1, le=200)] = 50


def _scoped(actor: OperatorActor, filters: AuditFilters) -> Select[AuditEvent]:
    stmt = select(AuditEvent).where(
        or_(
            AuditEvent.workspace_id == actor.workspace_id,
            and_(AuditEvent.workspace_id.is_(None), AuditEvent.actor_type == "system"),
        )
    )
    if filters.actor_id:
        stmt = stmt.where(AuditEvent.actor_id == filters.actor_id)
    if filters.action:
        if filters.action.endswith("."):
            stmt = stmt.where(AuditEvent.action.startswith(filters.action, autoescape=True))
        else:
            stmt = stmt.where(AuditEvent.action == filters.action)
    if filters.target_type:
        stmt = stmt.where(AuditEvent.target_type == filters.target_type)
    if filters.target_id:
        # A list view names the rows it showed in its detail (``audit.record_list_view``): asking for
        # one conversation or offline request finds the lists it was shown in too.
        stmt = stmt.where(
            or_(
                AuditEvent.target_id == filters.target_id,
                and_(
                    AuditEvent.action.endswith(LISTED, autoescape=True),
                    AuditEvent.detail.contains(f'"{filters.target_id}"', autoescape=True),
                ),
            )
        )
    if filters.outcome:
        stmt = stmt.where(AuditEvent.outcome == filters.outcome)
    if filters.date_from:
        stmt = stmt.where(AuditEvent.at >= filters.date_from)
    if filters.date_to:
        stmt = stmt.where(AuditEvent.at <= filters.date_to)
    return stmt


def view(row: AuditEvent) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "at": clock.iso(row.at),
        "workspace_id": row.workspace_id,
        "actor_type": row.actor_type,
        "actor_id": row.actor_id,
        "action": row.action,
        "outcome": row.outcome,
        "target_type": row.target_type,
        "target_id": row.target_id,
        "detail": json.loads(row.detail) if row.detail else {},
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }


async def search(uow: UnitOfWork, actor: OperatorActor, filters: AuditFilters) -> tuple[list[dict[str, Any]], int]:
    """One page, newest first, and the number of rows that match. The caller checks AUDIT_READ."""
    stmt = _scoped(actor, filters)
    total = int(await uow.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    rows = (
        await uow.session.scalars(
            stmt.order_by(AuditEvent.seq.desc()).offset((filters.page - 1) * filters.per_page).limit(filters.per_page)
        )
    ).all()
    return [view(r) for r in rows], total


async def actions(uow: UnitOfWork, actor: OperatorActor) -> list[str]:
    """The actions recorded in the workspace so far (the filter's choices)."""
    stmt = _scoped(actor, AuditFilters()).with_only_columns(AuditEvent.action).distinct().order_by(AuditEvent.action)
    return [str(a) for a in (await uow.session.scalars(stmt)).all()]


def areas(actions: list[str]) -> list[str]:
    """The areas of those actions as prefix filters (``chats.``: every chats action)."""
    return sorted({a.split(".", 1)[0] + "." for a in actions if "." in a})


async def export_rows(
    db: Database, actor: OperatorActor, filters: AuditFilters, *, limit: int = EXPORT_MAX_ROWS
) -> AsyncIterator[list[str]]:
    """Every matching row (newest first, at most ``limit``) as CSV cells, in batches, each batch
    read in a short read-only unit of its own (no transaction stays open while the client reads)."""
    before: int | None = None
    sent = 0
    while sent < limit:
        async with db.unit_of_work(readonly=True) as uow:
            stmt = _scoped(actor, filters)
            if before is not None:
                stmt = stmt.where(AuditEvent.seq < before)
            rows = (
                await uow.session.scalars(stmt.order_by(AuditEvent.seq.desc()).limit(min(EXPORT_BATCH, limit - sent)))
            ).all()
        if not rows:
            return
        for row in rows:
            v = view(row)
            v["detail"] = row.detail
            yield ["" if v[c] is None else str(v[c]) for c in CSV_COLUMNS]
        sent += len(rows)
        before = rows[-1].seq
