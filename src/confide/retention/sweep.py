"""The retention sweep (ADR 0030): per workspace, site and category, delete in batches what is past
its period, leaving out everything under a legal hold; the dry run is the same walk, counting.

- **Who deletes.** Each category's rows belong to one domain, which selects and deletes them
  (``chats.service.expired_conversations`` / ``delete_conversations`` and the like, on the small
  helpers of ``core/expiry.py``); consent records go only through the ledger's erasure flag
  (``consent.removal.expire_subjects``); the audit log through its own pruning with a checkpoint
  (``audit.retention.prune``), so ``confide audit verify`` still passes.
- **Batches.** One batch (``CONFIDE_RETENTION_BATCH`` rows, 500 by default) per transaction: a
  backlog of a million rows never holds one long transaction, and a crash loses one batch at most.
  Each batch is audited (``retention.swept``: site, category, count; no personal data).
- **One node at a time.** Every batch first takes a transaction-scoped advisory lock of its own on
  PostgreSQL (``pg_advisory_xact_lock``; the scheduler only *tries* it and skips the tick), and the
  domains take their rows ``FOR UPDATE SKIP LOCKED``: two sweeps at once (the scheduler on one node,
  ``confide retention run`` on another) take turns batch by batch, and every row goes once.
- **Holds.** The held visitor and conversation ids are a subquery of ``legal_holds`` inside the
  domain's select: a hold placed while a sweep runs is seen by its next batch.
- **The scheduler** (``worker/scheduler.py``) calls ``scheduled`` every tick: it does one batch when
  the sweep is due (every ``CONFIDE_RETENTION_EVERY_S``) or while a backlog remains.

Conversations: ``_delete_conversations`` (the one place the sweep deletes chats) folds them into
the statistics that outlive them (``erasure.stats.fold_conversations``, ADR 0028) before
``chats.delete_conversations``, in the same transaction.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Select, select, text, union

from confide.audit import retention as audit_retention
from confide.audit import service as audit
from confide.chats import service as chats
from confide.consent import removal as consent_removal
from confide.core import clock
from confide.core.db import Database, UnitOfWork
from confide.core.expiry import Expired
from confide.core.runtime import Runtime
from confide.erasure import stats as erasure_stats
from confide.offline import service as offline
from confide.prospects import service as prospects
from confide.restriction import service as restriction
from confide.retention import service as policies
from confide.retention.categories import Category
from confide.visitor_activity import service as visitor_activity
from confide.workspaces import service as workspaces

log = structlog.get_logger(__name__)

# The sweep's own advisory lock ("retain" in ASCII), apart from the scheduler's job lock.
LOCK_KEY = int.from_bytes(b"retain", "big")


async def _delete_conversations(uow: UnitOfWork, criteria: Expired, ids: list[str]) -> int:
    # The one place the sweep deletes conversations: their counts, ratings and response times are
    # folded into the statistics that outlive them first, in the same transaction (ADR 0028).
    await erasure_stats.fold_conversations(uow, ids)
    return await chats.delete_conversations(uow, ids)


async def _delete_consent(uow: UnitOfWork, criteria: Expired, subject_ids: list[str]) -> int:
    return await consent_removal.expire_subjects(uow, criteria.workspace_id, subject_ids)


async def _delete_offline(uow: UnitOfWork, criteria: Expired, ids: list[str]) -> int:
    return await offline.delete_requests(uow, ids)


async def _delete_activity(uow: UnitOfWork, criteria: Expired, ids: list[str]) -> int:
    return await visitor_activity.delete_page_views(uow, ids)


async def _delete_prospects(uow: UnitOfWork, criteria: Expired, ids: list[str]) -> int:
    return await prospects.delete_prospects(uow, ids)


@dataclass(frozen=True)
class Store:
    """How one category's rows are found (``take``: a batch of ids, locked), counted and deleted."""

    take: Callable[..., Awaitable[list[str]]]
    count: Callable[[UnitOfWork, Expired], Awaitable[int]]
    delete: Callable[[UnitOfWork, Expired, list[str]], Awaitable[int]]
    workspace_rows: bool = False  # also rows that name no site (consent statements)


STORES: dict[Category, Store] = {
    Category.CHATS: Store(chats.expired_conversations, chats.count_expired_conversations, _delete_conversations),
    Category.OFFLINE: Store(offline.expired_requests, offline.count_expired_requests, _delete_offline),
    Category.ACTIVITY: Store(
        visitor_activity.expired_page_views, visitor_activity.count_expired_page_views, _delete_activity
    ),
    Category.PROSPECTS: Store(prospects.expired_prospects, prospects.count_expired_prospects, _delete_prospects),
    Category.CONSENT: Store(consent_removal.expired_subjects, consent_removal.count_expired_records, _delete_consent,
                            workspace_rows=True),
    # Category.FILES: no file store exists yet (nothing to sweep); Category.AUDIT: ``_audit`` below.
}


def _kept_visitors(workspace_id: str) -> Select[Any]:
    """The visitors whose rows no sweep removes: under a legal hold (ADR 0030), or restricted
    (Art. 18, ADR 0031: their data is stored, and deleting it is a processing the restriction
    stops; the person may still ask for erasure, which ends it)."""
    kept = union(policies.held_visitors_select(workspace_id),
                 restriction.restricted_visitors_select(workspace_id)).subquery()
    return select(kept.c[0])


@dataclass(frozen=True)
class Target:
    workspace_id: str
    site_id: str | None  # None: the workspace's rows that name no site
    category: Category
    days: int

    def criteria(self, now: datetime) -> Expired:
        return Expired(
            workspace_id=self.workspace_id,
            site_id=self.site_id,
            before=now - timedelta(days=self.days),
            held_visitors=_kept_visitors(self.workspace_id),
            held_conversations=policies.held_conversations_select(self.workspace_id),
        )


@dataclass
class Line:
    workspace_id: str | None
    site_id: str | None
    category: str
    days: int
    removed: int = 0


@dataclass
class Report:
    dry_run: bool
    lines: list[Line] = field(default_factory=list)

    def totals(self) -> dict[str, int]:
        out = {c.value: 0 for c in Category}
        for line in self.lines:
            out[line.category] += line.removed
        return out

    @property
    def total(self) -> int:
        return sum(line.removed for line in self.lines)


Progress = Callable[[Line], None]


async def lock(uow: UnitOfWork, *, wait: bool) -> bool:
    """The sweep's advisory lock for this transaction (PostgreSQL); ``wait=False``: only try."""
    conn = await uow.session.connection()
    if conn.dialect.name != "postgresql":
        return True
    if wait:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
        return True
    return bool(await conn.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": LOCK_KEY}))


async def targets(rt: Runtime, uow: UnitOfWork, workspace_id: str | None = None) -> list[Target]:
    """Every (workspace, site, category) with a period (0 = kept forever is left out)."""
    out: list[Target] = []
    for ws_id in await workspaces.workspace_ids(uow, workspace_id):
        overrides = await policies.overrides(uow, ws_id)
        sites: list[str | None] = [s.id for s in await workspaces.sites_of(uow, ws_id)]
        for category, store in STORES.items():
            for site_id in [*sites, None] if store.workspace_rows else sites:
                days, _ = policies.resolve(rt.settings, overrides, site_id, category)
                if days > 0:
                    out.append(Target(ws_id, site_id, category, days))
    return out


async def batch(rt: Runtime, uow: UnitOfWork, target: Target, *, size: int) -> int:
    """One batch of ``target`` in the caller's transaction (which holds the lock): the rows removed."""
    store = STORES[target.category]
    criteria = target.criteria(clock.now())
    ids = await store.take(uow, criteria, limit=size)
    if not ids:
        return 0
    removed = await store.delete(uow, criteria, ids)
    await audit.record(
        rt,
        uow,
        "retention.swept",
        actor_type="system",
        workspace_id=target.workspace_id,
        target_type="site" if target.site_id else "workspace",
        target_id=target.site_id or target.workspace_id,
        detail={"category": target.category.value, "removed": removed, "taken": len(ids), "days": target.days},
    )
    log.info("retention_swept", workspace_id=target.workspace_id, site_id=target.site_id,
             category=target.category.value, removed=removed)
    return removed


async def _audit(rt: Runtime, *, dry_run: bool, size: int, progress: Progress | None) -> Line:
    line = Line(None, None, Category.AUDIT.value, rt.settings.audit_retention_days)
    if line.days <= 0:
        return line
    if dry_run:
        async with rt.db.unit_of_work(readonly=True) as uow:
            line.removed = await audit_retention.due(rt, uow)
        return line
    while True:
        async with rt.db.unit_of_work() as uow:
            await lock(uow, wait=True)
            n = await audit_retention.prune(rt, uow, batch=size)
        if n <= 0:
            return line
        line.removed += n
        if progress is not None:
            progress(line)


async def run(
    rt: Runtime,
    *,
    workspace_id: str | None = None,
    dry_run: bool = False,
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> Report:
    """The whole sweep (``confide retention run``): every target to the end, one batch per
    transaction; ``dry_run``: the same walk, counting what would go. ``progress`` is called after
    each batch (and once per target in a dry run). The audit log is swept only for the whole
    installation (one chain), never for one workspace."""
    size = batch_size or rt.settings.retention_batch
    report = Report(dry_run=dry_run)
    async with rt.db.unit_of_work(readonly=True) as uow:
        todo = await targets(rt, uow, workspace_id)
    for target in todo:
        line = Line(target.workspace_id, target.site_id, target.category.value, target.days)
        report.lines.append(line)
        if dry_run:
            async with rt.db.unit_of_work(readonly=True) as uow:
                line.removed = await STORES[target.category].count(uow, target.criteria(clock.now()))
            if progress is not None:
                progress(line)
            continue
        while True:
            async with rt.db.unit_of_work() as uow:
                await lock(uow, wait=True)
                n = await batch(rt, uow, target, size=size)
            if n <= 0:
                break
            line.removed += n
            if progress is not None:
                progress(line)
    if workspace_id is None:
        report.lines.append(await _audit(rt, dry_run=dry_run, size=size, progress=progress))
    return report


# ---------------------------------------------------------------- the scheduler's job
_next_at: weakref.WeakKeyDictionary[Database, datetime] = weakref.WeakKeyDictionary()


async def scheduled(rt: Runtime, uow: UnitOfWork) -> int:
    """The periodic job: when due, one batch of the first target with rows past its period (the
    audit log has its own job, ``audit_pruned``). Due again at once while a backlog remains."""
    now = clock.now()
    due = _next_at.get(rt.db)
    if due is not None and now < due:
        return 0
    if not await lock(uow, wait=False):
        return 0
    size = rt.settings.retention_batch
    for target in await targets(rt, uow):
        n = await batch(rt, uow, target, size=size)
        if n > 0:
            _next_at[rt.db] = now  # a backlog: the next tick goes on
            return n
    _next_at[rt.db] = now + timedelta(seconds=rt.settings.retention_every_s)
    return 0
