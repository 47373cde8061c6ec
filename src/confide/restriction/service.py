"""Restriction of processing (GDPR Art. 18, issue 8 point 6, ADR 0031, docs/privacy/rights.md).

A restricted person's data is *stored* and nothing else:

- ``consent.questions.may`` answers no for every purpose (and ``objected`` yes), so Visitor Activity,
  automatic prospects, marketing mail and every job serving a purpose stop at their one gate;
- a queued job serving a purpose for them is kept pending, untouched, and looked at again every
  ``RECHECK_S`` (the deferral below); lifting the restriction makes it due at once. Jobs with no
  purpose run: those are the communications Art. 12 and 18(3) require (the data-subject request's
  notices, the export's link), never a processing of the person's data for a purpose of ours;
- Stored Chats, Visitor Activity, Offline Requests and Prospects leave them out for a role without
  a privacy permission (``permissions.access.unrestricted_clause``), and a transcript opened by id
  looks missing to such a role.

``restrict`` and ``lift`` lock the person's visitor rows (``FOR UPDATE``, in id order, through
``permissions``: ``subjects.restrict`` in a role of workspace scope; another workspace's id looks
exactly like a missing one) and then read the active rows, so two staff at once give one result.
Both are idempotent: restricting someone already restricted keeps the first restriction (its time
and reason) and writes nothing; lifting someone not restricted lifts nothing. Each change is
audited (ids and codes only). Lifting keeps the row (``lifted_at``, ``lifted_by``): the history.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import Select, select

from confide.audit import service as audit
from confide.auth.actors import OperatorActor
from confide.core import clock, crypto, jobs, subject_ids
from confide.core.db import UnitOfWork
from confide.core.errors import Invalid, NotFound
from confide.core.runtime import Runtime
from confide.permissions.access import access_visitors_to_restrict
from confide.restriction.models import Restriction

log = structlog.get_logger(__name__)

REASONS = ("accuracy_contested", "unlawful_processing", "legal_claims", "objection_pending", "other")
REASON_LABELS = {
    "accuracy_contested": "accuracy contested (Art. 18(1)(a))",
    "unlawful_processing": "unlawful processing, erasure opposed (Art. 18(1)(b))",
    "legal_claims": "needed for legal claims (Art. 18(1)(c))",
    "objection_pending": "objection being verified (Art. 18(1)(d))",
    "other": "other",
}
MAX_SUBJECTS = subject_ids.MAX_SUBJECTS
RECHECK_S = 3600.0  # a restricted person's deferred job is looked at again after this long


def reason_of(value: object) -> str:
    if not isinstance(value, str) or value not in REASONS:
        raise Invalid(f"reason must be one of {', '.join(REASONS)}")
    return value


# ---------------------------------------------------------------- reads (the gates ask these)
def restricted_visitors_select(workspace_id: str) -> Select[Any]:
    """The workspace's restricted visitor ids, as a subquery (the retention sweep keeps their rows)."""
    return select(Restriction.visitor_id).where(
        Restriction.workspace_id == workspace_id, Restriction.lifted_at.is_(None)
    )


async def is_restricted(uow: UnitOfWork, workspace_id: str, visitor_id: str) -> bool:
    found = await uow.session.scalar(
        select(Restriction.id).where(
            Restriction.workspace_id == workspace_id, Restriction.visitor_id == visitor_id,
            Restriction.lifted_at.is_(None),
        ).limit(1)
    )
    return found is not None


async def restricted_among(uow: UnitOfWork, workspace_id: str, visitor_ids: Iterable[str]) -> set[str]:
    ids = sorted(set(visitor_ids))
    if not ids:
        return set()
    rows = await uow.session.scalars(
        select(Restriction.visitor_id).where(
            Restriction.workspace_id == workspace_id, Restriction.visitor_id.in_(ids),
            Restriction.lifted_at.is_(None),
        )
    )
    return set(rows.all())


async def active_of(uow: UnitOfWork, workspace_id: str, visitor_ids: Iterable[str], *,
                    for_update: bool = False) -> dict[str, Restriction]:
    """The active restriction of each of ``visitor_ids`` that has one."""
    ids = sorted(set(visitor_ids))
    if not ids:
        return {}
    stmt = select(Restriction).where(
        Restriction.workspace_id == workspace_id, Restriction.visitor_id.in_(ids), Restriction.lifted_at.is_(None)
    ).order_by(Restriction.visitor_id)
    if for_update:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return {r.visitor_id: r for r in (await uow.session.scalars(stmt)).all()}


def state_view(active: dict[str, Restriction], visitor_ids: Iterable[str]) -> dict[str, Any] | None:
    """A person's state as shown (Find a person, the API): None when no visit is restricted; else
    since when (the earliest), the reason codes, and which visits."""
    mine = [active[v] for v in sorted(set(visitor_ids)) if v in active]
    if not mine:
        return None
    first = min(mine, key=lambda r: r.restricted_at)
    return {
        "since": clock.iso(first.restricted_at),
        "reason": first.reason,
        "reason_label": REASON_LABELS.get(first.reason, first.reason),
        "reasons": sorted({r.reason for r in mine}),
        "visitor_ids": [r.visitor_id for r in mine],
        "request_id": first.request_id,
    }


def _row_view(r: Restriction) -> dict[str, Any]:
    return {
        "visitor_id": r.visitor_id,
        "reason": r.reason,
        "request_id": r.request_id,
        "restricted_at": clock.iso(r.restricted_at),
        "restricted_by": r.restricted_by,
        "lifted_at": clock.iso(r.lifted_at) if r.lifted_at else None,
        "lifted_by": r.lifted_by,
    }


# ---------------------------------------------------------------- restrict and lift
async def _locked(uow: UnitOfWork, actor: OperatorActor | None, workspace_id: str, visitor_ids: object) -> list[str]:
    ids = subject_ids.visitor_ids_of(visitor_ids, MAX_SUBJECTS)
    found = await access_visitors_to_restrict(uow.session, actor, workspace_id, ids, for_update=True)
    if len(found) != len(ids):
        raise NotFound("visitor not found")
    return ids


async def restrict(
    rt: Runtime,
    uow: UnitOfWork,
    actor: OperatorActor | None,
    workspace_id: str,
    visitor_ids: object,
    *,
    reason: object,
    request_id: str | None = None,
) -> dict[str, Any]:
    """Restrict the processing of the person with these visitor ids (``actor=None``: the CLI).
    Answers every visit's active restriction and which ones this call added."""
    reason = reason_of(reason)
    request = subject_ids.request_id_of(request_id)
    ids = await _locked(uow, actor, workspace_id, visitor_ids)
    active = await active_of(uow, workspace_id, ids, for_update=True)
    now = clock.now()
    by = actor.operator_id if actor is not None else None
    added = [v for v in ids if v not in active]
    for vid in added:
        row = Restriction(id=crypto.new_id(), workspace_id=workspace_id, visitor_id=vid, reason=reason,
                          request_id=request, restricted_at=now, restricted_by=by)
        uow.session.add(row)
        active[vid] = row
    if added:
        await uow.session.flush()
        await audit.record(
            rt, uow, "subject.restricted", actor=actor, actor_type=None if actor is not None else "system",
            workspace_id=workspace_id, target_type="visitor", target_id=added[0],
            detail={"visitors": added[: audit.MAX_LISTED], "count": len(added), "reason": reason, "request": request},
        )
        log.info("subject_restricted", visitors=len(added), reason=reason)
    return {
        "visitor_ids": ids,
        "added": added,
        "restriction": state_view(active, ids),
        "rows": [_row_view(active[v]) for v in ids],
    }


async def lift(
    rt: Runtime, uow: UnitOfWork, actor: OperatorActor | None, workspace_id: str, visitor_ids: object
) -> dict[str, Any]:
    """Lift the person's restriction: the rows are kept (lifted at, by whom); their jobs that
    waited fall due at once. Lifting someone not restricted changes nothing."""
    ids = await _locked(uow, actor, workspace_id, visitor_ids)
    active = await active_of(uow, workspace_id, ids, for_update=True)
    now: datetime = clock.now()
    by = actor.operator_id if actor is not None else None
    lifted = sorted(active)
    for row in active.values():
        row.lifted_at, row.lifted_by = now, by
    if lifted:
        await uow.session.flush()
        woken = await jobs.wake_subjects(uow, lifted)
        if woken:
            uow.after_commit(jobs.signal(rt.db).set)
        await audit.record(
            rt, uow, "subject.restriction_lifted", actor=actor, actor_type=None if actor is not None else "system",
            workspace_id=workspace_id, target_type="visitor", target_id=lifted[0],
            detail={"visitors": lifted[: audit.MAX_LISTED], "count": len(lifted), "jobs_woken": woken},
        )
        log.info("subject_restriction_lifted", visitors=len(lifted), jobs=woken)
    return {"visitor_ids": ids, "lifted": lifted, "restriction": None}


async def history(uow: UnitOfWork, workspace_id: str, visitor_ids: Iterable[str]) -> list[dict[str, Any]]:
    """Every restriction of these visits, lifted ones too, oldest first."""
    ids = sorted(set(visitor_ids))
    if not ids:
        return []
    rows = await uow.session.scalars(
        select(Restriction).where(Restriction.workspace_id == workspace_id, Restriction.visitor_id.in_(ids))
        .order_by(Restriction.restricted_at, Restriction.id)
    )
    return [_row_view(r) for r in rows.all()]


# ---------------------------------------------------------------- the job runner
@jobs.deferral
async def _wait_while_restricted(rt: Runtime, job: jobs.Claimed) -> float | None:
    """A job serving a purpose for a restricted person waits (kept, not run, not dropped)."""
    if job.purpose is None or job.subject_id is None or job.workspace_id is None:
        return None
    async with rt.db.unit_of_work(readonly=True) as uow:
        return RECHECK_S if await is_restricted(uow, job.workspace_id, job.subject_id) else None
