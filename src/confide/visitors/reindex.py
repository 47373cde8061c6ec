"""Rebuild visitors' blind-index terms (``visitor_terms``: the words of the name and the phone's
term) from what each visitor's record holds now: ``confide subject reindex``.

Why: terms are written only when a visitor writes their details (``create_visitor``,
``update_details``, ``add_contact``) or staff rectify them. The phone's term came later than the
phone number itself (Find a person by phone, ADR 0026), so a visitor indexed before it has no
phone term until their details are next written, and Find a person by phone misses them. After an
upgrade (or a change of how a term is made) this walk brings every visitor's terms up to date.

- **Batches.** ``BATCH`` visitors per transaction, keyset-paginated by id (``id > last``, in id
  order): a million visitors never hold one long transaction or one long lock, a crash loses one
  batch at most, and a second run finds nothing to change (the terms are a function of the
  stored values; only a visitor whose terms differ is written, ``Report.changed``).
- **Locks.** The batch's visitor rows are read ``FOR UPDATE`` (in id order, as rectification
  locks them). Every writer of a visitor's terms changes the visitor row first (the ORM flushes
  it before its own delete of the terms), so it waits for the batch, or the batch waits for it
  and then reads its committed values: either way the terms end as the stored values say.
  SQLite has one writer at a time.
- **Keys.** Read from their rows (``KeyRing.readable``: a key rotated on another node is never
  used from a stale cache). A visitor whose key is destroyed or missing holds nothing readable:
  it has no terms (any left over are deleted) and is counted in ``Report.unreadable``.
- **Audit and log.** One ``subject.reindexed`` audit row and one log line per workspace, with
  ids and counts only.

Prospects have the same walk (``prospects.reindex``: their phone's term came later too, and Find
a person by phone searches ``prospect_terms`` as well); ``confide subject reindex`` runs both.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from sqlalchemy import delete, func, insert, select

from confide.audit import service as audit
from confide.core import keyset
from confide.core.db import UnitOfWork
from confide.core.runtime import Runtime
from confide.visitors import values
from confide.visitors.models import Visitor, VisitorTerm
from confide.workspaces import service as workspaces

log = structlog.get_logger(__name__)

BATCH = 500
Progress = Callable[[str, int, int], None]  # (workspace id, visitors done, visitors of the workspace)


@dataclass
class Report:
    """Counts of one run: visitors walked, whose terms were rebuilt, whose key is gone."""

    workspaces: int = 0
    visitors: int = 0
    changed: int = 0
    unreadable: int = 0

    def add(self, other: Report) -> None:
        self.workspaces += other.workspaces
        self.visitors += other.visitors
        self.changed += other.changed
        self.unreadable += other.unreadable


async def reindex_batch(rt: Runtime, uow: UnitOfWork, workspace_id: str, after: str, limit: int) -> tuple[str, Report]:
    """The next ``limit`` visitors of the workspace after id ``after``: their rows locked, their
    terms rebuilt where they differ from what the stored values give. Returns (the last id walked,
    or ``""`` when none was left; the batch's counts)."""
    session = uow.session
    rows = (await session.execute(
        select(Visitor.id, Visitor.name_enc, Visitor.phone_enc)
        .where(Visitor.workspace_id == workspace_id, Visitor.id > after)
        .order_by(Visitor.id)
        .limit(limit)
        .with_for_update()
    )).all()
    if not rows:
        return "", Report()
    ids = [r.id for r in rows]
    held: dict[str, set[str]] = {vid: set() for vid in ids}
    for vid, term in (await session.execute(
        select(VisitorTerm.visitor_id, VisitorTerm.term).where(VisitorTerm.visitor_id.in_(ids))
    )).all():
        held[vid].add(term)
    keys = await rt.keyring.readable(session, [r.id for r in rows if r.name_enc or r.phone_enc])
    report = Report(visitors=len(rows))
    wanted: dict[str, list[str]] = {}
    for r in rows:
        if not (r.name_enc or r.phone_enc):
            wanted[r.id] = []
            continue
        key = keys.get(r.id)
        if key is None:  # erased (key destroyed) or never had one: nothing readable to index
            report.unreadable += 1
            wanted[r.id] = []
            continue
        name = key.decrypt(r.name_enc, f"visitors.name:{r.id}") if r.name_enc else None
        phone = key.decrypt(r.phone_enc, f"visitors.phone:{r.id}") if r.phone_enc else None
        wanted[r.id] = values.terms(rt.bidx, workspace_id, name, phone)
    changed = [vid for vid in ids if set(wanted[vid]) != held[vid]]
    if changed:
        await session.execute(delete(VisitorTerm).where(VisitorTerm.visitor_id.in_(changed)))
        fresh = [{"visitor_id": vid, "term": t} for vid in changed for t in wanted[vid]]
        if fresh:
            await session.execute(insert(VisitorTerm), fresh)
    report.changed = len(changed)
    return ids[-1], report


async def run(
    rt: Runtime, *, workspace_id: str | None = None, batch_size: int = BATCH, progress: Progress | None = None
) -> Report:
    """Rebuild the terms of every visitor of one workspace (or of all), batch by batch, each batch
    its own transaction (this function is an edge: it opens its units of work itself, like a job).
    ``NotFound`` for an unknown workspace, before anything is written."""
    async with rt.db.unit_of_work(readonly=True) as uow:
        ids = await workspaces.workspace_ids(uow, workspace_id)
    total = Report()
    for ws in ids:
        total.add(await _workspace(rt, ws, max(1, batch_size), progress))
    return total


async def _workspace(rt: Runtime, ws: str, size: int, progress: Progress | None) -> Report:
    """One workspace's walk (``keyset.walk``), then its audit row and log line (counts only)."""
    async with rt.db.unit_of_work(readonly=True) as uow:
        count = int(await uow.session.scalar(
            select(func.count()).select_from(Visitor).where(Visitor.workspace_id == ws)) or 0)
    mine = Report(workspaces=1)

    def step(uow: UnitOfWork, after: str) -> Awaitable[tuple[str, Report]]:
        return reindex_batch(rt, uow, ws, after, size)

    def done(batch: Report) -> None:
        mine.add(batch)
        if progress is not None:
            progress(ws, mine.visitors, max(count, mine.visitors))

    await keyset.walk(rt.db, step, done)
    async with rt.db.unit_of_work() as uow:
        await audit.record(rt, uow, "subject.reindexed", actor_type="system", workspace_id=ws,
                           target_type="workspace", target_id=ws,
                           detail={"visitors": mine.visitors, "changed": mine.changed, "unreadable": mine.unreadable})
    log.info("subject_reindexed", workspace_id=ws, visitors=mine.visitors, changed=mine.changed,
             unreadable=mine.unreadable)
    return mine


__all__ = ["BATCH", "Report", "reindex_batch", "run"]
